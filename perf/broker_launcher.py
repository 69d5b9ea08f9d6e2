"""Shared by the client benchmarks: a throw-away standalone broker, topics, event loop, statistics.

``perf/producer_perf.py``, ``perf/consumer_perf.py`` and ``perf/end_to_end_latency.py``
import this module (they run as scripts, so ``perf/`` is on ``sys.path``). Without
``--bootstrap-server`` each of them measures against a broker of its own::

    with broker_for(None) as broker:        # a fresh broker in a fresh temp dir
        ... broker.bootstrap ...            # "127.0.0.1:PORT"
    # SIGTERM'd (clean shutdown), its data directory removed

The broker is ``sys.executable -m logserver --listeners PLAINTEXT://127.0.0.1:0
--log-dirs DIR``, a separate process (it gets a core of its own where there are
two), started in its own session so a ^C aimed at the tool reaches the broker
only as the tool's SIGTERM. Settings given to brokers through the environment
(``LOG_DIRS``, ``LOGSERVER_CONFIG``, ...) are not passed on: the flags are the
whole configuration. It is ready when it logs ``broker N serving on HOST:PORT``;
its output is read on a thread and the last lines are quoted in any failure.

Run alone, it starts such a broker and keeps it until ^C, printing its address
and PID: the way to profile the broker while a tool runs against it::

    python perf/broker_launcher.py                  # prints bootstrap=127.0.0.1:PORT pid=PID
    py-spy record --pid PID -o broker.speedscope --format speedscope &
    python perf/producer_perf.py --bootstrap-server 127.0.0.1:PORT ...
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from client.connection import BrokerConnection
from client.errors import TopicAlreadyExistsError, error_for_code
from client.protocol import ApiKey
from logserver.config import CONFIG_ENV, SETTINGS

__all__ = [
    "BrokerStartError",
    "BrokerUnderTest",
    "CpuMeter",
    "LaunchedBroker",
    "broker_for",
    "create_topic",
    "environment",
    "launch_broker",
    "run_async",
    "summarize_ms",
]

READY = re.compile(r"broker \d+ serving on ([^\s,:]+):(\d+)")
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
MB = 1_000_000
MIB = 1 << 20
_SETTING_ENV = frozenset({s.env for s in SETTINGS} | {CONFIG_ENV})
_LIVE: set[LaunchedBroker] = set()

T = TypeVar("T")


class BrokerStartError(RuntimeError):
    """The broker exited, or stayed silent, before it logged ``serving on``."""


class LaunchedBroker:
    """One ``python -m logserver`` process on ``127.0.0.1:port`` with its data in ``data_dir``.

    ``port`` 0 (the default) lets the broker pick a free port; a given port is kept
    across ``start`` after ``kill``/``stop`` (a restart on the same address, as the
    cluster tools do). With ``log_path`` every line the broker prints is appended to
    that file too (the broker stamps its log lines with the time).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        flags: Sequence[str] = (),
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        port: int = 0,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.flags = list(flags)
        self.startup_timeout_s = startup_timeout_s
        self.host = "127.0.0.1"
        self.listen_port = port
        self.port = port
        self.log_path = log_path
        self.exit_code: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._lines: deque[str] = deque(maxlen=200)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "logserver",
            "--listeners",
            f"PLAINTEXT://{self.host}:{self.listen_port}",
            "--log-dirs",
            str(self.data_dir),
            *self.flags,
        ]

    def output(self, last: int = 40) -> str:
        lines = list(self._lines)[-last:]
        return "\n".join(f"    | {line}" for line in lines) or "    | (no output)"

    def start(self) -> LaunchedBroker:
        """Start the broker and wait until it serves; ``BrokerStartError`` otherwise.

        Also after ``stop`` or ``kill``: the same data directory (and port, if given).
        """
        if self.running:
            raise RuntimeError(f"broker pid {self.pid} is already running")
        self._join_reader()
        self._ready.clear()
        self.exit_code = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _SETTING_ENV}
        env["PYTHONUNBUFFERED"] = "1"
        self._process = subprocess.Popen(
            self.command(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        _LIVE.add(self)
        self._reader = threading.Thread(
            target=self._read, args=(self._process,), name="broker-output", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._ready.wait(0.05):
            if not self.running:
                self._join_reader()
                raise BrokerStartError(
                    f"broker exited with {self._process.returncode} before serving\n{self.output()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerStartError(
                    f"broker not serving within {self.startup_timeout_s} s\n{self.output()}"
                )
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        log_file = None if self.log_path is None else open(self.log_path, "a")  # noqa: SIM115
        try:
            self._read_lines(process, log_file)
        finally:
            if log_file is not None:
                log_file.close()

    def _read_lines(self, process: subprocess.Popen[str], log_file: Any) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if log_file is not None:
                log_file.write(line)
                log_file.flush()
            line = line.rstrip("\n")
            self._lines.append(line)
            if not self._ready.is_set():
                found = READY.search(line)
                if found:
                    self.host, self.port = found.group(1), int(found.group(2))
                    self._ready.set()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (the broker flushes and closes its logs), wait; SIGKILL after ``timeout_s``."""
        process = self._process
        if process is None:
            raise RuntimeError("the broker was never started")
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise TimeoutError(
                    f"broker did not exit within {timeout_s} s of SIGTERM\n{self.output()}"
                ) from None
        self._join_reader()
        _LIVE.discard(self)
        self.exit_code = process.returncode
        return process.returncode

    def kill(self) -> None:
        """SIGKILL by PID and reap: failure paths, interpreter exit, and the crashes of
        ``failover_time.py`` (``start`` runs the broker again after)."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        if process is not None:
            self.exit_code = process.returncode
        self._join_reader()
        _LIVE.discard(self)

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_LIVE):
        with contextlib.suppress(Exception):
            broker.kill()


@contextlib.contextmanager
def launch_broker(
    parent: Path | None = None,
    *,
    flags: Sequence[str] = (),
    keep_data: bool = False,
) -> Iterator[LaunchedBroker]:
    """A started broker with a fresh data directory under ``parent`` (default: temp dir).

    On exit the broker is stopped with SIGTERM (``exit_code`` holds its status) and its
    directory removed unless ``keep_data``.
    """
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="perf-broker-", dir=base))
    broker = LaunchedBroker(data_dir, flags=flags)
    try:
        broker.start()
        try:
            yield broker
        finally:
            code = broker.stop()
            if code != 0:
                progress("broker", f"the broker exited with status {code}:\n{broker.output()}")
    finally:
        broker.kill()
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)


class BrokerUnderTest:
    """What a tool measures against: its own launched broker, or one given by address."""

    def __init__(self, bootstrap: str, launched: LaunchedBroker | None) -> None:
        self.bootstrap = bootstrap
        self.launched = launched

    def describe(self) -> dict[str, Any]:
        if self.launched is None:
            return {"kind": "external", "bootstrap": self.bootstrap}
        return {
            "kind": "launched",
            "bootstrap": self.bootstrap,
            "pid": self.launched.pid,
            "data_dir": str(self.launched.data_dir),
            "command": " ".join(self.launched.command()[1:]),
        }


@contextlib.contextmanager
def broker_for(
    bootstrap: str | None,
    parent: Path | None = None,
    *,
    flags: Sequence[str] = (),
) -> Iterator[BrokerUnderTest]:
    """The broker at ``bootstrap``, or (None) a launched one stopped on exit."""
    if bootstrap:
        yield BrokerUnderTest(bootstrap, None)
        return
    with launch_broker(parent, flags=flags) as launched:
        yield BrokerUnderTest(launched.bootstrap, launched)


# -- topics -------------------------------------------------------------------------


def _first_address(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return host.strip("[]") or "localhost", int(port)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> bool:
    """Create ``topic`` with the raw CreateTopics request; False when it already exists."""
    host, port = _first_address(bootstrap)
    connection = await BrokerConnection.open(host, port, client_id="perf")
    try:
        reply, _ = await connection.request(
            ApiKey.CREATE_TOPICS, {"topics": [{"name": topic, "num_partitions": partitions}]}
        )
    finally:
        connection.close()
    for name, code, message in reply["topics"]:
        if name != topic or not code:
            continue
        if code == TopicAlreadyExistsError.code:
            return False
        raise error_for_code(code, message)
    return True


# -- running ------------------------------------------------------------------------


def event_loop_name(choice: str) -> str:
    """The loop ``run_async`` uses for ``choice`` (auto: uvloop when installed, as the broker)."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("--event-loop uvloop: uvloop is not installed") from None
        return "asyncio"
    return "uvloop"


def run_async(main: Callable[[], Awaitable[T]], choice: str = "auto") -> T:
    if event_loop_name(choice) == "uvloop":
        import uvloop

        return uvloop.run(main())  # type: ignore[arg-type]
    return asyncio.run(main())  # type: ignore[arg-type]


def progress(tool: str, message: str) -> None:
    print(f"[{tool}] {message}", file=sys.stderr, flush=True)


# -- statistics ---------------------------------------------------------------------


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of all at or below it."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize_ms(latencies_ms: Sequence[float]) -> dict[str, float | int]:
    """Count, average, p50/p99/p99.9 (nearest rank over every value) and max, in ms."""
    ordered = sorted(latencies_ms)
    count = len(ordered)
    return {
        "count": count,
        "avg_ms": math.fsum(ordered) / count if count else math.nan,
        "p50_ms": percentile(ordered, 0.50),
        "p99_ms": percentile(ordered, 0.99),
        "p999_ms": percentile(ordered, 0.999),
        "max_ms": ordered[-1] if count else math.nan,
    }


def format_latency(summary: dict[str, Any]) -> str:
    return (
        f"{summary['avg_ms']:.2f} ms avg, {summary['p50_ms']:.2f} ms p50, "
        f"{summary['p99_ms']:.2f} ms p99, {summary['p999_ms']:.2f} ms p99.9, "
        f"{summary['max_ms']:.2f} ms max"
    )


def source_version() -> dict[str, Any]:
    """The checkout measured: commit and whether client/ or logserver/ differ from it."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                # --no-optional-locks: a status must not refresh (lock) the index under
                # someone committing meanwhile.
                ["git", "--no-optional-locks", *args],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "client", "logserver")
    return {
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "client_or_broker_modified": None if changed is None else bool(changed),
    }


def environment(loop_choice: str, broker: BrokerUnderTest) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "source": source_version(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "event_loop": event_loop_name(loop_choice),
        "loadavg_start": list(os.getloadavg()),
        "broker": broker.describe(),
        "units": "MB = 10**6 bytes, MiB = 2**20 bytes; latencies in ms",
    }


def finish_environment(
    env: dict[str, Any],
    broker: BrokerUnderTest,
    started: float,
    cpu: dict[str, dict[str, float]] | None = None,
) -> None:
    env["loadavg_end"] = list(os.getloadavg())
    env["runtime_s"] = time.perf_counter() - started
    env["cpu"] = cpu or {}
    if broker.launched is not None:
        env["broker"]["exit_code"] = broker.launched.exit_code


def schedstat(pid: int) -> tuple[int, int] | None:
    """Nanoseconds on a CPU and waiting in a run queue, summed over the threads of ``pid``.

    From ``/proc/PID/task/*/schedstat`` (Linux); None where it cannot be read. Threads
    that ended meanwhile are not counted.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    on_cpu = waiting = 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                fields = f.read().split()
        except OSError:
            continue
        on_cpu += int(fields[0])
        waiting += int(fields[1])
    return on_cpu, waiting


class CpuMeter:
    """CPU time and run-queue wait of named processes over a measured phase.

    The run-queue wait is time a process was ready to run but had no CPU: on a
    shared 2-core machine, the share of the figures that is contention.
    """

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, tuple[int, int]] = {}
        self._wall = 0.0

    @classmethod
    def for_run(cls, broker: BrokerUnderTest) -> CpuMeter:
        launched = broker.launched.pid if broker.launched is not None else None
        return cls({"tool": os.getpid(), "broker": launched})

    def start(self) -> CpuMeter:
        self._wall = time.perf_counter()
        for name, pid in self._pids.items():
            found = schedstat(pid)
            if found is not None:
                self._start[name] = found
        return self

    def stop(self) -> dict[str, dict[str, float]]:
        wall = time.perf_counter() - self._wall
        out: dict[str, dict[str, float]] = {}
        for name, (cpu0, wait0) in self._start.items():
            found = schedstat(self._pids[name])
            if found is not None:
                out[name] = {
                    "cpu_s": (found[0] - cpu0) / 1e9,
                    "runqueue_wait_s": (found[1] - wait0) / 1e9,
                    "wall_s": wall,
                }
        return out


def print_environment(env: dict[str, Any]) -> None:
    broker = env["broker"]
    print("Environment")
    print(f"  python          {env['implementation']} {env['python']} ({env['platform']})")
    print(f"  cpus            {env['cpu_count']} (affinity {env['cpu_affinity']})")
    print(f"  event loop      {env['event_loop']}")
    source = env["source"]
    modified = " (client/ or logserver/ modified)" if source["client_or_broker_modified"] else ""
    print(f"  commit          {source['commit']}{modified}")
    if broker["kind"] == "launched":
        print(f"  broker          launched, pid {broker['pid']}, {broker['bootstrap']}")
        print(f"                  {broker['command']}")
    else:
        print(f"  broker          external, {broker['bootstrap']}")
    print(f"  load average    {' '.join(f'{x:.2f}' for x in env['loadavg_start'])} (start)")
    if "loadavg_end" in env:
        print(f"                  {' '.join(f'{x:.2f}' for x in env['loadavg_end'])} (end)")
        print(f"  runtime         {env['runtime_s']:.1f} s")
    for name, used in env.get("cpu", {}).items():
        print(
            f"  cpu ({name + ')':<9} {used['cpu_s']:.2f} s on a CPU, "
            f"{used['runqueue_wait_s']:.2f} s waiting for one, over {used['wall_s']:.2f} s measured"
        )
    print(f"  units           {env['units']}")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every client tool takes."""
    parser.add_argument(
        "--bootstrap-server",
        default=None,
        metavar="HOST:PORT",
        help="measure against this broker (default: launch a standalone broker for the run "
        "in a fresh temp dir and stop it after)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="parent of the launched broker's data dir (default: the system temp dir)",
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the client's event loop (default auto: uvloop when installed, like the broker)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


# -- run alone: a broker to point the tools (and a profiler) at -------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a throw-away standalone broker until ^C.")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the data dir")
    parser.add_argument("--keep-data", action="store_true", help="do not remove the data dir")
    parser.add_argument(
        "broker_flags",
        nargs="*",
        help="extra logserver flags (after --), e.g. -- --event-loop asyncio",
    )
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with launch_broker(args.dir, flags=args.broker_flags, keep_data=args.keep_data) as broker:
        print(
            f"bootstrap={broker.bootstrap} pid={broker.pid} data_dir={broker.data_dir}", flush=True
        )
        try:
            while not stop.wait(0.5) and broker.running:
                pass
        except KeyboardInterrupt:
            pass
    return 0 if broker.exit_code in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
