"""A full disk: appends fail with StorageError, leave nothing partial behind, and resume.

Part one fills a real 512 KiB tmpfs. The child process mounts it inside its own
mount namespace (``unshare -m``), so the mount needs no cleanup and vanishes
with the process; it reports what it saw as JSON and the assertions run here.
Part two fakes the failures (``os.write``/``os.writev``/``os.ftruncate`` as
seen by ``logserver.log.segment``) to pin down the rollback and the
"partial write could not be removed" path.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import logserver.log.segment as segment_module
from client.errors import StorageError
from client.record import iter_batches
from logserver.log import LogConfig, PartitionLog
from logserver.log.files import CLEAN_SHUTDOWN_FILE
from logserver.log.segment import PartialWriteError
from tests.support.batches import make_batch
from tests.support.damage import ram_directory, read_all

REPO = Path(__file__).resolve().parents[3]
CHILD = REPO / "tests" / "support" / "enospc_child.py"
TMPFS_SIZE = "512k"
CHILD_TIMEOUT_S = 60

# -- a real ENOSPC ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enospc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the child once; ``{"failure": message}`` if it could not run."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return {"failure": "the `unshare` command (util-linux) is not installed"}
    mount_point = tmp_path_factory.mktemp("enospc") / "mnt"
    mount_point.mkdir()
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && exec "$3" "$4" "$2"'
    command = [unshare, "-m", "--propagation", "private", "sh", "-c", script, "sh"]
    command += [TMPFS_SIZE, str(mount_point), sys.executable, str(CHILD)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    try:
        proc = subprocess.run(
            command, capture_output=True, timeout=CHILD_TIMEOUT_S, cwd=REPO, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return {"failure": f"the disk-full child did not finish in {CHILD_TIMEOUT_S}s: {exc}"}
    stdout, stderr = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {
            "failure": (
                f"could not run the disk-full child under `unshare -m` + `mount -t tmpfs` "
                f"(exit {proc.returncode}); this test needs root or CAP_SYS_ADMIN in a user "
                f"namespace that permits mounts.\nstderr: {stderr.strip()}\nstdout: {stdout}"
            )
        }
    result = json.loads(lines[-1][len("RESULT ") :])
    result["returncode"] = proc.returncode
    result["stderr"] = stderr
    # The mount lived only in the child's namespace: nothing is left here.
    result["left_in_mount_point"] = sorted(p.name for p in mount_point.iterdir())
    return result


def _result(enospc: dict[str, Any]) -> dict[str, Any]:
    if "failure" in enospc:
        pytest.fail(enospc["failure"])
    if "crash" in enospc:
        pytest.fail(f"the disk-full child crashed:\n{enospc['crash']}")
    assert enospc["returncode"] == 0, enospc["stderr"]
    return enospc


def test_enospc_runs_in_a_private_mount(enospc: dict[str, Any]) -> None:
    result = _result(enospc)
    assert result["fs_bytes"] == 512 * 1024
    assert result["left_in_mount_point"] == []


@pytest.mark.parametrize("fill", ["first_fill", "second_fill"])
def test_enospc_append_fails_with_storage_error_and_leaves_nothing(
    enospc: dict[str, Any], fill: str
) -> None:
    failed = _result(enospc)[fill]
    assert failed["appended"] > 0
    assert failed["type"] == "StorageError"  # the plain one: the partial bytes were cut off
    assert failed["code"] == 56
    assert failed["name"] == "KAFKA_STORAGE_ERROR"
    assert "No space left on device" in failed["message"]
    assert failed["cause_errno"] == errno.ENOSPC
    # Nothing partial was left, though the write did get part of the batch onto the disk.
    assert failed["size_after"] == failed["size_before"]
    assert failed["segment_size_after"] == failed["size_before"]
    assert failed["end_after"] == failed["end_before"]
    assert 0 < failed["slack_before"] + failed["free_before"] < failed["batch_bytes"]


def test_enospc_acknowledged_offsets_read_back_and_appends_resume(
    enospc: dict[str, Any],
) -> None:
    result = _result(enospc)
    assert result["second_attempt"] == "StorageError"
    assert result["second_attempt_size_unchanged"]
    assert result["read_back_while_full"]
    assert result["resumed_first_offset"] == result["resumed_at"]
    assert result["resumed_at"] == result["first_fill"]["end_before"]
    assert result["read_back_after_freeing"]


def test_enospc_reopen_loses_nothing(enospc: dict[str, Any]) -> None:
    result = _result(enospc)
    clean = result["clean_reopen"]
    assert clean["clean_shutdown"]
    assert not clean["lost_data"]
    assert not clean["truncation"]
    assert clean["end"] == clean["expected_end"]
    assert clean["read_back"]
    crash = result["crash_reopen"]  # killed while full, then space freed
    assert not crash["clean_shutdown"]
    assert crash["validated_from"] is not None
    assert not crash["lost_data"]
    assert crash["truncation"] is None
    assert crash["end"] == crash["expected_end"] == result["second_fill"]["end_before"]
    assert crash["read_back"]
    assert result["append_after_crash_reopen"]


def test_enospc_reopen_while_still_full_is_a_named_error_or_works(
    enospc: dict[str, Any],
) -> None:
    result = _result(enospc)
    outcome = result["reopen_while_full"]
    if isinstance(outcome, str):
        assert outcome.startswith("StorageError: ")
        assert "No space left on device" in outcome
        # A failed open must not leave the segment files it had opened to the GC.
        assert result["files_left_open_by_failed_open"] == []
    else:
        assert not outcome["lost_data"]
        assert outcome["read_back"]


# -- faked write failures ---------------------------------------------------------------------


class FaultyOs:
    """Stands in for ``os`` inside ``logserver.log.segment``; everything else is the real one.

    Armed, a write puts part of its data on disk and then fails with ENOSPC,
    either at once (``mode="raise"``) or as a short write followed by a failing
    call (``mode="short"``). ``fail_truncate`` makes ``ftruncate`` fail with EIO.
    """

    def __init__(self, mode: str, *, fail_truncate: bool = False) -> None:
        self.mode = mode
        self.fail_truncate = fail_truncate
        self.armed = True
        self.partial_bytes = 0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _fail(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if self.mode == "short" and self.calls > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.write(fd, data[: max(1, len(data) // 2)])
        self.partial_bytes += written
        if self.mode == "short":
            return written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(self, fd: int, data: Any) -> int:
        if not self.armed:
            return os.write(fd, data)
        return self._fail(fd, bytes(data))

    def writev(self, fd: int, buffers: Any) -> int:
        if not self.armed:
            return os.writev(fd, buffers)
        return self._fail(fd, b"".join(bytes(b) for b in buffers))

    def ftruncate(self, fd: int, length: int) -> None:
        if self.armed and self.fail_truncate:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.ftruncate(fd, length)


CONFIG = LogConfig(segment_bytes=1024, index_interval_bytes=100, file_delete_delay_ms=0)


@pytest.fixture
def directory() -> Iterator[Path]:
    with ram_directory("disk-full-") as root:
        yield root / "log"


def _fill(log: PartitionLog, count: int) -> dict[int, bytes | None]:
    for k in range(count):
        log.append(make_batch(1 + k % 2, tag=f"f{k}", value_size=30))
    return read_all(log)


def _data(rolls: bool, batches: int = 1) -> bytes:
    """What the failing append writes; after ``_fill(log, 5)`` the active segment holds
    606 of 1024 bytes, so 323 (one batch) or 325 bytes (two) fit and 956 or 745 do not."""
    if batches == 1:
        return make_batch(3, tag="new", value_size=290 if rolls else 80)
    value_size = 200 if rolls else 60
    return make_batch(2, tag="new", value_size=value_size) + make_batch(
        1, tag="new2", value_size=value_size
    )


def _values(data: bytes, first: int) -> dict[int, bytes | None]:
    records = [r for batch in iter_batches(data) for r in batch.records()]
    return {first + i: r.value for i, r in enumerate(records)}


@pytest.mark.parametrize("rolls", [False, True], ids=["same-segment", "after-roll"])
@pytest.mark.parametrize("mode", ["raise", "short"])
@pytest.mark.parametrize("writable", [False, True], ids=["bytes", "bytearray"])
@pytest.mark.parametrize("batches", [1, 2], ids=["one-batch", "two-batches"])
def test_failed_write_is_cut_back_and_the_log_goes_on(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    batches: int,
    writable: bool,
    mode: str,
    rolls: bool,
) -> None:
    with PartitionLog.open(directory, CONFIG) as log:
        before = _fill(log, 5)
        end = log.log_end_offset
        active_base = log.active_segment.base_offset
        data = _data(rolls, batches)
        faulty = FaultyOs(mode)
        monkeypatch.setattr(segment_module, "os", faulty)
        with pytest.raises(StorageError) as caught:
            log.append(bytearray(data) if writable else data)
        error = caught.value
        assert not isinstance(error, PartialWriteError)
        assert error.code == 56
        assert "No space left on device" in error.message
        assert faulty.partial_bytes > 0  # something really was written, then removed
        segment = log.active_segment
        assert os.stat(segment.path).st_size == segment.size
        assert log.log_end_offset == end
        assert read_all(log) == before
        if rolls:
            assert segment.size == 0
            assert segment.base_offset == end
        else:
            assert segment.base_offset == active_base

        faulty.armed = False
        info = log.append(bytearray(data) if writable else data)
        assert info.first_offset == end
        expected = {**before, **_values(data, end)}
        assert read_all(log) == expected
    monkeypatch.undo()
    with PartitionLog.open(directory, CONFIG, full_recovery=True) as log:
        assert log.recovery_report.truncation is None
        assert read_all(log) == expected


@pytest.mark.parametrize("shutdown", ["close", "close_handlers"])
@pytest.mark.parametrize("rolls", [False, True], ids=["same-segment", "after-roll"])
@pytest.mark.parametrize("batches", [1, 2], ids=["one-batch", "two-batches"])
def test_partial_write_that_cannot_be_cut_stops_the_log_until_reopened(
    directory: Path, monkeypatch: pytest.MonkeyPatch, batches: int, rolls: bool, shutdown: str
) -> None:
    log = PartitionLog.open(directory, CONFIG)
    try:
        before = _fill(log, 5)
        end = log.log_end_offset
        active_base = log.active_segment.base_offset
        faulty = FaultyOs("raise", fail_truncate=True)
        monkeypatch.setattr(segment_module, "os", faulty)
        with pytest.raises(PartialWriteError) as caught:
            log.append(_data(rolls, batches))
        assert isinstance(caught.value, StorageError)
        assert caught.value.code == 56
        assert "recovery" in caught.value.message
        segment = log.active_segment
        assert segment.base_offset == (end if rolls else active_base)
        assert os.stat(segment.path).st_size == segment.size + faulty.partial_bytes
        assert faulty.partial_bytes > 0

        # Even with the disk healthy again the log refuses appends until it is reopened.
        monkeypatch.undo()
        for attempt in (make_batch(1), bytearray(make_batch(2))):
            with pytest.raises(StorageError, match="reopen"):
                log.append(attempt)
        with pytest.raises(StorageError):
            log.roll()
        assert log.log_end_offset == end
        assert read_all(log) == before  # reads still serve the good data only
    finally:
        getattr(log, shutdown)()
    assert not (directory / CLEAN_SHUTDOWN_FILE).exists()

    with PartitionLog.open(directory, CONFIG) as log:
        report = log.recovery_report
        assert not report.clean_shutdown
        truncation = report.truncation
        assert truncation is not None
        assert truncation.first_lost_offset == end
        assert truncation.bytes_cut == faulty.partial_bytes
        assert report.removed_segments == []
        assert read_all(log) == before
        assert log.append(make_batch(1, tag="again")).first_offset == end
    with PartitionLog.open(directory, CONFIG) as log:
        assert log.recovery_report.clean_shutdown
        assert log.recovery_report.truncation is None
        assert read_all(log) == {**before, end: b"again-0"}
