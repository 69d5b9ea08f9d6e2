"""segment-tools through its real command line, as an operator runs it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from client.record import BatchBuilder
from logserver.log import LogConfig, PartitionLog
from logserver.log.files import CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE, segment_path
from tests.support.batches import BASE_TIMESTAMP

CONSOLE_SCRIPT = Path(sys.executable).parent / "segment-tools"
BATCHES = 30
RECORDS_PER_BATCH = 3


def run(*args: str | Path, console: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(CONSOLE_SCRIPT)] if console else [sys.executable, "-m", "segment_tools"]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def partition(tmp_path: Path) -> Path:
    """A cleanly closed log of 30 batches (lz4, snappy, none) over several segments."""
    directory = tmp_path / "orders-0"
    log = PartitionLog.open(directory, LogConfig(segment_bytes=1500, index_interval_bytes=150))
    codecs = ["none", "lz4", "snappy"]
    for i in range(BATCHES):
        builder = BatchBuilder(codecs[i % 3])
        for j in range(RECORDS_PER_BATCH):
            builder.append(
                f"value-{i}-{j}".encode(),
                key=f"key-{j}".encode(),
                timestamp_ms=BASE_TIMESTAMP + i,
                headers={"trace": b"t"},
            )
        log.append(builder.build())
    log.close()
    return directory


def segment_bases(directory: Path) -> list[int]:
    return sorted(int(p.name.split(".")[0]) for p in directory.glob("*.log"))


def batch_positions(directory: Path, base: int) -> list[tuple[int, int]]:
    """(position, base offset) of every batch in a segment, via dump --json."""
    result = run("dump", "--json", segment_path(directory, base, ".log"))
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return [(e["position"], e["baseOffset"]) for e in events if e["type"] == "batch"]


def flip_bit(path: Path, position: int) -> None:
    with path.open("r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ 0x10]))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_help_works_as_console_script_and_module():
    assert run("--help", console=True).returncode == 0
    result = run("--help")
    assert result.returncode == 0
    for command in ("dump", "verify", "recover", "reindex"):
        assert command in result.stdout


def test_dump_prints_one_line_per_batch_in_kafka_dump_log_order(partition):
    result = run("dump", partition, console=True)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("baseOffset:")]
    assert len(lines) == BATCHES
    first = lines[0].split()
    keys = first[0::2]
    assert keys[:8] == [
        "baseOffset:",
        "lastOffset:",
        "count:",
        "codec:",
        "crc:",
        "valid:",
        "position:",
        "size:",
    ]
    assert first[1::2][:4] == ["0", "2", "3", "none"]
    assert "valid: true" in lines[1]
    assert "codec: lz4" in lines[1]
    assert "codec: snappy" in lines[2]
    assert result.stdout.count("Dumping ") == len(segment_bases(partition))


def test_dump_print_records_shows_each_record_with_a_preview(partition):
    base = segment_bases(partition)[0]
    result = run("dump", segment_path(partition, base, ".log"), "--print-records")
    assert result.returncode == 0, result.stderr
    records = [line for line in result.stdout.splitlines() if line.startswith("| offset:")]
    batches = [line for line in result.stdout.splitlines() if line.startswith("baseOffset:")]
    assert len(records) == len(batches) * RECORDS_PER_BATCH
    assert records[0] == (
        f"| offset: 0 timestamp: {BASE_TIMESTAMP} keySize: 5 key: key-0 valueSize: 9 "
        "headers: [trace=t] payload: value-0-0"
    )


def test_dump_json_is_one_object_per_line(partition):
    result = run("dump", partition, "--json", "--print-records")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    batches = [e for e in events if e["type"] == "batch"]
    records = [e for e in events if e["type"] == "record"]
    assert len(batches) == BATCHES
    assert [r["offset"] for r in records] == list(range(BATCHES * RECORDS_PER_BATCH))
    assert all(b["valid"] and b["error"] is None for b in batches)
    assert {b["codec"] for b in batches} == {"none", "lz4", "snappy"}
    offsets = [b["baseOffset"] for b in batches]
    assert offsets == sorted(offsets)


def test_dump_index_files(partition):
    base = segment_bases(partition)[0]
    positions = dict(batch_positions(partition, base))
    index = run("dump", segment_path(partition, base, ".index"), "--json")
    entries = [json.loads(line) for line in index.stdout.splitlines()[1:]]
    assert entries, "a 150-byte index interval should give entries"
    assert all(positions[e["position"]] == e["offset"] for e in entries)
    timeindex = run("dump", segment_path(partition, base, ".timeindex"))
    assert timeindex.returncode == 0
    assert "timestamp:" in timeindex.stdout


def test_dump_shows_a_bad_crc_and_keeps_walking(partition):
    base = segment_bases(partition)[0]
    positions = batch_positions(partition, base)
    flip_bit(segment_path(partition, base, ".log"), positions[1][0] + 40)
    result = run("dump", segment_path(partition, base, ".log"))
    assert result.returncode == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("baseOffset:")]
    assert len(lines) == len(positions)
    assert "valid: false" in lines[1]
    assert "CRC32C mismatch" in lines[1]
    assert all("valid: true" in line for i, line in enumerate(lines) if i != 1)


def test_dump_rejects_missing_and_foreign_files(tmp_path, partition):
    assert run("dump", tmp_path / "nope.log").returncode == 2
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = run("dump", notes)
    assert result.returncode == 1
    assert "not a segment file" in result.stdout


def test_verify_passes_a_clean_directory(partition):
    result = run("verify", partition, console=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("OK:")
    assert f"offsets [0, {BATCHES * RECORDS_PER_BATCH})" in result.stdout


def test_verify_names_file_position_and_offset_of_a_bad_crc(partition):
    base = segment_bases(partition)[1]
    position, offset = batch_positions(partition, base)[2]
    log_file = segment_path(partition, base, ".log")
    flip_bit(log_file, position + 30)
    result = run("verify", partition)
    assert result.returncode == 1
    assert f"ERROR {log_file} (position {position}, offset {offset}): " in result.stdout
    assert "CRC32C mismatch" in result.stdout


def test_verify_reports_a_torn_tail(partition):
    base = segment_bases(partition)[-1]
    log_file = segment_path(partition, base, ".log")
    last_position, last_offset = batch_positions(partition, base)[-1]
    os.truncate(log_file, log_file.stat().st_size - 5)
    result = run("verify", partition)
    assert result.returncode == 1
    assert f"(position {last_position}, offset {last_offset})" in result.stdout
    assert "points past the end" in result.stdout


def test_verify_reports_an_index_pointing_past_the_log(partition):
    base = segment_bases(partition)[0]
    index = segment_path(partition, base, ".index")
    with index.open("ab") as f:
        f.write((999).to_bytes(4, "big") + (10**6).to_bytes(4, "big"))
    result = run("verify", partition)
    assert result.returncode == 1
    assert f"ERROR {index}" in result.stdout
    assert "not a valid batch start" in result.stdout


def test_verify_reports_a_missing_index_and_warns_about_foreign_files(partition):
    base = segment_bases(partition)[0]
    segment_path(partition, base, ".timeindex").unlink()
    (partition / "README.txt").write_text("not ours")
    result = run("verify", partition)
    assert result.returncode == 1
    assert "missing time index" in result.stdout
    assert "WARNING" in result.stdout
    assert "README.txt" in result.stdout


def test_verify_rejects_a_directory_without_segments(tmp_path):
    result = run("verify", tmp_path)
    assert result.returncode == 1
    assert "no segment" in result.stdout


def test_recover_cuts_a_torn_tail_and_keeps_everything_before_it(partition):
    (partition / CLEAN_SHUTDOWN_FILE).unlink()  # as after kill -9
    base = segment_bases(partition)[-1]
    log_file = segment_path(partition, base, ".log")
    last_position, last_offset = batch_positions(partition, base)[-1]
    os.truncate(log_file, log_file.stat().st_size - 7)

    result = run("recover", partition, console=True)
    assert result.returncode == 0, result.stderr
    assert f"truncated segment {base} at position {last_position}" in result.stdout
    assert f"offsets from {last_offset} on are gone" in result.stdout
    assert run("verify", partition).returncode == 0

    with PartitionLog.open(partition) as log:
        assert log.log_end_offset == last_offset
        assert [r.offset for r in log.read_records(0, 1 << 20)][:3] == [0, 1, 2]
        values = [r.value for s in log.segments for r in log.read_records(s.base_offset)]
        assert values[-1] == f"value-{last_offset // 3 - 1}-2".encode()


def test_recover_full_cuts_damage_in_an_older_segment(partition):
    bases = segment_bases(partition)
    position, offset = batch_positions(partition, bases[1])[1]
    flip_bit(segment_path(partition, bases[1], ".log"), position + 50)

    plain = run("recover", partition)  # clean shutdown: only the tail is checked
    assert plain.returncode == 0
    assert "truncated" not in plain.stdout
    assert run("verify", partition).returncode == 1

    full = run("recover", "--full", partition)
    assert full.returncode == 0, full.stderr
    assert f"offsets from {offset} on are gone" in full.stdout
    for later in bases[2:]:
        assert f"removed segment {later}" in full.stdout
    assert segment_bases(partition) == bases[:2]
    assert run("verify", partition).returncode == 0


def test_reindex_rebuilds_indexes_without_touching_the_log(partition):
    bases = segment_bases(partition)
    before = {b: digest(segment_path(partition, b, ".log")) for b in bases}
    expected_index = digest(segment_path(partition, bases[0], ".index"))
    for base in bases:
        segment_path(partition, base, ".index").unlink()
        segment_path(partition, base, ".timeindex").write_bytes(b"garbage")

    result = run("reindex", partition, "--index-interval-bytes", "150", console=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("segment ") == len(bases)
    assert {b: digest(segment_path(partition, b, ".log")) for b in bases} == before
    assert digest(segment_path(partition, bases[0], ".index")) == expected_index
    assert run("verify", partition).returncode == 0


def test_reindex_flags_invalid_data_and_leaves_it_for_recover(partition):
    base = segment_bases(partition)[0]
    position, _ = batch_positions(partition, base)[2]
    log_file = segment_path(partition, base, ".log")
    flip_bit(log_file, position + 25)
    before = digest(log_file)
    result = run("reindex", partition)
    assert result.returncode == 1
    assert f"invalid data from position {position}" in result.stdout
    assert digest(log_file) == before


def test_recover_refuses_a_directory_without_segments(tmp_path):
    result = run("recover", tmp_path)
    assert result.returncode == 1
    assert "no segment" in result.stderr
    assert not (tmp_path / CHECKPOINT_FILE).exists()
