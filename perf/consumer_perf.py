"""Consumer throughput, shaped like Kafka's ``kafka-consumer-perf-test``.

Run from the repository root with the project's virtualenv::

    python perf/consumer_perf.py [--topic T] [--num-records N] [--produce-first]
        [--record-size 100] [--bootstrap-server HOST:PORT] [--json]

One consumer (``client.consumer.Consumer``) in this one process assigns every
partition of ``--topic``, seeks each to its log start and polls until it has
``--num-records`` records (default: every record the topic holds when the run
starts), or until ``--timeout`` ms pass without a record. Printed: records/s,
MB/s (key and value bytes, as Kafka counts them) and the elapsed time, from
``assign`` to the last record returned by ``poll``; the partition and offset
lookups happen before the clock starts. The broker is a separate process: the
one at ``--bootstrap-server``, or else a standalone broker launched for the run
in a fresh temp dir (``perf/broker_launcher.py``).

The records to read are produced first -- with the producer of
``perf/producer_perf.py``, in this process, before the consumer exists and
before its clock starts -- when ``--produce-first`` is given or when the topic
does not exist (always the case with a launched broker): ``--num-records``
records (default 2000000) of ``--record-size`` random bytes, with the
producer flags below. Those records were just written, so the broker reads them
from the page cache: this measures the client and the broker, not the disk.

The consumer runs with CRC checks on (``check_crcs``, the client's default) and
its default prefetch; ``--fetch-max-wait-ms`` and
``--max-partition-fetch-bytes`` set the two fetch settings that matter here.
Counting the bytes (two passes of C iterators over each poll's records) costs
the tool about 45 ns a record, some 5% of the consumer's time.

CPU: the CPU time and run-queue wait of this process (``tool``) and of a
launched broker from ``assign`` to the last record are printed, and records per
CPU-second of this process (the consumer is the bottleneck: its rate with a
core to itself, were CPU its only limit; on a VM, CPU time itself stretches
under the neighbours' load, so this figure moves with the load too).
MB is 10**6 bytes (MiB 2**20 is printed too). Speed bars are printed, never
enforced; the exit status is 1 when fewer records than asked were consumed.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from operator import itemgetter
from typing import Any

from broker_launcher import (
    MB,
    MIB,
    CpuMeter,
    add_common_arguments,
    broker_for,
    environment,
    finish_environment,
    print_environment,
    progress,
    run_async,
)
from producer_perf import add_producer_arguments, check_producer_arguments, config_of, produce

from client.consumer import Consumer
from client.errors import UnknownTopicOrPartitionError
from client.topic_partition import TopicPartition

TOOL = "consumer_perf"
BARS = {"records_per_s_min_100b": 1_000_000.0}
DEFAULT_TOPIC = "consumer-perf"
DEFAULT_PRODUCE = 2_000_000

_key = itemgetter(2)
_value = itemgetter(3)


async def topic_partitions(bootstrap: str, topic: str) -> list[int] | None:
    """The topic's partitions, or None when it does not exist."""
    consumer = Consumer(bootstrap, client_id="consumer-perf-lookup")
    await consumer.start()
    try:
        return sorted(await consumer.partitions_for_topic(topic))
    except UnknownTopicOrPartitionError:
        return None
    finally:
        await consumer.close()


async def consume(
    bootstrap: str,
    topic: str,
    count: int | None,
    *,
    fetch_max_wait_ms: int = 500,
    max_partition_fetch_bytes: int = 1 << 20,
    timeout_ms: int = 10_000,
    reporting_interval_s: float = 5.0,
    tool: str = TOOL,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """Read ``count`` records (None: all there are now) from the start of every partition.

    ``meter`` measures CPU from ``assign`` to the last record.
    """
    consumer = Consumer(
        bootstrap,
        client_id="consumer-perf",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await consumer.partitions_for_topic(topic))]
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        available = sum(ends[tp] - begins[tp] for tp in tps)
        wanted = available if count is None else count
        progress(tool, f"consuming {wanted} of the {available} records in {topic}")
        clock = time.perf_counter
        poll = consumer.poll
        consumed = nbytes = polls = 0
        if meter is not None:
            meter.start()
        start = clock()
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, begins[tp])
        last_record = next_report = start
        report_start, report_records = start, 0
        while consumed < wanted:
            batch = await poll(timeout_ms=1000)
            now = clock()
            if not batch:
                if now - last_record > timeout_ms / 1000:
                    progress(tool, f"no record for {timeout_ms} ms: stopping at {consumed}")
                    break
                continue
            polls += 1
            last_record = now
            for records in batch.values():
                consumed += len(records)
                nbytes += sum(map(len, filter(None, map(_value, records))))
                nbytes += sum(map(len, filter(None, map(_key, records))))
            if now >= next_report + reporting_interval_s:
                window = now - report_start
                progress(
                    tool,
                    f"{consumed} records consumed, "
                    f"{(consumed - report_records) / window:.0f} records/s in the last "
                    f"{window:.1f} s",
                )
                next_report = report_start = now
                report_records = consumed
        elapsed = last_record - start
        cpu = meter.stop() if meter is not None else {}
    finally:
        await consumer.close()
    return {
        "records": consumed,
        "wanted": wanted,
        "complete": consumed >= wanted,
        "bytes": nbytes,
        "elapsed_s": elapsed,
        "records_per_s": consumed / elapsed if elapsed > 0 else 0.0,
        "mb_s": nbytes / elapsed / MB if elapsed > 0 else 0.0,
        "mib_s": nbytes / elapsed / MIB if elapsed > 0 else 0.0,
        "polls": polls,
        "records_per_poll": consumed / polls if polls else 0.0,
        "partitions": len(tps),
        "start_offsets": [begins[tp] for tp in tps],
        "cpu": cpu,
    }


async def run(bootstrap: str, args: argparse.Namespace, meter: CpuMeter) -> dict[str, Any]:
    produced: dict[str, Any] | None = None
    partitions = await topic_partitions(bootstrap, args.topic)
    if args.produce_first or partitions is None:
        why = "--produce-first" if args.produce_first else "the topic does not exist"
        count = args.num_records or DEFAULT_PRODUCE
        progress(TOOL, f"{why}: producing {count} records first (not timed as consumption)")
        produced = await produce(bootstrap, args, count, tool=TOOL)
        produced.pop("cpu")
        if produced["errors"]:
            raise SystemExit(f"producing failed: {produced['first_error']}")
        gc.collect()
    result = await consume(
        bootstrap,
        args.topic,
        args.num_records,
        fetch_max_wait_ms=args.fetch_max_wait_ms,
        max_partition_fetch_bytes=args.max_partition_fetch_bytes,
        timeout_ms=args.timeout,
        meter=meter,
    )
    return {"consumer": result, "produced": produced, "cpu": result.pop("cpu")}


def evaluate_bars(result: dict[str, Any]) -> dict[str, Any]:
    """The 100-byte bar, when the records consumed average 100 bytes."""
    met = {}
    if result["records"] and round(result["bytes"] / result["records"]) == 100:
        met["records_per_s_100b"] = result["records_per_s"] >= BARS["records_per_s_min_100b"]
    return {**BARS, "met": met}


def print_table(out: dict[str, Any]) -> None:
    print_environment(out["env"])
    produced, result = out["produced"], out["consumer"]
    print()
    if produced is not None:
        print(
            f"Produced first: {produced['records']} records of {produced['record_size']} bytes "
            f"at {produced['records_per_s']:.0f} records/s ({produced['mb_s']:.2f} MB/s)"
        )
    print(
        f"Consumer: topic {out['config']['topic']} ({result['partitions']} partition(s)), "
        f"from offsets {result['start_offsets']}"
    )
    print(
        f"  {result['records']} records consumed, {result['records_per_s']:.1f} records/sec, "
        f"{result['mb_s']:.2f} MB/sec ({result['mib_s']:.2f} MiB/sec), "
        f"{result['elapsed_s']:.3f} s elapsed"
    )
    if result.get("records_per_cpu_s"):
        print(
            f"  {result['records_per_cpu_s']:.0f} records per CPU-second of this process "
            "(its rate with a CPU to itself, were it the bottleneck)"
        )
    print(f"  {result['polls']} polls, {result['records_per_poll']:.0f} records each")
    if not result["complete"]:
        print(f"  INCOMPLETE: {result['records']} of {result['wanted']} records")
    bars = out["bars"]
    for name, ok in bars["met"].items():
        print(
            f"  bar {name} >= {bars['records_per_s_min_100b']:,.0f}: {'met' if ok else 'NOT MET'}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"(default {DEFAULT_TOPIC})")
    parser.add_argument(
        "--num-records",
        type=int,
        default=None,
        help="records to consume (default: all the topic holds; when producing first, "
        f"{DEFAULT_PRODUCE})",
    )
    parser.add_argument(
        "--produce-first",
        action="store_true",
        help="produce --num-records records before consuming (done anyway when the topic "
        "does not exist)",
    )
    parser.add_argument(
        "--timeout", type=int, default=10_000, help="ms without a record before giving up"
    )
    parser.add_argument(
        "--fetch-max-wait-ms", type=int, default=500, help="fetch.max.wait.ms (default 500)"
    )
    parser.add_argument(
        "--max-partition-fetch-bytes",
        type=int,
        default=1 << 20,
        help="max.partition.fetch.bytes (default 1048576)",
    )
    add_common_arguments(parser)
    producer = parser.add_argument_group("producing first (producer_perf's flags)")
    add_producer_arguments(producer, for_consumer=True)  # type: ignore[arg-type]
    args = parser.parse_args(argv)
    check_producer_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with broker_for(args.bootstrap_server, args.dir) as broker:
        env = environment(args.event_loop, broker)
        meter = CpuMeter.for_run(broker)
        out = run_async(lambda: run(broker.bootstrap, args, meter), args.event_loop)
    cpu = out.pop("cpu")
    finish_environment(env, broker, started, cpu)
    if "tool" in cpu and cpu["tool"]["cpu_s"] > 0:
        # What one process could do with a CPU to itself: the figure contention cannot move.
        out["consumer"]["records_per_cpu_s"] = out["consumer"]["records"] / cpu["tool"]["cpu_s"]
    config = config_of(args)
    config.update(
        fetch_max_wait_ms=args.fetch_max_wait_ms,
        max_partition_fetch_bytes=args.max_partition_fetch_bytes,
        timeout_ms=args.timeout,
        produce_first=args.produce_first,
    )
    out.update(config=config, env=env, bars=evaluate_bars(out["consumer"]))
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print_table(out)
    return 0 if out["consumer"]["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
