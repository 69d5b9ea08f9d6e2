"""Redis Streams with redis-py (hiredis parser) for ``perf/compare.py``.

* produce: ``XADD stream * v VALUE`` (no ``MAXLEN``), pipelined without
  MULTI in pipelines of ``PIPELINE`` commands; each ``execute`` returns every
  entry's id, Redis's acknowledgement.
* consume: ``XREAD COUNT 10000 STREAMS stream LAST_ID`` from ``0-0`` until
  every entry is read.
* latency: one connection ``XADD``s each stamped record (awaiting its id), a
  second waits in ``XREAD BLOCK`` from ``$`` (redis.asyncio, same loop).

The throughput workloads use the synchronous client (a competent user's
choice for a bulk loader; the loop has nothing else to run meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import redis
import redis.asyncio
from compare_common import LatencyRig, meter_for, paced, throughput
from compare_servers import Server

PIPELINE = 1000
READ_COUNT = 10_000
FIELD = b"v"


def _client(server: Server) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port)


async def produce(server: Server, name: str, values: list[bytes], count: int) -> dict[str, Any]:
    client = _client(server)
    try:
        client.delete(name)
        pool = len(values)
        meter = meter_for(server.pid).start()
        start = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            pipe.xadd(name, {FIELD: values[i % pool]})
            if len(pipe) >= PIPELINE:
                pipe.execute()
        if len(pipe):
            pipe.execute()
        elapsed = time.perf_counter() - start
        cpu = meter.stop()
        stored = client.xlen(name)
    finally:
        client.close()
    if stored != count:
        raise RuntimeError(f"redis: {stored} entries in {name}, wanted {count}")
    return throughput(count, count * len(values[0]), elapsed, cpu, pipeline=PIPELINE)


async def consume(server: Server, name: str, count: int) -> dict[str, Any]:
    client = _client(server)
    try:
        consumed = nbytes = 0
        last = b"0-0"
        meter = meter_for(server.pid).start()
        start = time.perf_counter()
        while consumed < count:
            reply = client.xread({name: last}, count=READ_COUNT)
            if not reply:
                break
            entries = reply[0][1]
            for _, fields in entries:
                nbytes += len(fields[FIELD])
            consumed += len(entries)
            last = entries[-1][0]
        elapsed = time.perf_counter() - start
        cpu = meter.stop()
        client.delete(name)  # Redis holds streams in memory; the next size needs room
    finally:
        client.close()
    if consumed != count:
        raise RuntimeError(f"redis: read {consumed} entries of {name}, wanted {count}")
    return throughput(consumed, nbytes, elapsed, cpu, read_count=READ_COUNT)


async def latency(server: Server, name: str, rate: float, count: int, size: int) -> dict[str, Any]:
    rig = LatencyRig(count)
    producer = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
    reader = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
    try:
        await producer.delete(name)

        async def receive() -> None:
            last = b"$"
            while rig.received < count:
                reply = await reader.xread({name: last}, count=READ_COUNT, block=1000)
                now = time.time_ns()
                if not reply:
                    continue
                for entry_id, fields in reply[0][1]:
                    rig.on_value(fields[FIELD], now)
                    last = entry_id

        task = asyncio.create_task(receive())
        await asyncio.sleep(0.2)  # the XREAD BLOCK is waiting at the server
        meter = meter_for(server.pid).start()
        send_s = await paced(lambda value: producer.xadd(name, {FIELD: value}), rate, count, size)
        await rig.wait(10.0, task)
        cpu = meter.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.delete(name)
    finally:
        await producer.aclose()
        await reader.aclose()
    return rig.result(rate, send_s, cpu)
