"""Smoke tests of perf/group_perf.py: a real ZooKeeper, three brokers and three member processes.

The tool runs through its entry point with a tiny topic and one round, and once more
stopped by SIGTERM while its members run. Checked: exit status, the figures printed (one
JSON object with every field), and that nothing is left behind: no process whose command
line names the run's directory (ZooKeeper, the brokers, the members, a restarted member)
and no file. Nothing here asserts a speed or a rebalance time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.perf.test_cluster_perf_smoke import (
    PERF,
    assert_cluster_env,
    assert_positive,
    processes_naming,
    run_tool,
)


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[Path]:
    parent = tmp_path / "group-bench"
    parent.mkdir()
    yield parent
    assert processes_naming(str(parent)) == [], "the tool left a process behind"
    assert list(parent.iterdir()) == [], "the tool left files behind"


def test_group_perf_one_round(parent: Path) -> None:
    proc = run_tool(
        "group_perf.py", parent, "--json", "--num-records", "3000", "--rounds", "1",
        "--progress-ms", "100",
    )  # fmt: skip
    out = json.loads(proc.stdout)  # exactly one JSON object: trailing text would fail here
    assert set(out) == {
        "throughput", "rounds", "summary", "unfinished", "members", "group_settings", "config",
        "env",
    }  # fmt: skip
    assert out["unfinished"] is None

    throughput = out["throughput"]
    assert throughput["records"] == 3000
    assert throughput["records_counted"] == 3000 + throughput["duplicates"]
    assert sum(throughput["records_per_member"].values()) == throughput["records_counted"]
    assert len(throughput["records_per_member"]) == 3
    for key in ("records_per_s", "mb_s", "elapsed_s", "assigned_after_start_s"):
        assert_positive(throughput[key], key)
    assert {"member-0.0", "broker 0"} <= throughput["cpu"].keys()

    (only,) = out["rounds"]
    assert only["killed"] == "member-0.0"
    assert_positive(only["rebalance_s"], "rebalance_s")
    assert only["timeline"]["assigned_s"] == only["rebalance_s"]
    timeline = only["timeline"]
    assert timeline["last_heartbeat_s"] < 0  # the dead member was last heard before the kill
    # then the coordinator removed it, the survivors rejoined and got their assignments
    for key in ("expired_s", "revoked_s", "generation_s"):
        assert_positive(timeline[key], key)
    assert timeline["expired_s"] <= timeline["generation_s"] <= only["rebalance_s"]
    assert timeline["revoked_s"] <= only["rebalance_s"]
    assert_positive(only["restarted_settled_s"], "restarted_settled_s")
    assert [m["name"] for m in out["members"]] == [
        "member-0.0", "member-1.0", "member-2.0", "member-0.1",
    ]  # fmt: skip

    summary = out["summary"]
    assert summary["rebalance_s"] == [only["rebalance_s"]]
    assert summary["rebalance_median_s"] == only["rebalance_s"]
    assert summary["session_timeout_ms"] == 6000
    assert summary["bar_s"] == 9.0
    assert isinstance(summary["met"], bool)  # reported, not asserted
    assert out["group_settings"]["group.initial.rebalance.delay.ms"] == "3000"
    assert_cluster_env(out["env"])


def test_group_perf_stops_everything_on_sigterm(parent: Path) -> None:
    stderr_path = parent.parent / "group-perf.err"
    with stderr_path.open("wb") as stderr:
        tool = subprocess.Popen(
            [sys.executable, str(PERF / "group_perf.py"), "--dir", str(parent),
             "--num-records", "3000", "--rounds", "3"],
            cwd=parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while "starting 3 members" not in stderr_path.read_text():
                assert tool.poll() is None, stderr_path.read_text()
                assert time.monotonic() < deadline, stderr_path.read_text()
                time.sleep(0.1)
            time.sleep(1.0)  # the members are up and joining
            members = processes_naming("group_member.py")
            os.kill(tool.pid, signal.SIGTERM)
            assert tool.wait(60) == 130, stderr_path.read_text()
        finally:
            if tool.poll() is None:
                tool.kill()
                tool.wait(10)
    assert "interrupted; every process it started is stopped" in stderr_path.read_text()
    assert any(str(parent) in m for m in members), members
