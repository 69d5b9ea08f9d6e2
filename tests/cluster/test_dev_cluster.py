"""``logserver dev-cluster`` through its real entry point: up, usable, and down on Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from client import BlockingAdmin, BlockingProducer

TIMEOUT_S = 60.0


def three_free_ports() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base > 65000:
            continue
        ok = True
        for port in range(base, base + 3):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return base
    raise AssertionError("no three consecutive free ports")


def test_dev_cluster_starts_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    base = three_free_ports()
    process = subprocess.Popen(
        [sys.executable, "-m", "logserver", "dev-cluster", "--dir", str(tmp_path / "dev"),
         "--base-port", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        lines = []
        deadline = time.monotonic() + TIMEOUT_S
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("export LOGSERVER_BROKERS="):
                break
        brokers = lines[-1].strip().split("=", 1)[1]
        assert brokers == ",".join(f"127.0.0.1:{base + i}" for i in range(3)), lines

        with BlockingAdmin(brokers) as admin:
            admin.create_topic("dev", num_partitions=3)
            description = admin.describe_topic("dev")
        assert all(len(p.replicas) == 3 for p in description.partitions)
        with BlockingProducer(brokers, acks="all") as producer:
            assert producer.send_and_wait("dev", b"hello").offset == 0

        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, out
        assert "stopped" in out
    finally:
        if process.poll() is None:  # a failed test: let it stop its brokers and ZooKeeper
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
