"""The three servers of ``perf/compare.py``, each on loopback with a free port and a temp dir.

* Redis: ``redis-server --port N --appendonly yes --appendfsync everysec --dir DIR
  --save "" --auto-aof-rewrite-percentage 0`` (AOF fsynced once a second, no RDB
  snapshots, no automatic AOF rewrite: a rewrite would shrink the AOF in the
  middle of a producer run, so the data-dir growth would not be that run's, and
  its forked child would take CPU the table does not count);
* NATS: ``nats-server -js -p N -sd DIR`` (JetStream; the streams are created
  with file storage);
* logserver: ``python -m logserver ... --log-flush-interval-ms 1000`` through
  ``broker_launcher.launch_broker`` (fsync at least once a second, like Redis).

Each runs in a session of its own (a ^C aimed at the tool reaches it only as
the tool's SIGTERM), is known by PID, and is stopped on exit: SIGTERM, then
SIGKILL after 20 s; an ``atexit`` hook kills whatever a crash left running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from broker_launcher import launch_broker

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOGSERVER_FLAGS = ("--log-flush-interval-ms", "1000")
_LIVE: set[subprocess.Popen[bytes]] = set()


@dataclass
class Server:
    name: str
    pid: int
    port: int
    data_dir: Path
    command: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(process: subprocess.Popen[bytes], port: int, name: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} not listening on {port} within {READY_TIMEOUT_S} s"
                ) from exc
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
    _LIVE.discard(process)


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_LIVE):
        with contextlib.suppress(Exception):
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def _run(name: str, argv: Sequence[str], port: int, parent: Path | None) -> Iterator[Server]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"compare-{name}-", dir=parent))
    store = data_dir / "data"
    store.mkdir()
    log = data_dir / "server.log"
    argv = [arg.replace("{dir}", str(store)) for arg in argv]
    try:
        with open(log, "wb") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE.add(process)
        try:
            _wait_listening(process, port, name, log)
            yield Server(name, process.pid, port, store, " ".join(argv))
        finally:
            _stop(process)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def redis(parent: Path | None = None) -> Iterator[Server]:
    port = free_port()
    argv = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--dir", "{dir}",
        "--save", "",
        "--auto-aof-rewrite-percentage", "0",
    ]  # fmt: skip
    with _run("redis", argv, port, parent) as server:
        yield server


@contextlib.contextmanager
def nats(parent: Path | None = None) -> Iterator[Server]:
    port = free_port()
    argv = ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", "{dir}"]
    with _run("nats", argv, port, parent) as server:
        yield server


@contextlib.contextmanager
def logserver(parent: Path | None = None) -> Iterator[Server]:
    with launch_broker(parent, flags=LOGSERVER_FLAGS) as broker:
        assert broker.pid is not None
        yield Server(
            "logserver",
            broker.pid,
            broker.port,
            broker.data_dir,
            " ".join(["logserver", *broker.command()[3:]]),
        )


def version_of(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip()
