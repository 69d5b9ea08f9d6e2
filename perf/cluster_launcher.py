"""Shared by the cluster benchmarks: a real ZooKeeper and three brokers on loopback.

``perf/replication_perf.py`` and ``perf/failover_time.py`` import this module
(they run as scripts, so ``perf/`` is on ``sys.path``)::

    with launch_cluster(parent) as cluster:   # ZooKeeper + brokers 0..2, one temp dir
        ... cluster.bootstrap ...             # "127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2"
        cluster.brokers[1].kill()             # kill -9 by PID
        cluster.brokers[1].start()            # same data dir, same port
    # brokers SIGTERM'd, ZooKeeper killed, the temp dir removed

ZooKeeper is Debian's, started by ``coordination.zookeeper_server.ZooKeeperProcess``
(what ``logserver dev-cluster`` and the tests run) on a free port; the brokers
are ``perf/broker_launcher.py``'s ``LaunchedBroker`` with ``--broker-id``,
``--zookeeper-connect ADDRESS/perf`` and a port chosen free before the start and
kept across restarts. Their output goes to ``broker-N.log`` in the cluster's
dir (and is quoted in failures). No broker setting is changed from
``logserver/config.py``'s defaults unless ``--broker-setting NAME=VALUE`` says
so; ``settings_in_force`` reads the values back through the broker's own config
loader, and ``negotiated_session_timeouts_ms`` asks ZooKeeper (``cons``) what
session timeout each broker actually got.

Every process is stopped by its PID on the way out of ``launch_cluster``,
whatever the way (an exception, ^C, or SIGTERM, which ``sigterm_as_interrupt``
turns into ``KeyboardInterrupt``); both launchers also kill what is left at
interpreter exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from broker_launcher import LaunchedBroker, event_loop_name, progress, run_async, source_version

from client.admin import Admin
from client.admin_types import TopicDescription
from client.errors import LogServerError
from coordination.zookeeper_server import ZooKeeperNotInstalledError, ZooKeeperProcess
from logserver.config import SETTINGS, load_config

__all__ = [
    "LaunchedCluster",
    "add_cluster_arguments",
    "cluster_environment",
    "launch_cluster",
    "print_cluster_environment",
    "sigterm_as_interrupt",
    "wait_for_topic",
]

CHROOT = "/perf"
_SETTING_NAMES = frozenset(s.name for s in SETTINGS)
SETTINGS_SHOWN = tuple(
    name
    for name in (
        "zookeeper.session.timeout.ms",
        "replica.lag.time.max.ms",
        "replica.fetch.wait.max.ms",
        "controller.liveness.probe.interval.ms",
        "leader.imbalance.check.interval.seconds",
        "min.insync.replicas",
        "default.replication.factor",
    )
    if name in _SETTING_NAMES  # some exist only in newer brokers
)
_SESSION_TIMEOUT = re.compile(r"\bto=(\d+)")


def parse_setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or name not in _SETTING_NAMES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: want NAME=VALUE with a broker setting's name "
            "(logserver --help lists them), e.g. zookeeper.session.timeout.ms=6000"
        )
    return name, value


def _setting_flags(settings: Sequence[tuple[str, str]]) -> list[str]:
    flags: list[str] = []
    for name, value in settings:
        flags += ["--" + name.replace(".", "-"), value]
    return flags


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now (each socket is held until all are chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


class LaunchedCluster:
    def __init__(self, root: Path, size: int = 3, settings: Sequence[tuple[str, str]] = ()) -> None:
        self.root = root
        self.size = size
        self.settings = list(settings)
        self.zookeeper = ZooKeeperProcess(root / "zookeeper")
        self.brokers: list[LaunchedBroker] = []
        self.exit_codes: dict[int, int | None] = {}

    @property
    def connect(self) -> str:
        return f"{self.zookeeper.address}{CHROOT}"

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    def broker_flags(self, broker_id: int) -> list[str]:
        return [
            "--broker-id",
            str(broker_id),
            "--zookeeper-connect",
            self.connect,
            *_setting_flags(self.settings),
        ]

    def start(self) -> LaunchedCluster:
        (self.root / "zookeeper").mkdir(parents=True, exist_ok=True)
        try:
            self.zookeeper.start()
        except ZooKeeperNotInstalledError as exc:
            raise SystemExit(
                f"{exc}\n(`logserver dev-cluster` installs it when run as root)"
            ) from None
        progress("cluster", f"ZooKeeper serving on {self.zookeeper.address}")
        for broker_id, port in enumerate(_free_ports(self.size)):
            broker = LaunchedBroker(
                self.root / f"broker-{broker_id}",
                flags=self.broker_flags(broker_id),
                port=port,
                log_path=self.root / f"broker-{broker_id}.log",
            )
            self.brokers.append(broker)
            broker.start()
            progress("cluster", f"broker {broker_id} serving on {broker.bootstrap}")
        return self

    def close(self) -> dict[int, int | None]:
        """SIGTERM every broker still running (SIGKILL on a timeout), then kill ZooKeeper.

        Returns each broker's exit status (None: never started).
        """
        codes: dict[int, int | None] = {}
        for broker_id, broker in enumerate(self.brokers):
            try:
                if broker.running:
                    broker.stop()
            except (TimeoutError, OSError) as exc:  # one that would not stop: killed, reported
                progress("cluster", f"broker {broker_id}: {exc}")
            finally:
                broker.kill()
            codes[broker_id] = broker.exit_code
        self.zookeeper.close()
        self.exit_codes = codes
        return codes

    def settings_in_force(self) -> dict[str, str]:
        """Broker 0's values of ``SETTINGS_SHOWN``, through the broker's own config loader."""
        config = load_config(["--log-dirs", str(self.root), *self.broker_flags(0)], environ={})
        return {name: str(getattr(config, name.replace(".", "_"))) for name in SETTINGS_SHOWN}

    def negotiated_session_timeouts_ms(self) -> list[int]:
        """The session timeout ZooKeeper granted each connected client (``cons``)."""
        try:
            answer = self.zookeeper.four_letter_word("cons")
        except OSError:
            return []
        return sorted(int(found) for found in _SESSION_TIMEOUT.findall(answer))

    def broker_log(self, broker_id: int) -> list[str]:
        try:
            return (
                (self.root / f"broker-{broker_id}.log").read_text("utf-8", "replace").splitlines()
            )
        except OSError:
            return []


@contextlib.contextmanager
def launch_cluster(
    parent: Path | None,
    *,
    size: int = 3,
    settings: Sequence[tuple[str, str]] = (),
    keep_dir: bool = False,
) -> Iterator[LaunchedCluster]:
    """A started cluster in a fresh dir under ``parent`` (default: the temp dir).

    On exit every broker is stopped (``exit_codes`` holds their status) and
    ZooKeeper killed, then the dir is removed unless ``keep_dir``.
    """
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="perf-cluster-", dir=base))
    cluster = LaunchedCluster(root, size, settings)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        if keep_dir:
            progress("cluster", f"kept {root} (broker logs: broker-N.log)")
        else:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` (like ^C) so the cleanup above runs."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def wait_for_topic(
    admin: Admin, topic: str, timeout_s: float, *, full_isr: bool = True
) -> TopicDescription:
    """Poll until every partition of ``topic`` has a leader (and, with ``full_isr``, its
    whole replica set in the ISR); ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = (await admin.describe_topics([topic]))[topic]
            if last.partitions and all(
                p.leader >= 0 and (not full_isr or set(p.isr) == set(p.replicas))
                for p in last.partitions
            ):
                return last
        except LogServerError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} not ready within {timeout_s} s: {last}")
        await asyncio.sleep(0.1)


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="parent of the cluster's temp dir (default: the system temp dir)",
    )
    parser.add_argument(
        "--broker-setting",
        action="append",
        type=parse_setting,
        default=[],
        metavar="NAME=VALUE",
        help="a broker setting for all three brokers, e.g. zookeeper.session.timeout.ms=6000 "
        "(repeatable; default: none, logserver/config.py's defaults)",
    )
    parser.add_argument(
        "--keep-dir",
        action="store_true",
        help="keep the cluster's dir (data and broker-N.log) after the run",
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the client's event loop (default auto: uvloop when installed, like the broker)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def cluster_environment(loop_choice: str, cluster: LaunchedCluster) -> dict[str, Any]:
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
        "cluster": {
            "zookeeper": cluster.connect,
            "zookeeper_pid": cluster.zookeeper.pid,
            "brokers": {
                str(i): {"bootstrap": b.bootstrap, "pid": b.pid}
                for i, b in enumerate(cluster.brokers)
            },
            "broker_settings_given": dict(cluster.settings),
            "settings_in_force": cluster.settings_in_force(),
            "negotiated_session_timeouts_ms": cluster.negotiated_session_timeouts_ms(),
            "dir": str(cluster.root),
        },
        "units": "MB = 10**6 bytes, MiB = 2**20 bytes; latencies in ms",
    }


T = TypeVar("T")


def run_on_cluster(
    tool: str, args: argparse.Namespace, work: Callable[[LaunchedCluster], Awaitable[T]]
) -> tuple[T, dict[str, Any]] | None:
    """Launch the cluster the arguments ask for (``add_cluster_arguments``), run ``work`` on
    it, stop every process; ``(result, environment)``, or None when interrupted (^C or
    SIGTERM), every process stopped all the same."""
    started = time.perf_counter()
    with sigterm_as_interrupt():
        try:
            with launch_cluster(
                args.dir, settings=args.broker_setting, keep_dir=args.keep_dir
            ) as cluster:
                env = cluster_environment(args.event_loop, cluster)
                result = run_async(lambda: work(cluster), args.event_loop)
        except KeyboardInterrupt:
            progress(tool, "interrupted; every process it started is stopped")
            return None
    finish_cluster_environment(env, started, cluster.exit_codes)
    return result, env


def finish_cluster_environment(
    env: dict[str, Any], started: float, exit_codes: Mapping[int, int | None]
) -> None:
    env["loadavg_end"] = list(os.getloadavg())
    env["runtime_s"] = time.perf_counter() - started
    env["cluster"]["exit_codes"] = {str(k): v for k, v in exit_codes.items()}


def print_cluster_environment(env: dict[str, Any]) -> None:
    cluster = env["cluster"]
    print("Environment")
    print(f"  python          {env['implementation']} {env['python']} ({env['platform']})")
    print(f"  cpus            {env['cpu_count']} (affinity {env['cpu_affinity']})")
    print(f"  event loop      {env['event_loop']}")
    source = env["source"]
    modified = " (client/ or logserver/ modified)" if source["client_or_broker_modified"] else ""
    print(f"  commit          {source['commit']}{modified}")
    print(f"  zookeeper       {cluster['zookeeper']} (pid {cluster['zookeeper_pid']})")
    for broker_id, broker in cluster["brokers"].items():
        code = cluster.get("exit_codes", {}).get(broker_id, "-")
        print(
            f"  broker {broker_id}        {broker['bootstrap']} (pid {broker['pid']}, "
            f"exit status {code})"
        )
    given = cluster["broker_settings_given"]
    print(
        "  broker settings "
        + (", ".join(f"{k}={v}" for k, v in given.items()) if given else "defaults")
    )
    for name, value in cluster["settings_in_force"].items():
        print(f"    {name:<30} {value}")
    timeouts = cluster["negotiated_session_timeouts_ms"]
    if timeouts:
        print(f"    zookeeper granted (ms)         {', '.join(map(str, timeouts))}")
    print(f"  load average    {' '.join(f'{x:.2f}' for x in env['loadavg_start'])} (start)")
    if "loadavg_end" in env:
        print(f"                  {' '.join(f'{x:.2f}' for x in env['loadavg_end'])} (end)")
        print(f"  runtime         {env['runtime_s']:.1f} s")
    print(f"  units           {env['units']}")


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_time(line: str) -> float | None:
    """The wall-clock time a broker log line was written (its asctime, local time)."""
    found = _LOG_TIME.match(line)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
