"""Smoke test of perf/storage_bench.py: it runs, prints one JSON object with every key, cleans up.

Speed bars are the benchmark's business (it prints them); nothing here asserts a speed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "perf" / "storage_bench.py"
TINY = ["--total-mb", "2", "--recovery-mb", "2", "--reps", "2"]
TIMEOUT_S = 180

APPEND_KEYS = {
    "batch_bytes",
    "batches",
    "total_bytes",
    "reps",
    "log_mb_s",
    "log_batches_s",
    "raw_mb_s",
    "raw_batches_s",
    "buffered_mb_s",
    "ratio_raw",
    "ratio_buffered",
    "log_bytes_mb_s",
    "ratio_raw_bytes",
    "floor_mb_s",
    "ratio_raw_floor",
}
READ_KEYS = {"batch_bytes", "total_bytes", "max_bytes", "reps", "mb_s", "validated_mb_s"}
RECOVERY_KEYS = {
    "batch_bytes",
    "batches",
    "total_bytes",
    "reps",
    "seconds",
    "report_seconds",
    "mb_s",
    "s_per_gib",
}
ENV_KEYS = {
    "python",
    "cpu_count",
    "crc32c_hardware",
    "dir",
    "filesystem",
    "page_cache",
    "loadavg_start",
    "loadavg_end",
    "runtime_s",
}
BAR_KEYS = {"append_16k_ratio_min", "append_1k_ratio_min", "recovery_mb_s_min"}
MET_KEYS = {"append_16k_ratio", "append_1k_ratio", "recovery_16k_mb_s", "recovery_1k_mb_s"}


def run_bench(parent: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # cwd outside the repository: the script must stand alone with the installed packages.
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--dir", str(parent), *extra],
        cwd=parent.parent,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def assert_positive_numbers(section: dict[str, Any], keys: set[str], where: str) -> None:
    missing = keys - section.keys()
    assert not missing, f"{where}: missing {sorted(missing)}"
    for key in keys:
        value = section[key]
        assert isinstance(value, int | float), f"{where}.{key} = {value!r}"
        assert not isinstance(value, bool), f"{where}.{key} = {value!r}"
        assert math.isfinite(value), f"{where}.{key} = {value!r}"
        assert value > 0, f"{where}.{key} = {value!r}"


@pytest.fixture
def bench_parent(tmp_path: Path) -> Path:
    parent = tmp_path / "bench"
    parent.mkdir()
    return parent


def test_json_has_every_key_with_positive_numbers(bench_parent: Path) -> None:
    proc = run_bench(bench_parent, "--json")

    result = json.loads(proc.stdout)  # exactly one JSON object: trailing text would fail here
    assert set(result) == {"append", "read", "recovery", "env", "bars"}

    assert set(result["append"]) == {"1KiB", "16KiB"}
    for label, case in result["append"].items():
        assert_positive_numbers(case, APPEND_KEYS, f"append.{label}")
        assert set(case["samples_mb_s"]) == {
            "log_in_place",
            "log_bytes",
            "raw",
            "buffered",
            "floor",
        }
        for name, samples in case["samples_mb_s"].items():
            assert len(samples) == 2, f"append.{label}.samples_mb_s.{name}"
            assert all(s > 0 for s in samples)
    assert result["append"]["1KiB"]["batch_bytes"] == 1024
    assert result["append"]["16KiB"]["batch_bytes"] == 16384
    assert result["append"]["16KiB"]["total_bytes"] == 2 * 1024 * 1024

    assert_positive_numbers(result["read"], READ_KEYS, "read")

    assert set(result["recovery"]) == {"16KiB", "1KiB"}
    for label, case in result["recovery"].items():
        assert_positive_numbers(case, RECOVERY_KEYS, f"recovery.{label}")

    env = result["env"]
    assert not ENV_KEYS - env.keys(), sorted(ENV_KEYS - env.keys())
    assert isinstance(env["crc32c_hardware"], bool)
    assert env["cpu_count"] > 0
    assert Path(env["dir"]).parent == bench_parent
    assert {"mount_point", "type", "device"} <= env["filesystem"].keys()

    bars = result["bars"]
    assert_positive_numbers(bars, BAR_KEYS, "bars")
    assert set(bars["met"]) == MET_KEYS
    assert all(isinstance(v, bool) for v in bars["met"].values())  # reported, not asserted

    assert list(bench_parent.iterdir()) == [], "the benchmark left files behind"


def test_table_output(bench_parent: Path) -> None:
    proc = run_bench(bench_parent)

    for heading in ("Environment", "Append", "Read", "Recovery", "crc32c", "page cache"):
        assert heading in proc.stdout
    assert not proc.stdout.lstrip().startswith("{")
    assert list(bench_parent.iterdir()) == []
