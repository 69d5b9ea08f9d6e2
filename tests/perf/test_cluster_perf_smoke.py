"""Smoke tests of the cluster benchmarks in perf/: a real ZooKeeper and three real brokers.

replication_perf.py and failover_time.py run through their entry points with
tiny numbers. Checked: exit status, the figures printed (one JSON object with
every field, or the table), and that nothing is left behind: no process whose
command line names the run's directory (ZooKeeper, the brokers, a restarted
broker) and no file. Nothing here asserts a speed or a failover time.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PERF = Path(__file__).resolve().parents[2] / "perf"
TIMEOUT_S = 150


def processes_naming(text: str) -> list[str]:
    """``PID: command line`` of every process whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in command:
            found.append(f"{entry}: {command}")
    return found


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[Path]:
    parent = tmp_path / "cluster-bench"
    parent.mkdir()
    yield parent
    assert processes_naming(str(parent)) == [], "a tool left a process behind"
    assert list(parent.iterdir()) == [], "a tool left files behind"


def run_tool(script: str, parent: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd outside the repository: the scripts must stand alone with the installed packages.
    proc = subprocess.run(
        [sys.executable, str(PERF / script), "--dir", str(parent), *args],
        cwd=parent.parent,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def assert_positive(value: Any, where: str) -> None:
    assert isinstance(value, int | float), f"{where} = {value!r}"
    assert not isinstance(value, bool), f"{where} = {value!r}"
    assert math.isfinite(value), f"{where} = {value!r}"
    assert value > 0, f"{where} = {value!r}"


def assert_cluster_env(env: dict[str, Any]) -> None:
    cluster = env["cluster"]
    assert set(cluster["brokers"]) == {"0", "1", "2"}
    assert cluster["exit_codes"] == {"0": 0, "1": 0, "2": 0}, "brokers did not stop cleanly"
    assert cluster["broker_settings_given"] == {}  # the defaults of logserver/config.py
    settings = cluster["settings_in_force"]
    assert {"zookeeper.session.timeout.ms", "replica.lag.time.max.ms"} <= settings.keys()
    # ZooKeeper granted each broker the session timeout the broker asked for
    wanted = int(settings["zookeeper.session.timeout.ms"])
    assert cluster["negotiated_session_timeouts_ms"] == [wanted] * 3
    assert {"loadavg_start", "loadavg_end", "runtime_s", "source", "event_loop"} <= env.keys()


def test_replication_perf_json(parent: Path) -> None:
    proc = run_tool(
        "replication_perf.py", parent, "--json", "--num-records", "5000", "--rounds", "2"
    )
    out = json.loads(proc.stdout)  # exactly one JSON object: trailing text would fail here
    assert set(out) == {"rounds", "summary", "config", "env"}
    rounds = out["rounds"]
    assert [r["order"] for r in rounds] == [["rf1", "rf3"], ["rf3", "rf1"]]  # alternate
    for r in rounds:
        runs = r["runs"]
        assert set(runs) == {"rf1", "rf3"}
        for name, factor, acks in (("rf1", 1, 1), ("rf3", 3, "all")):
            result = runs[name]
            assert result["records"] == 5000
            assert result["errors"] == 0
            assert result["replication_factor"] == factor
            assert result["acks"] == acks
            for key in ("records_per_s", "mb_s", "elapsed_s"):
                assert_positive(result[key], f"{name}.{key}")
            assert result["latency"]["count"] == 5000
            (partition,) = result["partitions_after"]
            assert len(partition["replicas"]) == factor
            assert {"tool", "broker 0", "broker 1", "broker 2"} <= result["cpu"].keys()
        assert runs["rf3"]["topic_config"] == {"min.insync.replicas": "2"}
        assert r["ratio"] == pytest.approx(
            runs["rf3"]["records_per_s"] / runs["rf1"]["records_per_s"]
        )
    summary = out["summary"]
    assert summary["ratios"] == [r["ratio"] for r in rounds]
    assert summary["ratio_median"] == pytest.approx(sum(summary["ratios"]) / 2)
    for key in ("rf1_records_per_s_median", "rf3_records_per_s_median", "rf3_mb_s_median"):
        assert_positive(summary[key], key)
    assert summary["bar_ratio_min"] == 0.40
    assert isinstance(summary["met"], bool)  # reported, not asserted
    assert_cluster_env(out["env"])


def test_replication_perf_table(parent: Path) -> None:
    proc = run_tool(
        "replication_perf.py", parent, "--num-records", "2000", "--rounds", "1",
        "--order", "rf3-first",
    )  # fmt: skip
    for text in ("Environment", "zookeeper.session.timeout.ms", "records/sec", "MB/s"):
        assert text in proc.stdout
    assert "round 1 (rf3, rf1): rf3/rf1 = " in proc.stdout
    assert "rf3/rf1 = " in proc.stdout.splitlines()[-1]


def test_failover_time_one_round(parent: Path) -> None:
    proc = run_tool("failover_time.py", parent, "--json", "--runs", "1", "--warmup-s", "0.5")
    out = json.loads(proc.stdout)
    assert set(out) == {"failover", "config", "env"}
    result = out["failover"]
    assert result["unfinished"] is None
    assert result["errors"] == 0, result["first_error"]
    (only,) = result["rounds"]
    assert only["new_leader"] != only["killed"]
    assert only["leader_epoch_after"] > only["leader_epoch_before"]
    assert_positive(only["failover_s"], "failover_s")
    assert result["failover_s"] == [only["failover_s"]]
    assert result["median_s"] == only["failover_s"]
    timeline = only["timeline"]
    assert timeline["first_ack_sent_after_kill_s"] == only["failover_s"]
    assert_positive(timeline["controller_wrote_leader_s"], "controller_wrote_leader_s")
    # None only when the restarted broker re-registered before the watch was read again
    if timeline["session_expired_s"] is not None:
        assert_positive(timeline["session_expired_s"], "session_expired_s")
    assert_positive(only["back_in_isr_s"], "back_in_isr_s")
    assert result["acknowledged"] > 0
    assert isinstance(result["met"], bool)  # reported, not asserted
    assert_cluster_env(out["env"])

    # The table of a full run, from the same figures.
    table = subprocess.run(
        [sys.executable, "-c", RENDER, str(PERF)],
        input=proc.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for text in ("round 1: failover-0: killed broker", "first ack", "median", "session.timeout"):
        assert text in table


RENDER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import failover_time
failover_time.print_table(json.load(sys.stdin))
"""
