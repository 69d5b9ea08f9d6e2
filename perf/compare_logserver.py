"""logserver with its own client (``client.Producer``, ``client.Consumer``) for ``perf/compare.py``.

* produce: ``producer_perf.produce`` -- one ``Producer`` with ``acks=1``,
  ``linger_ms=5`` and producer_perf's other defaults (``batch_size`` 16384,
  no compression), a one-partition topic, the same 1024 random values;
* consume: ``consumer_perf.consume`` -- one ``Consumer`` assigned the
  partition from its log start, CRC checks on;
* latency: a ``Producer`` with ``acks=1`` and ``linger_ms=0`` (what a
  latency-minded user sets) sends each stamped record; a ``Consumer`` task on
  the same loop waits at the log end with a fetch parked at the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from broker_launcher import create_topic
from compare_common import LatencyRig, meter_for, paced, throughput
from compare_servers import Server
from consumer_perf import consume as consume_records
from producer_perf import add_producer_arguments
from producer_perf import produce as produce_records

from client.consumer import Consumer
from client.producer import Producer
from client.topic_partition import TopicPartition

LINGER_MS = 5


def _bootstrap(server: Server) -> str:
    return f"127.0.0.1:{server.port}"


def producer_settings(name: str, size: int) -> argparse.Namespace:
    """producer_perf's settings: its defaults, with ``linger_ms`` 5."""
    parser = argparse.ArgumentParser()
    add_producer_arguments(parser)
    args = parser.parse_args(["--record-size", str(size), "--linger-ms", str(LINGER_MS)])
    args.topic = name
    return args


async def produce(server: Server, name: str, values: list[bytes], count: int) -> dict[str, Any]:
    args = producer_settings(name, len(values[0]))
    if args.distinct_values != len(values):
        raise ValueError(f"producer_perf sends {args.distinct_values} values, not {len(values)}")
    meter = meter_for(server.pid)
    result = await produce_records(_bootstrap(server), args, count, tool="compare", meter=meter)
    if result["errors"]:
        raise RuntimeError(f"logserver: {result['errors']} records failed: {result['first_error']}")
    return throughput(
        count,
        count * args.record_size,
        result["elapsed_s"],
        result["cpu"],
        linger_ms=args.linger_ms,
        batch_size=args.batch_size,
        records_per_batch=result["records_per_batch"],
    )


async def consume(server: Server, name: str, count: int) -> dict[str, Any]:
    meter = meter_for(server.pid)
    result = await consume_records(_bootstrap(server), name, count, tool="compare", meter=meter)
    if not result["complete"]:
        raise RuntimeError(f"logserver: read {result['records']} records of {name}, wanted {count}")
    # consumer_perf counts key and value bytes; these records have no key
    return throughput(
        result["records"],
        result["bytes"],
        result["elapsed_s"],
        result["cpu"],
        polls=result["polls"],
    )


async def latency(server: Server, name: str, rate: float, count: int, size: int) -> dict[str, Any]:
    bootstrap = _bootstrap(server)
    await create_topic(bootstrap, name, 1)
    rig = LatencyRig(count)
    consumer = Consumer(bootstrap, client_id="compare-latency", auto_offset_reset="latest")
    producer = Producer(bootstrap, client_id="compare-latency", acks=1, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        tp = TopicPartition(name, 0)
        await producer.partitions_for(name)
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.assign([tp])
        consumer.seek(tp, end)
        if await consumer.poll(timeout_ms=200):  # the next fetch now waits at the broker
            raise RuntimeError(f"logserver: records in {name} before the producer started")

        async def receive() -> None:
            while rig.received < count:
                batch = await consumer.poll(timeout_ms=1000)
                now = time.time_ns()
                for records in batch.values():
                    for record in records:
                        rig.on_value(record.value or b"", now)

        task = asyncio.create_task(receive())
        meter = meter_for(server.pid).start()
        send_s = await paced(lambda value: producer.send(name, value), rate, count, size)
        await producer.flush()
        await rig.wait(10.0, task)
        cpu = meter.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await producer.close()
        await consumer.close()
    return rig.result(rate, send_s, cpu)
