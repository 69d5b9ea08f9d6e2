"""NATS JetStream with nats-py for ``perf/compare.py``.

Each workload gets a stream of its own (file storage, one replica, subject
``NAME``), deleted after.

* produce: ``js.publish_async`` (at most ``MAX_PENDING`` unacknowledged, the
  client's own window), then ``publish_async_completed``; every PubAck is
  checked by a done-callback.
* consume: a pull consumer (``AckPolicy.ALL``: acking the last message of
  each fetch acknowledges the whole batch) fetching ``FETCH`` messages a time
  from the first message.
* latency: each stamped record is sent with ``publish_async``; an ordered
  push consumer delivering new messages (``DeliverPolicy.NEW``) receives them
  in a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import nats
from compare_common import LatencyRig, meter_for, paced, throughput
from compare_servers import Server
from nats.js import api

MAX_PENDING = 4000
FETCH = 1000


async def _connect(server: Server) -> Any:
    return await nats.connect(f"nats://127.0.0.1:{server.port}", max_reconnect_attempts=0)


async def _fresh_stream(js: Any, name: str) -> None:
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(name)
    await js.add_stream(name=name, subjects=[name], storage=api.StorageType.FILE, num_replicas=1)


async def produce(server: Server, name: str, values: list[bytes], count: int) -> dict[str, Any]:
    nc = await _connect(server)
    try:
        js = nc.jetstream(publish_async_max_pending=MAX_PENDING)
        await _fresh_stream(js, name)
        failed: list[BaseException] = []

        def check(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is not None:
                failed.append(future.exception())  # type: ignore[arg-type]

        pool = len(values)
        publish = js.publish_async
        meter = meter_for(server.pid).start()
        start = time.perf_counter()
        for i in range(count):
            future = await publish(name, values[i % pool])
            future.add_done_callback(check)
        await js.publish_async_completed()
        elapsed = time.perf_counter() - start
        cpu = meter.stop()
        if failed:
            raise RuntimeError(f"nats: {len(failed)} publishes failed, first: {failed[0]!r}")
        stored = (await js.stream_info(name)).state.messages
    finally:
        await nc.close()
    if stored != count:
        raise RuntimeError(f"nats: {stored} messages in {name}, wanted {count}")
    return throughput(count, count * len(values[0]), elapsed, cpu, max_pending=MAX_PENDING)


async def consume(server: Server, name: str, count: int) -> dict[str, Any]:
    nc = await _connect(server)
    try:
        js = nc.jetstream()
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.ALL,
            deliver_policy=api.DeliverPolicy.ALL,
            max_ack_pending=-1,
        )
        sub = await js.pull_subscribe(name, durable="compare", stream=name, config=config)
        consumed = nbytes = 0
        meter = meter_for(server.pid).start()
        start = time.perf_counter()
        while consumed < count:
            try:
                messages = await sub.fetch(FETCH, timeout=5)
            except nats.errors.TimeoutError:
                break
            for message in messages:
                nbytes += len(message.data)
            consumed += len(messages)
            await messages[-1].ack()
        elapsed = time.perf_counter() - start
        cpu = meter.stop()
        await js.delete_stream(name)
    finally:
        await nc.close()
    if consumed != count:
        raise RuntimeError(f"nats: read {consumed} messages of {name}, wanted {count}")
    return throughput(consumed, nbytes, elapsed, cpu, fetch=FETCH)


async def latency(server: Server, name: str, rate: float, count: int, size: int) -> dict[str, Any]:
    rig = LatencyRig(count)
    nc = await _connect(server)
    try:
        js = nc.jetstream(publish_async_max_pending=MAX_PENDING)
        await _fresh_stream(js, name)

        async def on_message(message: Any) -> None:
            rig.on_value(message.data, time.time_ns())

        sub = await js.subscribe(
            name, cb=on_message, ordered_consumer=True, deliver_policy=api.DeliverPolicy.NEW
        )
        await asyncio.sleep(0.2)
        meter = meter_for(server.pid).start()
        send_s = await paced(lambda value: js.publish_async(name, value), rate, count, size)
        await js.publish_async_completed()
        await rig.wait(10.0)
        cpu = meter.stop()
        await sub.unsubscribe()
        await js.delete_stream(name)
    finally:
        await nc.close()
    return rig.result(rate, send_s, cpu)
