"""End-to-end latency, producer send to consumer receipt, at a fixed send rate.

Run from the repository root with the project's virtualenv::

    python perf/end_to_end_latency.py [--throughput 2000] [--num-records 20000]
        [--record-size 100] [--acks 1] [--linger-ms 0] [--consumer process|inline]
        [--bootstrap-server HOST:PORT] [--json]

A producer (``acks=1``, ``linger_ms=0`` by default) sends ``--num-records``
records at ``--throughput`` records/s to a fresh-looking ``--topic``; a
consumer reads them and, for each, takes the time of receipt minus the send
time written in the record's value. Printed: avg/p50/p99/p99.9/max of that
latency in ms, and, to locate the time, the producer-side acknowledgement
latency (``acks=1``: send to the broker's answer) and the send lag (how late
each send left against its schedule).

Processes. The consumer runs in a process of its own by default
(``--consumer process``, ``multiprocessing`` with ``spawn``): producer,
broker and consumer are then three processes, as in a real deployment, and
neither client's event loop waits for the other's. ``--consumer inline`` runs it as a
task on the producer's event loop instead (one client process). The broker is
the one at ``--bootstrap-server`` or a standalone broker launched for the run
(``perf/broker_launcher.py``).

Clock. The value holds the record's sequence number and ``time.time_ns()``
taken just before ``producer.send`` (8 + 8 bytes, big-endian, then padding to
``--record-size``); the consumer takes ``time.time_ns()`` as soon as ``poll``
returns and subtracts. ``time_ns`` is the wall clock, the one clock the two
processes share on one machine. The consumer assigns every partition at its
log end, and has a fetch waiting at the broker (one empty ``poll``) before
the producer starts. Sequence numbers find lost, duplicated and reordered
records (reported; they are not latencies).

Pacing. A pacing thread sleeps (``time.sleep``, sub-millisecond resolution)
until each record is due, ``start + i / throughput``, and hands the record to
the event loop (``call_soon_threadsafe``), whose producer coroutine stamps and
sends it at once. The event loop's own timers have millisecond resolution:
pacing with them would send records in pairs at 2000/s. If the loop falls
behind, records wait for it; that wait is the send lag, printed separately so a
stall the latency figures cannot see (they start at the actual send) shows. The
pacing thread costs the producer process some CPU of its own (a wake-up and a
cross-thread hand-off per record, ~30 us here).

CPU. Printed per process (producer = ``tool``, ``broker``, ``consumer``): CPU
time and run-queue wait over the run, from ``/proc/PID/task/*/schedstat``. On a
small shared machine the run-queue wait -- time a process was ready but had no
CPU -- is where latency tails come from; compare it before reading a p99.

``--warmup-records`` leaves the first records out of the statistics (default
0: every record counts). Speed bars are printed, never enforced; the exit
status is 1 when a record was lost or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import multiprocessing
import os
import random
import struct
import sys
import threading
import time
import traceback
from array import array
from collections.abc import Callable
from typing import Any

from broker_launcher import (
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
from producer_perf import parse_acks

from client.consumer import Consumer
from client.producer import Producer
from client.topic_partition import TopicPartition

TOOL = "end_to_end_latency"
BARS = {"p99_ms_max": 2.0}
DEFAULT_TOPIC = "end-to-end-latency"
STAMP = struct.Struct(">qq")  # sequence number, time.time_ns() at send
READY_TIMEOUT_S = 60.0


# -- the consumer side ----------------------------------------------------------------


async def receive(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    timeout_ms: int,
    fetch_max_wait_ms: int,
    on_ready: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Consume ``count`` records from the log end; latency per sequence number, in ns."""
    consumer = Consumer(
        bootstrap,
        client_id="e2e-consumer",
        auto_offset_reset="latest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await consumer.partitions_for_topic(topic))]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])
        early = await consumer.poll(timeout_ms=200)  # the first fetch now waits at the broker
        if early:
            raise RuntimeError(f"records arrived before the producer started: {early}")
        on_ready({"start_offsets": [ends[tp] for tp in tps]})
        meter = CpuMeter({"consumer": os.getpid()}).start()

        latencies = array("q", [-1]) * count
        unpack = STAMP.unpack_from
        wall = time.time_ns
        received = duplicates = out_of_order = foreign = 0
        last_seq: dict[TopicPartition, int] = {}
        last_record = time.monotonic()
        while received < count:
            batch = await consumer.poll(timeout_ms=1000)
            now = wall()
            if not batch:
                if time.monotonic() - last_record > timeout_ms / 1000:
                    break
                continue
            last_record = time.monotonic()
            for tp, records in batch.items():
                previous = last_seq.get(tp, -1)
                for record in records:
                    value = record.value
                    if value is None or len(value) < STAMP.size:
                        foreign += 1
                        continue
                    seq, sent = unpack(value)
                    if not 0 <= seq < count:
                        foreign += 1
                        continue
                    if latencies[seq] >= 0:
                        duplicates += 1
                        continue
                    latencies[seq] = now - sent
                    received += 1
                    if seq < previous:
                        out_of_order += 1
                    previous = seq
                last_seq[tp] = previous
        cpu = meter.stop().get("consumer")
    finally:
        await consumer.close()
    return {
        "cpu": cpu,
        "latencies_ns": latencies.tobytes(),
        "received": received,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "foreign": foreign,
    }


def consumer_process(
    conn: Any, bootstrap: str, topic: str, count: int, options: dict[str, Any]
) -> None:
    """The consumer's own process: reports ``ready``, then ``done`` (or ``error``) on ``conn``."""
    try:
        result = run_async(
            lambda: receive(
                bootstrap,
                topic,
                count,
                timeout_ms=options["timeout_ms"],
                fetch_max_wait_ms=options["fetch_max_wait_ms"],
                on_ready=lambda info: conn.send(("ready", info)),
            ),
            options["event_loop"],
        )
        conn.send(("done", result))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise
    finally:
        conn.close()


# -- the producer side ------------------------------------------------------------------


class _Pacer(threading.Thread):
    """Hands record ``i`` to the loop at ``start + i * interval`` (perf_counter), sleeping."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[int], count: int, rate: float
    ) -> None:
        super().__init__(name="pacer", daemon=True)
        self._loop, self._queue, self._count, self._interval = loop, queue, count, 1.0 / rate
        self.start_time = 0.0
        self.stopped = threading.Event()

    def due(self, i: int) -> float:
        return self.start_time + i * self._interval

    def run(self) -> None:
        put = self._queue.put_nowait
        call = self._loop.call_soon_threadsafe
        clock = time.perf_counter
        self.start_time = clock()
        for i in range(self._count):
            if self.stopped.is_set():
                return
            wait = self.due(i) - clock()
            if wait > 0:
                time.sleep(wait)
            try:
                call(put, i)
            except RuntimeError:  # the loop closed (the run failed)
                return


async def send_paced(
    producer: Producer, topic: str, count: int, rate: float, record_size: int, seed: int
) -> dict[str, Any]:
    padding = random.Random(seed).randbytes(max(0, record_size - STAMP.size))
    pack = STAMP.pack
    wall = time.time_ns
    clock = time.perf_counter
    send = producer.send
    send_times = array("d", [0.0]) * count
    ack_times = array("d", [0.0]) * count
    errors: list[str] = []

    def acked(i: int, future: Any) -> None:
        now = clock()
        try:
            error = future.exception()
        except asyncio.CancelledError:
            error = "cancelled"
        if error is None:
            ack_times[i] = now
        else:
            errors.append(repr(error))

    queue: asyncio.Queue[int] = asyncio.Queue()
    pacer = _Pacer(asyncio.get_running_loop(), queue, count, rate)
    pacer.start()
    try:
        for _ in range(count):
            i = await queue.get()
            send_times[i] = clock()
            future = await send(topic, pack(i, wall()) + padding)
            future.add_done_callback(functools.partial(acked, i))
        await producer.flush()
    finally:
        pacer.stopped.set()
        pacer.join(5)
    end = clock()
    lags = [(send_times[i] - pacer.due(i)) * 1000.0 for i in range(count)]
    # One entry per record, in sequence order; NaN where the send failed.
    acks = [
        (ack_times[i] - send_times[i]) * 1000.0 if ack_times[i] else math.nan for i in range(count)
    ]
    return {
        "sent": count,
        "send_elapsed_s": end - pacer.start_time,
        "achieved_rate": count / (send_times[count - 1] - pacer.start_time)
        if count > 1
        else float(count),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "ack_ms": acks,
        "lag_ms": lags,
    }


def make_producer(bootstrap: str, args: argparse.Namespace) -> Producer:
    return Producer(
        bootstrap,
        client_id="e2e-producer",
        acks=args.acks,
        compression_type=args.compression,
        batch_size=args.batch_size,
        linger_ms=args.linger_ms,
    )


# -- the run ----------------------------------------------------------------------------


async def run_inline(bootstrap: str, args: argparse.Namespace) -> tuple[dict, dict]:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[dict[str, Any]] = loop.create_future()
    receiver = asyncio.create_task(
        receive(
            bootstrap,
            args.topic,
            args.num_records,
            timeout_ms=args.timeout,
            fetch_max_wait_ms=args.fetch_max_wait_ms,
            on_ready=ready.set_result,
        )
    )
    try:
        await asyncio.wait_for(asyncio.shield(ready), READY_TIMEOUT_S)
        sent = await produce(bootstrap, args)
        received = await receiver
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    return sent, received


async def produce(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    producer = make_producer(bootstrap, args)
    await producer.start()
    try:
        await producer.partitions_for(args.topic)  # metadata before the first record
        progress(
            TOOL,
            f"sending {args.num_records} records of {args.record_size} bytes at "
            f"{args.throughput:g} records/s",
        )
        return await send_paced(
            producer, args.topic, args.num_records, args.throughput, args.record_size, args.seed
        )
    finally:
        await producer.close()


def run_with_process(bootstrap: str, args: argparse.Namespace) -> tuple[dict, dict]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    options = {
        "timeout_ms": args.timeout,
        "fetch_max_wait_ms": args.fetch_max_wait_ms,
        "event_loop": args.event_loop,
    }
    process = context.Process(
        target=consumer_process,
        args=(child, bootstrap, args.topic, args.num_records, options),
        name="e2e-consumer",
    )
    process.start()
    child.close()
    try:
        kind, payload = _expect(parent, process, READY_TIMEOUT_S)
        if kind != "ready":
            raise RuntimeError(f"the consumer process failed to start:\n{payload}")
        sent = run_async(lambda: produce(bootstrap, args), args.event_loop)
        kind, received = _expect(
            parent, process, args.num_records / args.throughput + args.timeout / 1000 + 30
        )
        if kind != "done":
            raise RuntimeError(f"the consumer process failed:\n{received}")
        process.join(10)
    finally:
        if process.is_alive():
            process.kill()  # by its own handle, only on failure
            process.join(5)
        parent.close()
    return sent, received


def _expect(conn: Any, process: Any, timeout_s: float) -> tuple[str, Any]:
    if not conn.poll(timeout_s):
        raise RuntimeError(f"no word from the consumer process within {timeout_s:.0f} s")
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError(f"the consumer process died (exit code {process.exitcode})") from None


def summarize(args: argparse.Namespace, sent: dict, received: dict) -> dict[str, Any]:
    count, warmup = args.num_records, args.warmup_records
    latencies_ns = array("q")
    latencies_ns.frombytes(received["latencies_ns"])
    counted = [ns / 1e6 for ns in latencies_ns[warmup:] if ns >= 0]
    missing = sum(1 for ns in latencies_ns if ns < 0)
    return {
        "latency": summarize_ms(counted),
        "ack_latency": summarize_ms([ms for ms in sent["ack_ms"][warmup:] if not math.isnan(ms)]),
        "send_lag": summarize_ms(sent["lag_ms"][warmup:]),
        "sent": sent["sent"],
        "received": received["received"],
        "missing": missing,
        "duplicates": received["duplicates"],
        "out_of_order": received["out_of_order"],
        "foreign": received["foreign"],
        "errors": sent["errors"],
        "first_error": sent["first_error"],
        "achieved_rate": sent["achieved_rate"],
        "send_elapsed_s": sent["send_elapsed_s"],
        "warmup_records": min(warmup, count),
    }


async def prepare(bootstrap: str, args: argparse.Namespace) -> bool:
    return await create_topic(bootstrap, args.topic, args.partitions)


def print_table(out: dict[str, Any]) -> None:
    print_environment(out["env"])
    config, result = out["config"], out["e2e"]
    print()
    print(
        f"End-to-end: topic {config['topic']}, {config['throughput']:g} records/s "
        f"(achieved {result['achieved_rate']:.1f}), {config['record_size']} bytes, "
        f"acks={config['acks']}, linger.ms={config['linger_ms']}, consumer {config['consumer']}"
    )
    print(
        f"  {result['sent']} sent, {result['received']} received, {result['missing']} missing, "
        f"{result['duplicates']} duplicates, {result['out_of_order']} out of order"
        + (f", first {result['warmup_records']} not counted" if result["warmup_records"] else "")
    )
    print(f"  end-to-end latency: {format_latency(result['latency'])}")
    print(f"  ack latency (send to the broker's answer): {format_latency(result['ack_latency'])}")
    print(f"  send lag (behind schedule): {format_latency(result['send_lag'])}")
    if result["errors"]:
        print(f"  {result['errors']} failed records, first: {result['first_error']}")
    bars = out["bars"]
    verdict = "met" if bars["met"]["p99_ms"] else "NOT MET"
    print(f"  bar p99 < {bars['p99_ms_max']:g} ms: {verdict}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"(default {DEFAULT_TOPIC})")
    parser.add_argument("--num-records", type=int, default=20_000, help="(default 20000)")
    parser.add_argument(
        "--throughput", type=float, default=2000.0, help="records/s sent (default 2000)"
    )
    parser.add_argument(
        "--record-size", type=int, default=100, help=f"value bytes, >= {STAMP.size} (100)"
    )
    parser.add_argument("--acks", type=parse_acks, default=1, help="0, 1 or all (default 1)")
    parser.add_argument("--linger-ms", type=int, default=0, help="linger.ms (default 0)")
    parser.add_argument("--batch-size", type=int, default=16384, help="batch.size (16384)")
    parser.add_argument(
        "--compression", choices=("none", "lz4", "snappy"), default="none", help="(none)"
    )
    parser.add_argument(
        "--partitions", type=int, default=1, help="partitions when creating the topic (1)"
    )
    parser.add_argument(
        "--consumer",
        choices=("process", "inline"),
        default="process",
        help="the consumer in its own process (default) or on the producer's event loop",
    )
    parser.add_argument(
        "--fetch-max-wait-ms", type=int, default=500, help="consumer fetch.max.wait.ms (500)"
    )
    parser.add_argument(
        "--warmup-records", type=int, default=0, help="first records left out of the stats (0)"
    )
    parser.add_argument(
        "--timeout", type=int, default=10_000, help="ms without a record before giving up"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the padding bytes")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.num_records < 1:
        parser.error("--num-records must be at least 1")
    if args.throughput <= 0:
        parser.error("--throughput must be positive (this tool sends at a fixed rate)")
    if args.record_size < STAMP.size:
        parser.error(f"--record-size must be at least {STAMP.size} (sequence and timestamp)")
    if not 0 <= args.warmup_records < args.num_records:
        parser.error("--warmup-records must be >= 0 and below --num-records")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with broker_for(args.bootstrap_server, args.dir) as broker:
        env = environment(args.event_loop, broker)
        created = run_async(lambda: prepare(broker.bootstrap, args), args.event_loop)
        meter = CpuMeter.for_run(broker).start()
        if args.consumer == "process":
            sent, received = run_with_process(broker.bootstrap, args)
        else:
            sent, received = run_async(lambda: run_inline(broker.bootstrap, args), args.event_loop)
        cpu = meter.stop()
    consumer_cpu = received.pop("cpu")  # inline: the tool process, counted already
    if args.consumer == "process" and consumer_cpu is not None:
        cpu["consumer"] = consumer_cpu
    finish_environment(env, broker, started, cpu)
    result = summarize(args, sent, received)
    config = {
        "topic": args.topic,
        "topic_created": created,
        "num_records": args.num_records,
        "throughput": args.throughput,
        "record_size": args.record_size,
        "acks": args.acks,
        "linger_ms": args.linger_ms,
        "batch_size": args.batch_size,
        "compression": args.compression,
        "partitions_if_created": args.partitions,
        "consumer": args.consumer,
        "fetch_max_wait_ms": args.fetch_max_wait_ms,
        "pid": os.getpid(),
    }
    p99 = result["latency"]["p99_ms"]
    bars = {**BARS, "met": {"p99_ms": bool(p99 < BARS["p99_ms_max"])}}
    out = {"e2e": result, "config": config, "env": env, "bars": bars}
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print_table(out)
    lost = result["missing"] or result["errors"]
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
