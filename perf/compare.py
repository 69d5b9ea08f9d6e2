"""logserver against Redis Streams and NATS JetStream: the same workloads, one table.

Run from the repository root with the project's virtualenv (``redis-server`` and
``nats-server`` from Debian on the PATH; redis-py, hiredis and nats-py come with
the ``dev`` extra)::

    python perf/compare.py [--records-100 500000] [--records-1000 200000] [--rounds 5]
        [--latency-rate 2000] [--latency-seconds 10] [--systems logserver,redis,nats]
        [--output perf/RESULTS.md] [--dir PARENT] [--max-seconds 600] [--json]

The tool starts each server itself, on 127.0.0.1 with a free port and a fresh
temp data dir (``compare_servers.py``): Redis with ``appendonly yes``,
``appendfsync everysec``, no RDB snapshots and no automatic AOF rewrite; NATS with
JetStream and file-storage streams; a standalone logserver with
``log.flush.interval.ms=1000`` so that, like Redis's everysec, it fsyncs at
least once a second (NATS fsyncs its file store every ``sync_interval``, 2
minutes by default; the setting came in 2.10 and 2.9 rejects it). Each system
is driven with its standard Python client the way a competent user would drive
it (``compare_redis.py``, ``compare_nats.py``, ``compare_logserver.py``), from
this one process on uvloop:

* producer throughput: ``--records-100`` records of 100 bytes, then
  ``--records-1000`` of 1000 bytes, each with acknowledgements (clock: first
  send to last acknowledgement), into a new stream/topic per round;
* consumer throughput: those records read back from the start by a new
  consumer (clock: first request to last record);
* end-to-end latency: ``--latency-rate`` stamped 100-byte records a second for
  ``--latency-seconds``, received by a consumer already waiting on the same
  event loop; p50/p99/p99.9 of receive time minus send time.

The throughput workloads run ``--rounds`` times (default 5); the systems
take turns workload by workload, in an order rotated each round, so load from
outside the run falls on all of them alike, and the median round is reported.
Also measured per workload: CPU seconds of the server process and of this
process (the client), from ``/proc/PID/task/*/schedstat``, and the bytes the
producer added to the server's data dir (1.5 s after its last acknowledgement,
past one fsync interval). The table, with the ratios logserver / other, the
date, the versions, the machine and the durability note, goes to ``--output``
(Markdown); ``--json`` prints every figure on stdout as one JSON object.

The bar (issue 6): logserver's producer and consumer throughput ahead of both
Redis Streams and NATS JetStream for both value sizes, in the same run. It is
printed, never enforced. The run is bounded by ``--max-seconds`` (default 600):
past it the tool stops the servers and exits 2. ^C or SIGTERM stops every
server it started (by PID) and removes their data dirs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import compare_logserver
import compare_nats
import compare_redis
import compare_servers
from broker_launcher import event_loop_name, progress, run_async, source_version
from compare_common import dir_bytes, random_values
from compare_report import evaluate_bar, write_markdown
from compare_servers import Server

TOOL = "compare"
SYSTEMS: dict[str, tuple[ModuleType, Callable[[Path | None], AbstractContextManager[Any]]]] = {
    "logserver": (compare_logserver, compare_servers.logserver),
    "redis": (compare_redis, compare_servers.redis),
    "nats": (compare_nats, compare_servers.nats),
}
SETTLE_S = 1.5  # past one fsync interval, before the data dir is measured
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"


class OutOfTime(Exception):
    """``--max-seconds`` passed."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records-100", type=int, default=500_000, help="100-byte records")
    parser.add_argument("--records-1000", type=int, default=200_000, help="1000-byte records")
    parser.add_argument(
        "--rounds", type=int, default=5, help="throughput rounds; the median is reported (5)"
    )
    parser.add_argument("--latency-rate", type=float, default=2000, help="records/s (2000)")
    parser.add_argument("--latency-seconds", type=float, default=10, help="seconds (10)")
    parser.add_argument(
        "--systems", default="logserver,redis,nats", help="comma-separated, in run order"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown table")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the data dirs")
    parser.add_argument("--max-seconds", type=int, default=600, help="bound on the run (600)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - SYSTEMS.keys()
    if unknown or not args.systems:
        parser.error(f"--systems: choose from {', '.join(SYSTEMS)}")
    if min(args.records_100, args.records_1000, args.rounds) < 1:
        parser.error("--records-100, --records-1000 and --rounds must be at least 1")
    if args.latency_rate <= 0 or args.latency_seconds <= 0:
        parser.error("--latency-rate and --latency-seconds must be positive")
    return args


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "")
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
    }


def versions() -> dict[str, Any]:
    found = {
        "redis-server": compare_servers.version_of(["redis-server", "--version"]),
        "nats-server": compare_servers.version_of(["nats-server", "--version"]),
        "python": platform.python_version(),
        "event_loop": event_loop_name("auto"),
    }
    for package in ("redis", "hiredis", "nats-py", "uvloop"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["logserver"] = source_version()
    return found


def workloads(args: argparse.Namespace) -> Iterator[tuple[str, int]]:
    yield "100", args.records_100
    yield "1000", args.records_1000


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median records/s (the lower middle one for an even count),
    with every round's records/s beside it."""
    ordered = sorted(rounds, key=lambda r: r["records_per_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds_records_per_s"] = [r["records_per_s"] for r in rounds]
    return chosen


async def throughput_round(
    servers: dict[str, Server], args: argparse.Namespace, round_no: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """One round: per value size, every system produces, then every system consumes.

    The systems take turns workload by workload, in an order rotated each round,
    so that load from outside the run falls on all of them alike.
    """
    names = list(servers)
    shift = round_no % len(names)
    order = names[shift:] + names[:shift]
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in names}
    for size, count in workloads(args):
        stream = f"compare-{size}-{round_no}"
        values = random_values(int(size))
        for name in order:
            server = servers[name]
            before = dir_bytes(server.data_dir)
            produced = await SYSTEMS[name][0].produce(server, stream, values, count)
            await asyncio.sleep(SETTLE_S)
            produced["data_dir_bytes"] = dir_bytes(server.data_dir) - before
            out[name][f"produce_{size}"] = produced
            progress(
                TOOL,
                f"round {round_no + 1}: {name} produced {count} x {size} B at "
                f"{produced['records_per_s']:,.0f} records/s",
            )
        for name in order:
            consumed = await SYSTEMS[name][0].consume(servers[name], stream, count)
            out[name][f"consume_{size}"] = consumed
            progress(
                TOOL,
                f"round {round_no + 1}: {name} consumed {count} x {size} B at "
                f"{consumed['records_per_s']:,.0f} records/s",
            )
    return out


async def run_all(servers: dict[str, Server], args: argparse.Namespace) -> dict[str, Any]:
    rounds = [await throughput_round(servers, args, r) for r in range(args.rounds)]
    results: dict[str, Any] = {}
    for name, server in servers.items():
        results[name] = {"server": {"pid": server.pid, "command": server.command}}
        for key in rounds[0][name]:
            results[name][key] = median_round([r[name][key] for r in rounds])
    count = max(1, round(args.latency_rate * args.latency_seconds))
    for name, server in servers.items():
        progress(TOOL, f"{name}: end-to-end latency, {count} records at {args.latency_rate:g}/s")
        latency = await SYSTEMS[name][0].latency(
            server, "compare-latency", args.latency_rate, count, 100
        )
        results[name]["latency"] = latency
        progress(TOOL, f"{name}: p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms")
    return results


async def run_servers(args: argparse.Namespace) -> dict[str, Any]:
    """Start every server (stopped on the way out, whatever happens), then run."""
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for name in args.systems:
            server = stack.enter_context(SYSTEMS[name][1](args.dir))
            progress(TOOL, f"{name}: server pid {server.pid} on port {server.port}")
            servers[name] = server
        return await run_all(servers, args)


def _on_signal(signum: int, _frame: Any) -> None:
    if signum == signal.SIGALRM:
        raise OutOfTime
    raise KeyboardInterrupt  # unwinds through every server's context manager


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python", "perf/compare.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "versions": versions(),
        "config": {
            "records_100": args.records_100,
            "records_1000": args.records_1000,
            "rounds": args.rounds,
            "latency_rate": args.latency_rate,
            "latency_seconds": args.latency_seconds,
            "systems": args.systems,
        },
    }
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(args.max_seconds)
    try:
        report["results"] = run_async(lambda: run_servers(args))
    except OutOfTime:
        progress(TOOL, f"out of time: --max-seconds {args.max_seconds} passed; servers stopped")
        return 2
    except KeyboardInterrupt:
        progress(TOOL, "interrupted; servers stopped")
        return 130
    finally:
        signal.alarm(0)
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["runtime_s"] = time.perf_counter() - started
    report["bar"] = evaluate_bar(report["results"])
    write_markdown(report, args.output)
    progress(TOOL, f"table written to {args.output} ({report['runtime_s']:.0f} s)")
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(args.output.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
