"""What a partition's leader tracks about its followers: their log ends, the ISR, the HW.

Kafka's model:
- A follower fetching from offset N has everything below N, so N is its log
  end offset.
- A follower is caught up when it has fetched up to the leader's log end as
  of that fetch.
- A follower not caught up for ``replica.lag.time.max.ms`` leaves the ISR, and
  it rejoins once it reaches the high watermark.
- The high watermark is the lowest log end in the ISR. Consumers read below
  it, and ``acks=all`` completes when it passes a batch.

This class only computes. The broker writes ISR changes to the coordinator
(a conditional update), and only then applies them here (``set_isr``). So a
leader never acts on an ISR the cluster has not recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable

__all__ = ["FollowerState", "LeaderState"]


@dataclasses.dataclass(slots=True)
class FollowerState:
    log_end_offset: int = 0
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0


class LeaderState:
    def __init__(
        self,
        *,
        leader_id: int,
        replicas: Iterable[int],
        isr: Iterable[int],
        leader_end: Callable[[], int],
        high_watermark: int,
        now_ms: int,
    ) -> None:
        self.leader_id = leader_id
        self.replicas = tuple(replicas)
        self.isr: frozenset[int] = frozenset(isr) | {leader_id}
        self._leader_end = leader_end
        self.followers = {r: FollowerState(0, now_ms, 0) for r in self.replicas if r != leader_id}
        self.high_watermark = min(high_watermark, leader_end())
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- follower progress -----------------------------------------------------------

    def on_follower_fetch(self, replica_id: int, fetch_offset: int, now_ms: int) -> bool:
        """Record a follower's position; return True when the high watermark moved."""
        state = self.followers.get(replica_id)
        if state is None:
            return False
        state.log_end_offset = fetch_offset
        state.last_fetch_ms = now_ms
        if fetch_offset >= self._leader_end():
            state.last_caught_up_ms = now_ms
        return self.update_high_watermark()

    def expandable(self, now_ms: int, max_lag_ms: int) -> set[int]:
        """Followers outside the ISR that fetch from this leader, reached the high watermark
        and caught up lately (to add). A dead follower whose last position happens to equal
        the high watermark of an idle partition is not one of them."""
        return {
            r
            for r, s in self.followers.items()
            if r not in self.isr
            and s.last_fetch_ms > 0
            and s.log_end_offset >= self.high_watermark
            and now_ms - s.last_caught_up_ms <= max_lag_ms
        }

    def laggards(self, now_ms: int, max_lag_ms: int) -> set[int]:
        """ISR followers not caught up within ``max_lag_ms`` (to remove)."""
        return {
            r
            for r, s in self.followers.items()
            if r in self.isr and now_ms - s.last_caught_up_ms > max_lag_ms
        }

    def set_isr(self, isr: Iterable[int]) -> bool:
        """Apply an ISR the coordinator has recorded; return True when the HW moved.

        A follower that leaves the ISR (this leader found it lagging, or the controller
        found it dead) must fetch again before it can rejoin: as in Kafka, only a fetch
        proves a follower caught up. Its last state would otherwise make a follower killed
        a moment ago look caught up on an idle partition for ``replica.lag.time.max.ms``,
        and ``expandable`` would put it straight back.
        """
        new_isr = frozenset(isr) | {self.leader_id}
        for replica in self.isr - new_isr:
            state = self.followers.get(replica)
            if state is not None:
                state.last_fetch_ms = 0
        self.isr = new_isr
        return self.update_high_watermark()

    def update_high_watermark(self) -> bool:
        ends = [self._leader_end()]
        ends += [s.log_end_offset for r, s in self.followers.items() if r in self.isr]
        candidate = min(ends)
        if candidate <= self.high_watermark:
            return False
        self.high_watermark = candidate
        self._release_waiters()
        return True

    # -- acks=all --------------------------------------------------------------------

    def wait_for(self, offset: int) -> asyncio.Future[None]:
        """Resolved when the high watermark reaches ``offset`` (every ISR member has it)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.high_watermark >= offset:
            future.set_result(None)
        else:
            self._waiters.append((offset, future))
        return future

    def _release_waiters(self) -> None:
        hw = self.high_watermark
        waiting = []
        for offset, future in self._waiters:
            if future.done():
                continue
            if offset <= hw:
                future.set_result(None)
            else:
                waiting.append((offset, future))
        self._waiters = waiting

    def fail_waiters(self, error: BaseException) -> None:
        """Leadership lost: pending acks=all requests fail (the client retries elsewhere)."""
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)
                future.exception()
        self._waiters = []
