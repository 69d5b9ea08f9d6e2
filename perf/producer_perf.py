"""Producer throughput and latency, shaped like Kafka's ``kafka-producer-perf-test``.

Run from the repository root with the project's virtualenv::

    python perf/producer_perf.py --num-records 2000000 --record-size 100 [--throughput -1]
        [--acks 1] [--compression none|lz4|snappy] [--batch-size 16384] [--linger-ms 0]
        [--partitions 1] [--bootstrap-server HOST:PORT] [--json]

One producer (``client.producer.Producer``) in this one process sends
``--num-records`` records of ``--record-size`` bytes to ``--topic``, then
flushes. The broker is a separate process: the one at ``--bootstrap-server``,
or else a standalone broker launched for the run in a fresh temp dir
(``perf/broker_launcher.py``), where the topic is created with ``--partitions``.
An existing topic is used as it is. Records have no key (sticky partitioning).
Values are random bytes generated once, before the clock starts, so what is
measured is the client and the broker, not the making of payloads: a pool of
``--distinct-values`` (default 1024) values of ``--record-size`` bytes, sent in
turn. One value repeated (``--distinct-values 1``, what Kafka's tool sends)
would let lz4 and snappy compress a batch of copies 16-fold, which no real
traffic does; distinct random values do not compress at all, the worst case.
Topic metadata is fetched before the clock starts too.

What is printed, like Kafka's ProducerPerformance: records/s and MB/s over the
whole run (first send to the last acknowledgement, ``flush()`` included), and
the latency of every record -- acknowledgement time minus send time -- as
avg/p50/p99/p99.9/max in ms. With ``--throughput -1`` (no cap) the latency is
mostly time spent queued in ``buffer_memory``, as it is for Kafka's tool.

How latency is measured per record without a callback per record
(``--latency-method``):

* ``batch`` (default): the send time of every record goes in an ``array``
  (one ``perf_counter`` call and an append per record). Each ``RecordFuture``
  is a view on its batch's future, so records of one batch share it: the tool
  watches that future (``RecordFuture._batch``, the one private attribute it
  reads) and registers one done-callback per run of consecutive records in the
  same batch. The callback notes the batch's acknowledgement time; after the
  run each record's latency is that time minus its own send time. Exact for
  every record, at one callback per batch (per run, were batches interleaved).
* ``sample``: public API only. Every ``--sample-every``-th record gets its own
  ``add_done_callback``; the statistics are over those records only (the max
  is then a lower bound).

Pacing (``--throughput N`` records/s): record ``i`` is due at ``start + i/N``;
when the loop is ahead it ``await asyncio.sleep()``s until then (no busy
waiting; the event loop's timers have millisecond resolution, so at high rates
records leave in small bursts that keep the average rate).

Yielding (``--yield-every``): ``await producer.send()`` does not suspend while
there is buffer space, and in asyncio the producer's sender task only runs when
the application yields (Kafka's sender is a thread of its own). The tool
therefore ``await asyncio.sleep(0)``s every ``--yield-every`` records; the
default, ``auto``, is ``max_request_size // record_size`` records, about one
full produce request per yield. ``0`` never yields: the loop then only stops
when ``buffer_memory`` is full, and every record waits behind a full 32 MiB
buffer (on the 2-core VM: the same throughput, 6 to 7 times the latency).

CPU: the CPU time and run-queue wait of this process (``tool``) and of a
launched broker over the sends and the flush are printed (from
``/proc/PID/task/*/schedstat``), and records per CPU-second of this process
(the producer is the bottleneck here: its rate with a core to itself, were CPU
its only limit; on a VM, CPU time itself stretches under the neighbours' load,
so this figure moves with the load too, if less than records/s).

MB is 10**6 bytes (MiB 2**20 is printed too). Speed bars are printed, never
enforced; the exit status is 1 only when a record failed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import random
import sys
import time
from array import array
from typing import Any

from broker_launcher import (
    MB,
    MIB,
    CpuMeter,
    add_common_arguments,
    broker_for,
    create_topic,
    environment,
    finish_environment,
    format_latency,
    print_environment,
    progress,
    run_async,
    summarize_ms,
)

from client.producer import Producer, RecordFuture

TOOL = "producer_perf"
BARS = {"records_per_s_min_100b": 400_000.0, "mb_s_min_1000b": 200.0}
DEFAULT_TOPIC = "producer-perf"


def parse_acks(text: str) -> int | str:
    if text in ("all", "-1"):
        return "all"
    if text in ("0", "1"):
        return int(text)
    raise argparse.ArgumentTypeError(f"acks must be 0, 1, -1 or all, not {text!r}")


def add_producer_arguments(
    parser: argparse.ArgumentParser, *, for_consumer: bool = False, with_acks: bool = True
) -> None:
    """Producer settings (shared with consumer_perf's ``--produce-first`` and with
    replication_perf, which sets ``acks`` per topic itself: ``with_acks=False``)."""
    parser.add_argument("--record-size", type=int, default=100, help="value bytes (default 100)")
    if with_acks:
        parser.add_argument(
            "--acks",
            type=parse_acks,
            default=1,
            help="0, 1 or all (default 1, Kafka's old default)",
        )
    parser.add_argument(
        "--compression",
        choices=("none", "lz4", "snappy"),
        default="none",
        help="compression.type (default none)",
    )
    parser.add_argument("--batch-size", type=int, default=16384, help="batch.size (16384)")
    parser.add_argument("--linger-ms", type=int, default=0, help="linger.ms (default 0)")
    parser.add_argument(
        "--max-request-size", type=int, default=1_048_576, help="max.request.size (1048576)"
    )
    parser.add_argument(
        "--buffer-memory", type=int, default=32 * MIB, help="buffer.memory (32 MiB)"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="partitions of the topic when this tool creates it (default 1)",
    )
    parser.add_argument(
        "--yield-every",
        default="auto",
        help="await asyncio.sleep(0) every N sends so the sender task runs; auto: "
        "max_request_size // record_size; 0: never (default auto)",
    )
    parser.add_argument(
        "--latency-method",
        choices=("batch", "sample"),
        default="batch",
        help="batch: every record, one callback per batch; sample: a callback on every "
        "--sample-every-th record, public API only (default batch)",
    )
    parser.add_argument(
        "--sample-every", type=int, default=97, help="records per sample with sample (97)"
    )
    parser.add_argument(
        "--distinct-values",
        type=int,
        default=1024,
        help="random values generated before the clock starts, sent in turn (1024)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random value bytes")
    if not for_consumer:
        parser.add_argument(
            "--throughput",
            type=float,
            default=-1,
            help="records/s cap, -1 for none (default -1)",
        )
        parser.add_argument(
            "--reporting-interval",
            type=int,
            default=5000,
            help="ms between progress lines on stderr (default 5000)",
        )


def yield_every(args: argparse.Namespace) -> int:
    if args.yield_every == "auto":
        return max(1, args.max_request_size // max(1, args.record_size))
    return int(args.yield_every)


def check_producer_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.num_records is not None and args.num_records < 1:
        parser.error("--num-records must be at least 1")
    if args.record_size < 0:
        parser.error("--record-size must be >= 0")
    if args.partitions < 1:
        parser.error("--partitions must be at least 1")
    if args.distinct_values < 1:
        parser.error("--distinct-values must be at least 1")
    if args.sample_every < 1:
        parser.error("--sample-every must be at least 1")
    if args.yield_every != "auto":
        try:
            if int(args.yield_every) < 0:
                raise ValueError
        except ValueError:
            parser.error("--yield-every must be auto or an integer >= 0")
    throughput = getattr(args, "throughput", -1)
    if throughput == 0 or (throughput < 0 and throughput != -1):
        parser.error("--throughput must be positive or -1")


class _Acks:
    """Acknowledgement times: per batch run (``batch``) or per sampled record (``sample``)."""

    def __init__(self) -> None:
        self.first: array[int] = array("q")  # record index where each run starts
        self.acked: list[float] = []  # its acknowledgement time (nan: not answered, or failed)
        self.failed: list[int] = []  # runs (or samples) whose future failed
        self.first_error: str | None = None

    def watch(self, future: Any, index: int) -> None:
        """``future``: a batch's ``asyncio.Future`` or a ``RecordFuture``."""
        self.acked.append(math.nan)
        future.add_done_callback(functools.partial(self._done, len(self.first)))
        self.first.append(index)

    def _done(self, slot: int, future: Any) -> None:
        now = time.perf_counter()
        try:
            error = future.exception()
        except asyncio.CancelledError:
            error = "cancelled"
        if error is None:
            self.acked[slot] = now
            return
        self.failed.append(slot)
        if self.first_error is None:
            self.first_error = error if isinstance(error, str) else repr(error)

    def run_length(self, slot: int, count: int) -> int:
        end = self.first[slot + 1] if slot + 1 < len(self.first) else count
        return end - self.first[slot]


def _latencies_ms(method: str, acks: _Acks, send_times: array[float], count: int) -> list[float]:
    out: list[float] = []
    for k in range(len(acks.first)):
        acked = acks.acked[k]
        if math.isnan(acked):
            continue  # failed: counted in errors
        if method == "sample":
            out.append((acked - send_times[k]) * 1000.0)
            continue
        start = acks.first[k]
        end = start + acks.run_length(k, count)
        out.extend([(acked - sent) * 1000.0 for sent in send_times[start:end]])
    return out


async def send_records(
    producer: Producer,
    topic: str,
    values: list[bytes],
    count: int,
    *,
    throughput: float = -1,
    every: int = 0,
    method: str = "batch",
    sample_every: int = 97,
    reporting_interval_s: float = 5.0,
    tool: str = TOOL,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """Send ``count`` records (``values`` in turn), flush, return throughput and latency figures.

    ``meter`` measures CPU over the sends and the flush only (not the latency statistics).
    """
    acks = _Acks()
    send_times: array[float] = array("d")
    record_time = send_times.append
    clock = time.perf_counter
    send = producer.send
    interval = 1.0 / throughput if throughput > 0 else 0.0
    countdown = every if every > 0 else -1
    by_batch = method == "batch"
    sample_countdown = 1
    current: Any = None
    report_records = 0

    if meter is not None:
        meter.start()
    pool = len(values)
    start = clock()
    next_report = start + reporting_interval_s
    report_start = start
    for i in range(count):
        now = clock()
        if interval:
            due = start + i * interval
            if now < due:
                await asyncio.sleep(due - now)
                now = clock()
        value = values[i % pool]
        if by_batch:
            record_time(now)
            future = await send(topic, value)
            batch = future._batch
            if batch is not current:
                current = batch
                acks.watch(batch, i)
        else:
            future = await send(topic, value)
            sample_countdown -= 1
            if not sample_countdown:
                sample_countdown = sample_every
                record_time(now)
                acks.watch(future, i)
        countdown -= 1
        if not countdown:
            countdown = every
            await asyncio.sleep(0)
        if now >= next_report:
            window = now - report_start
            progress(
                tool,
                f"{i} records sent, {(i - report_records) / window:.0f} records/s in the last "
                f"{window:.1f} s",
            )
            report_records, report_start = i, now
            next_report = now + reporting_interval_s
    loop_end = clock()
    await producer.flush()
    end = clock()
    cpu = meter.stop() if meter is not None else {}

    elapsed = end - start
    latencies = _latencies_ms(method, acks, send_times, count)
    del send_times
    latency = summarize_ms(latencies)
    latency["method"] = method
    total_bytes = count * len(values[0])  # every value has the same size
    return {
        "records": count,
        "record_size": len(values[0]),
        "elapsed_s": elapsed,
        "send_loop_s": loop_end - start,
        "records_per_s": count / elapsed,
        "mb_s": total_bytes / elapsed / MB,
        "mib_s": total_bytes / elapsed / MIB,
        "latency": latency,
        "batches": len(acks.first) if by_batch else None,
        "records_per_batch": count / len(acks.first) if by_batch and acks.first else None,
        # batch: records that failed; sample: sampled records that failed (a lower bound)
        "errors": sum(acks.run_length(k, count) for k in acks.failed)
        if by_batch
        else len(acks.failed),
        "first_error": acks.first_error,
        "cpu": cpu,
    }


def make_producer(bootstrap: str, args: argparse.Namespace) -> Producer:
    return Producer(
        bootstrap,
        client_id="producer-perf",
        acks=args.acks,
        compression_type=args.compression,
        batch_size=args.batch_size,
        linger_ms=args.linger_ms,
        max_request_size=args.max_request_size,
        buffer_memory=args.buffer_memory,
    )


async def produce(
    bootstrap: str,
    args: argparse.Namespace,
    count: int,
    *,
    tool: str = TOOL,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """Create the topic if missing, then run ``send_records`` with ``args``' settings."""
    if args.latency_method == "batch" and "_batch" not in getattr(RecordFuture, "__slots__", ()):
        raise SystemExit(
            "RecordFuture no longer exposes its batch's future (_batch): "
            "use --latency-method sample"
        )
    created = await create_topic(bootstrap, args.topic, args.partitions)
    rng = random.Random(args.seed)
    values = [rng.randbytes(args.record_size) for _ in range(args.distinct_values)]
    producer = make_producer(bootstrap, args)
    await producer.start()
    try:
        partitions = await producer.partitions_for(args.topic)  # metadata before the clock
        progress(tool, f"sending {count} records of {args.record_size} bytes to {args.topic}")
        result = await send_records(
            producer,
            args.topic,
            values,
            count,
            throughput=getattr(args, "throughput", -1),
            every=yield_every(args),
            method=args.latency_method,
            sample_every=args.sample_every,
            reporting_interval_s=getattr(args, "reporting_interval", 5000) / 1000,
            tool=tool,
            meter=meter,
        )
    finally:
        await producer.close()
    result["topic_created"] = created
    result["partitions"] = partitions
    return result


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "topic": args.topic,
        "num_records": args.num_records,
        "record_size": args.record_size,
        "throughput": getattr(args, "throughput", -1),
        "acks": args.acks,
        "compression": args.compression,
        "batch_size": args.batch_size,
        "linger_ms": args.linger_ms,
        "max_request_size": args.max_request_size,
        "buffer_memory": args.buffer_memory,
        "partitions_if_created": args.partitions,
        "distinct_values": args.distinct_values,
        "yield_every": yield_every(args),
        "latency_method": args.latency_method,
        "sample_every": args.sample_every if args.latency_method == "sample" else None,
    }


def evaluate_bars(result: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The bar that applies to this run's record size (none for other sizes)."""
    met: dict[str, bool] = {}
    if config["record_size"] == 100:
        met["records_per_s_100b"] = result["records_per_s"] >= BARS["records_per_s_min_100b"]
    if config["record_size"] == 1000:
        met["mb_s_1000b"] = result["mb_s"] >= BARS["mb_s_min_1000b"]
    return {**BARS, "met": met}


def print_table(out: dict[str, Any]) -> None:
    print_environment(out["env"])
    config, result = out["config"], out["producer"]
    print()
    print(
        f"Producer: topic {config['topic']} ({result['partitions']} partition(s)), "
        f"acks={config['acks']}, compression={config['compression']}, "
        f"batch.size={config['batch_size']}, linger.ms={config['linger_ms']}, "
        f"throughput cap={config['throughput']:g}, yield every {config['yield_every']} sends"
    )
    print(
        f"  {result['records']} records sent, {result['records_per_s']:.1f} records/sec "
        f"({result['mb_s']:.2f} MB/sec, {result['mib_s']:.2f} MiB/sec), "
        f"{result['elapsed_s']:.2f} s (send loop {result['send_loop_s']:.2f} s)"
    )
    print(f"  latency ({result['latency']['method']}): {format_latency(result['latency'])}")
    if result.get("records_per_cpu_s"):
        print(
            f"  {result['records_per_cpu_s']:.0f} records per CPU-second of this process "
            "(its rate with a CPU to itself, were it the bottleneck)"
        )
    if result["batches"]:
        print(f"  {result['batches']} batches, {result['records_per_batch']:.1f} records each")
    if result["errors"]:
        print(f"  {result['errors']} failed records, first: {result['first_error']}")
    bars = out["bars"]
    for name, ok in bars["met"].items():
        bar = (
            bars["records_per_s_min_100b"] if name.startswith("records") else bars["mb_s_min_1000b"]
        )
        print(f"  bar {name} >= {bar:g}: {'met' if ok else 'NOT MET'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"(default {DEFAULT_TOPIC})")
    parser.add_argument(
        "--num-records", type=int, default=1_000_000, help="records to send (1000000)"
    )
    add_producer_arguments(parser)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    check_producer_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with broker_for(args.bootstrap_server, args.dir) as broker:
        env = environment(args.event_loop, broker)
        meter = CpuMeter.for_run(broker)
        result = run_async(
            lambda: produce(broker.bootstrap, args, args.num_records, meter=meter),
            args.event_loop,
        )
    cpu = result.pop("cpu")
    finish_environment(env, broker, started, cpu)
    if "tool" in cpu and cpu["tool"]["cpu_s"] > 0:
        # What one process could do with a CPU to itself: the figure contention cannot move.
        result["records_per_cpu_s"] = result["records"] / cpu["tool"]["cpu_s"]
    config = config_of(args)
    out = {
        "producer": result,
        "config": config,
        "env": env,
        "bars": evaluate_bars(result, config),
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print_table(out)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
