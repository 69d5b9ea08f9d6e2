"""What the three systems of ``perf/compare.py`` share: values, figures, CPU, the latency rig.

Every system module (``compare_redis.py``, ``compare_nats.py``,
``compare_logserver.py``) offers the same three coroutines, each returning a
``dict`` built here so the table compares like with like:

* ``produce(server, name, values, count)`` -> ``throughput(...)``: ``count``
  records sent with acknowledgements, clock from the first send to the last
  acknowledgement;
* ``consume(server, name, count)`` -> ``throughput(...)``: every record read
  from the start, clock from the first request to the last record;
* ``latency(server, name, rate, count, size)`` -> ``LatencyRig.result()``: a
  consumer already waiting at the end of an empty stream while ``paced``
  sends ``count`` stamped records at ``rate`` per second.

Values are the ones ``perf/producer_perf.py`` sends (``random_values``: 1024
distinct random values from seed 0, generated before any clock starts), so
all three systems store the same bytes. MB is 10**6 bytes of values (keys,
field names, ids and headers are not counted).
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
from array import array
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from broker_launcher import MB, CpuMeter, summarize_ms

DISTINCT_VALUES = 1024
STAMP = struct.Struct(">qq")  # sequence number, time.time_ns() at send


def random_values(size: int, seed: int = 0, distinct: int = DISTINCT_VALUES) -> list[bytes]:
    """The values ``producer_perf.produce`` generates for the same size and seed."""
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(distinct)]


def meter_for(server_pid: int) -> CpuMeter:
    """CPU of this process (the client) and of the server over one workload.

    ``CpuMeter`` reads ``/proc/PID/task/*/schedstat``: utime + stime of every
    thread, in nanoseconds, plus the time spent waiting for a CPU.
    """
    return CpuMeter({"client": os.getpid(), "server": server_pid})


def throughput(
    records: int, value_bytes: int, elapsed_s: float, cpu: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "records": records,
        "bytes": value_bytes,
        "elapsed_s": elapsed_s,
        "records_per_s": records / elapsed_s if elapsed_s > 0 else 0.0,
        "mb_s": value_bytes / elapsed_s / MB if elapsed_s > 0 else 0.0,
        "cpu": {name: used["cpu_s"] for name, used in cpu.items()},
        "runqueue_wait": {name: used["runqueue_wait_s"] for name, used in cpu.items()},
        **extra,
    }


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (apparent size)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def stamped(seq: int, size: int) -> bytes:
    """A latency record: sequence number and send time, padded to ``size`` bytes."""
    return STAMP.pack(seq, time.time_ns()).ljust(size, b"\0")


class LatencyRig:
    """Receive times of stamped records, by sequence number (duplicates and strays counted)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.latencies_ns = array("q", [-1]) * count
        self.received = 0
        self.duplicates = 0
        self.foreign = 0
        self.done = asyncio.Event()

    def on_value(self, value: bytes, now_ns: int) -> None:
        if len(value) < STAMP.size:
            self.foreign += 1
            return
        seq, sent = STAMP.unpack_from(value)
        if not 0 <= seq < self.count:
            self.foreign += 1
        elif self.latencies_ns[seq] >= 0:
            self.duplicates += 1
        else:
            self.latencies_ns[seq] = now_ns - sent
            self.received += 1
            if self.received == self.count:
                self.done.set()

    async def wait(self, timeout_s: float, receiver: asyncio.Task[Any] | None = None) -> None:
        """Until every record arrived, ``timeout_s`` passed or ``receiver`` failed (raised)."""
        waiter = asyncio.ensure_future(self.done.wait())
        waiting: set[asyncio.Future[Any]] = {waiter}
        if receiver is not None:
            waiting.add(receiver)
        await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if receiver is not None and receiver.done() and not receiver.cancelled():
            error = receiver.exception()
            if error is not None:
                raise RuntimeError("the latency consumer failed") from error

    def result(self, rate: float, send_s: float, cpu: dict[str, Any]) -> dict[str, Any]:
        summary = summarize_ms([ns / 1e6 for ns in self.latencies_ns if ns >= 0])
        return {
            **summary,
            "rate": rate,
            "achieved_rate": self.count / send_s if send_s > 0 else 0.0,
            "sent": self.count,
            "received": self.received,
            "missing": self.count - self.received,
            "duplicates": self.duplicates,
            "cpu": {name: used["cpu_s"] for name, used in cpu.items()},
        }


async def paced(
    send: Callable[[bytes], Awaitable[Any]], rate: float, count: int, size: int
) -> float:
    """Send ``count`` stamped records at ``rate``/s; record ``i`` is due at ``start + i/rate``.

    The stamp is taken just before ``send``. The event loop's timers have
    millisecond resolution, so at 2,000/s records leave in pairs: the same for
    every system. Returns the seconds the sends took.
    """
    clock = time.perf_counter
    start = clock()
    for i in range(count):
        delay = start + i / rate - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(stamped(i, size))
    return clock() - start
