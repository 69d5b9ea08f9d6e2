"""How long a /metrics scrape takes on a broker holding many partitions under produce load.

Run from the repository root with the project's virtualenv::

    python perf/metrics_scrape.py [--partitions 1000] [--scrapes 20] [--interval-s 0.5]
        [--throughput 100000] [--group-partitions 1000]

Starts a standalone broker with ``--metrics-port``, creates a topic of
``--partitions`` partitions, commits an offset for a consumer group on
``--group-partitions`` of them (so the per-group lag series are exported
too), then runs ``perf/producer_perf.py`` against it in a separate process
(no key: sticky partitioning over every partition, ``--throughput`` records
of 100 bytes per second) and scrapes ``/metrics`` ``--scrapes`` times from
this process, ``--interval-s`` apart. Prints each scrape's time, then p50 and
max in ms, the body size and the number of samples. Issue 6's bar: under
100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from broker_launcher import launch_broker, progress

from client.admin import Admin
from client.consumer import Consumer

TOOL = "metrics_scrape"
TOPIC = "scrape"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _prepare(bootstrap: str, partitions: int, group_partitions: int) -> None:
    async with Admin(bootstrap) as admin:
        await admin.create_topic(TOPIC, partitions, 1)
    if not group_partitions:
        return
    consumer = Consumer(bootstrap, group_id="scrape-group", enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.commit({(TOPIC, p): 0 for p in range(group_partitions)})
        await consumer.committed((TOPIC, 0))  # the coordinator holds the group's offsets now
    finally:
        await consumer.close()


def _scrape(port: int) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        body = answer.read()
    return time.perf_counter() - started, body


_EMPTY = re.compile(rb'^logserver_log_end_offset\{topic="scrape",partition="\d+"\} 0$', re.M)


def _warm_up(port: int, partitions: int, limit_s: float = 180.0) -> None:
    """Scrape until the producer has written to every partition: a partition's first
    append in a leader epoch writes and fsyncs its leader-epoch cache on the event
    loop (partition_log._new_epoch), about 7 ms each here, so while a fresh producer
    reaches 1,000 partitions the loop, and any request, stalls for seconds."""
    started = time.perf_counter()
    worst = 0.0
    while time.perf_counter() - started < limit_s:
        try:
            elapsed, body = _scrape(port)
        except OSError as exc:
            progress(TOOL, f"warm-up scrape failed: {exc}")
            continue
        worst = max(worst, elapsed)
        empty = len(_EMPTY.findall(body))
        if not empty and b"scrape" in body:
            break
        time.sleep(0.5)
    progress(
        TOOL,
        f"warm-up: {time.perf_counter() - started:.1f} s until every partition had data "
        f"(slowest warm-up scrape {worst * 1000:.0f} ms)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--group-partitions", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--interval-s", type=float, default=0.5)
    parser.add_argument("--throughput", type=int, default=100_000, help="records/s produced")
    parser.add_argument(
        "--broker-flag", action="append", default=[], help="a flag for the broker (repeatable)"
    )
    args = parser.parse_args(argv)
    port = _free_port()
    flags = ["--metrics-port", str(port), *args.broker_flag]
    with launch_broker(flags=flags) as broker:
        progress(TOOL, f"broker at {broker.bootstrap}, metrics on port {port}")
        asyncio.run(_prepare(broker.bootstrap, args.partitions, args.group_partitions))
        producer = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("producer_perf.py")),
                "--bootstrap-server",
                broker.bootstrap,
                "--topic",
                TOPIC,
                "--num-records",
                str(args.throughput * 600),
                "--throughput",
                str(args.throughput),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _warm_up(port, args.partitions)
            times, body = [], b""
            for i in range(args.scrapes):
                elapsed, body = _scrape(port)
                times.append(elapsed * 1000)
                print(f"scrape {i + 1:2d}: {elapsed * 1000:7.1f} ms, {len(body)} bytes")
                time.sleep(args.interval_s)
            served = [
                float(m)
                for m in re.findall(r"scrape: \d+ bytes in ([\d.]+) ms", broker.output(200))
            ]
            if served:  # with --broker-flag=--log-level=DEBUG: the time spent in the broker
                p50_served = statistics.median(served)
                print(f"in the broker: p50 {p50_served:.1f} ms, max {max(served):.1f} ms")
            if producer.poll() is not None:
                progress(TOOL, f"the producer exited early with {producer.returncode}")
        finally:
            producer.terminate()
            producer.wait(10)
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    p50, worst = statistics.median(times), max(times)
    print(
        f"{args.partitions} partitions, group offsets on {args.group_partitions}, producer at "
        f"{args.throughput} records/s: {args.scrapes} scrapes p50 {p50:.1f} ms, "
        f"max {worst:.1f} ms ({len(body)} bytes, {samples} samples); "
        f"bar < 100 ms: {'met' if worst < 100 else 'MISSED'}"
    )
    return 0 if worst < 100 else 1


if __name__ == "__main__":
    sys.exit(main())
