"""Smoke tests of the client benchmarks in perf/: each runs through its real entry point.

producer_perf.py, consumer_perf.py and end_to_end_latency.py run as subprocesses
with tiny numbers, each launching its own broker (broker_launcher.py), or
against one started with ``python perf/broker_launcher.py``. Checked: exit status,
one JSON object with every field, record counts, a clean broker stop and no
files left behind. Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PERF = Path(__file__).resolve().parents[2] / "perf"
TIMEOUT_S = 120

LATENCY_KEYS = {"count", "avg_ms", "p50_ms", "p99_ms", "p999_ms", "max_ms"}
ENV_KEYS = {
    "source",
    "cpu",
    "python",
    "cpu_count",
    "event_loop",
    "loadavg_start",
    "loadavg_end",
    "runtime_s",
    "broker",
}
PRODUCER_KEYS = {
    "records",
    "record_size",
    "elapsed_s",
    "send_loop_s",
    "records_per_s",
    "mb_s",
    "mib_s",
    "latency",
    "errors",
    "partitions",
    "topic_created",
}
CONSUMER_KEYS = {
    "records",
    "wanted",
    "complete",
    "bytes",
    "elapsed_s",
    "records_per_s",
    "mb_s",
    "mib_s",
    "polls",
    "partitions",
    "start_offsets",
}
E2E_KEYS = {
    "latency",
    "ack_latency",
    "send_lag",
    "sent",
    "received",
    "missing",
    "duplicates",
    "out_of_order",
    "errors",
    "achieved_rate",
}


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
    assert "Traceback" not in proc.stderr, proc.stderr  # e.g. a failing done-callback
    return proc


def run_json(script: str, parent: Path, *args: str) -> dict[str, Any]:
    proc = run_tool(script, parent, "--json", *args)
    return json.loads(proc.stdout)  # exactly one JSON object: trailing text would fail here


def assert_number(value: Any, where: str, *, positive: bool = True) -> None:
    assert isinstance(value, int | float), f"{where} = {value!r}"
    assert not isinstance(value, bool), f"{where} = {value!r}"
    assert math.isfinite(value), f"{where} = {value!r}"
    assert value > 0 if positive else value >= 0, f"{where} = {value!r}"


def assert_latency(summary: dict[str, Any], where: str, count: int) -> None:
    assert set(summary) >= LATENCY_KEYS, f"{where}: {sorted(summary)}"
    assert summary["count"] == count, f"{where}.count = {summary['count']}, wanted {count}"
    for key in LATENCY_KEYS - {"count"}:
        assert_number(summary[key], f"{where}.{key}", positive=False)
    assert summary["p50_ms"] <= summary["p99_ms"] <= summary["p999_ms"] <= summary["max_ms"]


def assert_env(env: dict[str, Any], parent: Path, *, launched: bool = True) -> None:
    assert not ENV_KEYS - env.keys(), sorted(ENV_KEYS - env.keys())
    assert env["event_loop"] in ("uvloop", "asyncio")
    assert {"commit", "client_or_broker_modified"} <= env["source"].keys()
    for name, used in env["cpu"].items():  # empty where /proc/PID/schedstat is missing
        assert name in ("tool", "broker", "consumer")
        assert {"cpu_s", "runqueue_wait_s", "wall_s"} <= used.keys()
    broker = env["broker"]
    if launched:
        assert broker["kind"] == "launched"
        assert Path(broker["data_dir"]).parent == parent
        assert broker["exit_code"] == 0, "the launched broker did not stop cleanly on SIGTERM"
    else:
        assert broker["kind"] == "external"


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[Path]:
    parent = tmp_path / "bench"
    parent.mkdir()
    yield parent
    assert list(parent.iterdir()) == [], "a tool left files behind"


def test_producer_perf_json(parent: Path) -> None:
    out = run_json(
        "producer_perf.py", parent, "--num-records", "3000", "--record-size", "100",
        "--partitions", "2", "--yield-every", "500",
    )  # fmt: skip
    assert set(out) == {"producer", "config", "env", "bars"}
    result = out["producer"]
    assert not PRODUCER_KEYS - result.keys(), sorted(PRODUCER_KEYS - result.keys())
    assert result["records"] == 3000
    assert result["record_size"] == 100
    assert result["errors"] == 0
    assert result["topic_created"] is True
    assert result["partitions"] == 2
    for key in ("elapsed_s", "send_loop_s", "records_per_s", "mb_s", "mib_s"):
        assert_number(result[key], f"producer.{key}")
    assert_latency(result["latency"], "producer.latency", 3000)  # batch method: every record
    assert result["latency"]["method"] == "batch"
    assert result["batches"] >= 1
    assert out["config"]["yield_every"] == 500
    assert out["config"]["distinct_values"] == 1024
    assert set(out["bars"]["met"]) == {"records_per_s_100b"}
    assert isinstance(out["bars"]["met"]["records_per_s_100b"], bool)  # reported, not asserted
    assert_env(out["env"], parent)


def test_producer_perf_paced_sampled_compressed(parent: Path) -> None:
    out = run_json(
        "producer_perf.py", parent, "--num-records", "1000", "--record-size", "1000",
        "--throughput", "4000", "--latency-method", "sample", "--sample-every", "10",
        "--compression", "lz4", "--acks", "all", "--event-loop", "asyncio",
    )  # fmt: skip
    result = out["producer"]
    assert result["records"] == 1000
    assert result["errors"] == 0
    assert_latency(result["latency"], "producer.latency", 100)
    assert result["latency"]["method"] == "sample"
    # 1000 records at 4000/s are due over 0.25 s: the pacing held them back.
    assert result["send_loop_s"] >= 0.2
    assert out["config"]["compression"] == "lz4"
    assert set(out["bars"]["met"]) == {"mb_s_1000b"}
    assert out["env"]["event_loop"] == "asyncio"


def test_producer_perf_table(parent: Path) -> None:
    proc = run_tool("producer_perf.py", parent, "--num-records", "500", "--compression", "snappy")
    for text in ("Environment", "records sent", "records/sec", "MB/sec", "p99.9", "max"):
        assert text in proc.stdout
    assert not proc.stdout.lstrip().startswith("{")


def test_consumer_perf_produces_first_then_consumes(parent: Path) -> None:
    out = run_json("consumer_perf.py", parent, "--num-records", "5000", "--partitions", "3")
    assert set(out) == {"consumer", "produced", "config", "env", "bars"}
    result = out["consumer"]
    assert not CONSUMER_KEYS - result.keys(), sorted(CONSUMER_KEYS - result.keys())
    assert result["records"] == result["wanted"] == 5000
    assert result["complete"] is True
    assert result["bytes"] == 5000 * 100
    assert result["partitions"] == 3
    assert result["start_offsets"] == [0, 0, 0]
    for key in ("elapsed_s", "records_per_s", "mb_s", "mib_s", "polls"):
        assert_number(result[key], f"consumer.{key}")
    assert out["produced"]["records"] == 5000  # the topic was missing: produced first
    assert set(out["bars"]["met"]) == {"records_per_s_100b"}
    assert_env(out["env"], parent)


def test_end_to_end_latency_consumer_process(parent: Path) -> None:
    out = run_json("end_to_end_latency.py", parent, "--num-records", "300", "--throughput", "1000")
    assert set(out) == {"e2e", "config", "env", "bars"}
    result = out["e2e"]
    assert not E2E_KEYS - result.keys(), sorted(E2E_KEYS - result.keys())
    assert result["sent"] == result["received"] == 300
    assert result["missing"] == result["duplicates"] == result["out_of_order"] == 0
    assert result["errors"] == 0
    assert_latency(result["latency"], "e2e.latency", 300)
    assert_latency(result["ack_latency"], "e2e.ack_latency", 300)
    assert_latency(result["send_lag"], "e2e.send_lag", 300)
    assert_number(result["achieved_rate"], "e2e.achieved_rate")
    assert out["config"]["consumer"] == "process"
    assert isinstance(out["bars"]["met"]["p99_ms"], bool)
    assert_env(out["env"], parent)


def test_end_to_end_latency_inline_table(parent: Path) -> None:
    proc = run_tool(
        "end_to_end_latency.py", parent, "--num-records", "200", "--throughput", "2000",
        "--consumer", "inline", "--warmup-records", "50", "--record-size", "16",
    )  # fmt: skip
    for text in ("End-to-end", "200 sent, 200 received, 0 missing", "p99.9", "send lag"):
        assert text in proc.stdout


@pytest.fixture
def external_broker(parent: Path) -> Iterator[str]:
    """``python perf/broker_launcher.py``: a broker the tools reach with --bootstrap-server."""
    launcher = subprocess.Popen(
        [sys.executable, str(PERF / "broker_launcher.py"), "--dir", str(parent)],
        cwd=parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()  # bootstrap=HOST:PORT pid=PID data_dir=DIR
        fields = dict(item.split("=", 1) for item in line.split())
        assert {"bootstrap", "pid", "data_dir"} <= fields.keys(), line
        yield fields["bootstrap"]
        os.kill(launcher.pid, signal.SIGTERM)
        assert launcher.wait(30) == 0, launcher.stderr.read() if launcher.stderr else ""
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(10)
        for stream in (launcher.stdout, launcher.stderr):
            if stream is not None:
                stream.close()


def test_tools_against_a_given_broker(parent: Path, external_broker: str) -> None:
    produced = run_json(
        "producer_perf.py", parent, "--bootstrap-server", external_broker,
        "--topic", "shared", "--num-records", "2000",
    )  # fmt: skip
    assert produced["producer"]["records"] == 2000
    assert produced["producer"]["topic_created"] is True
    assert_env(produced["env"], parent, launched=False)

    # The topic exists: consumer_perf reads what it holds, producing nothing.
    consumed = run_json(
        "consumer_perf.py", parent, "--bootstrap-server", external_broker, "--topic", "shared"
    )
    assert consumed["produced"] is None
    assert consumed["consumer"]["records"] == 2000
    assert consumed["consumer"]["complete"] is True
    assert_env(consumed["env"], parent, launched=False)

    latency = run_json(
        "end_to_end_latency.py", parent, "--bootstrap-server", external_broker,
        "--topic", "shared", "--num-records", "100", "--throughput", "1000",
    )  # fmt: skip
    # An existing topic: the consumer starts at its end, past the 2000 records above.
    assert latency["e2e"]["received"] == 100
    assert latency["e2e"]["missing"] == 0
    assert latency["config"]["topic_created"] is False
