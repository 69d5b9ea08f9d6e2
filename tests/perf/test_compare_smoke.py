"""Smoke test of perf/compare.py: tiny workloads on all three servers, table and cleanup.

compare.py runs as a subprocess through its real entry point, starting Redis, NATS
and logserver itself, with a few thousand records. Checked: exit status, the
Markdown table at the path given (never perf/RESULTS.md), every figure in the
JSON, and that no server outlives the run (each PID gone, data dirs removed) --
also when the run is stopped with SIGTERM halfway. Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[2] / "perf"
SYSTEMS = ("logserver", "redis", "nats")
WORKLOADS = ("produce_100", "produce_1000", "consume_100", "consume_1000")
TINY = (
    *("--records-100", "3000", "--records-1000", "1000"),
    *("--rounds", "2", "--latency-seconds", "0.5"),
)
SERVER_PID = re.compile(r"\[compare\] (\w+): server pid (\d+) on port")

pytestmark = pytest.mark.skipif(
    not (shutil.which("redis-server") and shutil.which("nats-server")),
    reason="redis-server and nats-server (Debian packages) are needed; scripts/test installs them",
)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone for our purpose only once reaped; compare.py reaps its children
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1].startswith("Z")


def command(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, str(PERF / "compare.py"), "--dir", str(tmp_path / "data"), *args]


def test_tiny_run_writes_the_table_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    output = tmp_path / "RESULTS.md"
    results_md = PERF / "RESULTS.md"
    before = results_md.stat().st_mtime_ns if results_md.exists() else None
    proc = subprocess.run(
        [*command(tmp_path, *TINY, "--output", str(output), "--json", "--max-seconds", "55")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)

    results = report["results"]
    assert sorted(results) == sorted(SYSTEMS)
    for name in SYSTEMS:
        for key in WORKLOADS:
            figures = results[name][key]
            assert figures["records"] == (3000 if key.endswith("_100") else 1000), (name, key)
            assert figures["records_per_s"] > 0, (name, key)
            assert figures["mb_s"] > 0, (name, key)
            assert set(figures["cpu"]) == {"client", "server"}, (name, key)
            assert len(figures["rounds_records_per_s"]) == 2, (name, key)
        assert results[name]["produce_100"]["data_dir_bytes"] > 0, name
        latency = results[name]["latency"]
        assert latency["received"] == latency["sent"] == 1000, name
        assert latency["p50_ms"] <= latency["p99_ms"] <= latency["p999_ms"], name
        assert gone(results[name]["server"]["pid"]), name
    assert report["bar"]["met"] in (True, False)
    assert len(report["bar"]["checked"]) == 8
    assert {"redis-server", "nats-server", "redis", "hiredis", "nats-py"} <= report[
        "versions"
    ].keys()

    table = output.read_text()
    assert "| workload | logserver | Redis Streams | NATS JetStream |" in table
    assert "logserver ÷ Redis Streams" in table
    assert "logserver ÷ NATS JetStream" in table
    assert "appendfsync everysec" in table
    assert "log.flush.interval.ms=1000" in table
    assert re.search(r"producer, 100-byte values \| [\d,]+ records/s", table)
    assert (results_md.stat().st_mtime_ns if results_md.exists() else None) == before
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.timeout(90)
def test_sigterm_midway_stops_every_server(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    proc = subprocess.Popen(
        command(tmp_path, "--systems", "redis,nats", "--output", str(tmp_path / "out.md")),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    with proc:
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                found = SERVER_PID.search(line)
                if found:
                    pids.append(int(found.group(2)))
                if "round 1:" in line:  # the servers are busy
                    break
            assert pids, "compare.py never reported a server"
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            rest = proc.stderr.read()
            proc.wait(30)
        finally:
            if proc.poll() is None:  # a failed assertion: still let it stop its servers
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert proc.returncode == 130, rest
    assert "interrupted; servers stopped" in rest
    for pid in pids:
        assert gone(pid), pid
    assert list((tmp_path / "data").iterdir()) == []
    assert not (tmp_path / "out.md").exists()
