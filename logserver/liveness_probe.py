"""Spotting a dead broker before its ZooKeeper session expires.

A broker killed outright keeps its registration until ZooKeeper expires its
session (``zookeeper.session.timeout.ms``), and its partitions stay without a
leader all that time. Its port, though, refuses connections at once: the
kernel closed its listening socket. The controller probes every registered
broker's advertised endpoint, and a broker that *refuses* a connection
``REFUSALS`` times in a row is treated as dead until it registers again.

Only a refusal counts. A timeout or an unreachable host (a paused process, a
slow network, a vanished pod) proves nothing: the ZooKeeper session stays the
authority there. A wrong verdict costs a leader election, never data: the
broker that lost leadership hears of it through ZooKeeper and its writes are
fenced by the leader epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from coordination import BrokerInfo

__all__ = ["REFUSALS", "LivenessProbe"]

log = logging.getLogger(__name__)

REFUSALS = 2
"""Refused connections in a row that make a broker dead (one may be a restart's gap)."""


class LivenessProbe:
    """Probes registered brokers; calls ``on_dead(info)`` once per registration found dead."""

    def __init__(
        self,
        own_id: int,
        on_dead: Callable[[BrokerInfo], None],
        *,
        interval_s: float = 0.5,
        connect_timeout_s: float = 1.0,
    ) -> None:
        self._own_id = own_id
        self._on_dead = on_dead
        self._interval_s = interval_s
        self._timeout_s = connect_timeout_s
        self._targets: dict[int, BrokerInfo] = {}
        self._refusals: dict[int, int] = {}
        self._reported: set[tuple[int, int]] = set()  # (broker id, registration epoch)
        self._task: asyncio.Task[None] | None = None

    def watch(self, brokers: Iterable[BrokerInfo]) -> None:
        """Probe exactly these registrations from now on (the others are forgotten)."""
        self._targets = {b.broker_id: b for b in brokers if b.broker_id != self._own_id}
        current = {(b.broker_id, b.epoch) for b in self._targets.values()}
        self._reported &= current
        for broker_id in set(self._refusals) - set(self._targets):
            del self._refusals[broker_id]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="liveness-probe")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            targets = list(self._targets.values())
            if targets:
                refused = await asyncio.gather(*(self._refuses(b) for b in targets))
                for info, was_refused in zip(targets, refused, strict=True):
                    self._count(info, was_refused)
            await asyncio.sleep(self._interval_s)

    def _count(self, info: BrokerInfo, refused: bool) -> None:
        current = self._targets.get(info.broker_id)
        if current is None or current.epoch != info.epoch:
            return  # re-registered or gone while probed
        if not refused:
            self._refusals.pop(info.broker_id, None)
            return
        count = self._refusals.get(info.broker_id, 0) + 1
        self._refusals[info.broker_id] = count
        key = (info.broker_id, info.epoch)
        if count >= REFUSALS and key not in self._reported:
            self._reported.add(key)
            log.warning(
                "broker %d refuses connections at %s:%d (%d times in a row): "
                "treating it as dead until it registers again",
                info.broker_id,
                info.host,
                info.port,
                count,
            )
            self._on_dead(info)

    async def _refuses(self, info: BrokerInfo) -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(info.host, info.port), self._timeout_s
            )
        except ConnectionRefusedError:
            return True
        except (OSError, TimeoutError):
            return False  # unreachable or slow: not proof of death
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return False
