"""``logserver dev-cluster``: ZooKeeper and three brokers on loopback, for a laptop.

Starts Debian's ZooKeeper (installing the package when missing and running as
root) and the brokers, with all data under one directory. It prints the
addresses and an ``export LOGSERVER_BROKERS=…`` line, then waits. Ctrl-C (or
SIGTERM) stops the brokers cleanly, then ZooKeeper.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from coordination.zookeeper_server import (
    ZooKeeperNotInstalledError,
    ZooKeeperProcess,
    ZooKeeperStartError,
)

__all__ = ["main"]

_READY_TIMEOUT_S = 30.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logserver dev-cluster",
        description="Run ZooKeeper and a few brokers on loopback until Ctrl-C.",
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("dev-cluster"), help="data (./dev-cluster)"
    )
    parser.add_argument("--brokers", type=int, default=3, help="how many brokers (3)")
    parser.add_argument("--base-port", type=int, default=9092, help="first broker's port (9092)")
    return parser


def _install_zookeeper() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ZooKeeperNotInstalledError(
            "install Debian's zookeeper package (apt-get install zookeeper)"
        )
    print("installing Debian's zookeeper package…", flush=True)  # noqa: T201
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "zookeeper"], check=True, env=env)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a broker exited with {process.returncode}; see {log_path}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"no broker listening on port {port} after {_READY_TIMEOUT_S} s")


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    root: Path = args.dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    zookeeper = ZooKeeperProcess(root / "zookeeper")
    brokers: list[subprocess.Popen[bytes]] = []
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            zookeeper.start()
        except ZooKeeperNotInstalledError:
            _install_zookeeper()
            zookeeper.start()
        connect = f"{zookeeper.address}/logserver"
        count = args.brokers
        for i in range(count):
            port = args.base_port + i
            log_path = root / f"broker-{i}.log"
            command = [
                sys.executable, "-m", "logserver",
                "--broker-id", str(i),
                "--listeners", f"PLAINTEXT://127.0.0.1:{port}",
                "--log-dirs", str(root / f"broker-{i}"),
                "--default-replication-factor", str(min(3, count)),
                "--min-insync-replicas", str(2 if count >= 3 else 1),
            ]  # fmt: skip
            with open(log_path, "ab") as out:
                brokers.append(
                    subprocess.Popen(
                        command,
                        env={**os.environ, "ZOOKEEPER_CONNECT": connect},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            _wait_for_port(port, brokers[-1], log_path)
        addresses = ",".join(f"127.0.0.1:{args.base_port + i}" for i in range(count))
        print(f"ZooKeeper  {connect}")  # noqa: T201
        for i in range(count):
            print(f"broker {i}   127.0.0.1:{args.base_port + i}   log {root}/broker-{i}.log")  # noqa: T201
        print(f"export LOGSERVER_BROKERS={addresses}", flush=True)  # noqa: T201
        while not stop and all(b.poll() is None for b in brokers):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except (ZooKeeperStartError, ZooKeeperNotInstalledError, RuntimeError, OSError) as exc:
        print(f"logserver dev-cluster: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        for process in brokers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in brokers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        zookeeper.close()
        print("stopped", flush=True)  # noqa: T201
    return 0
