"""LeaderState: which followers leave the ISR, and which may rejoin it."""

from __future__ import annotations

from logserver.replication.leader_state import LeaderState

LAG_MS = 3_000


def leader_of_idle_partition(end: int = 100) -> LeaderState:
    """Leader 0 of replicas 0, 1, 2, every one caught up at ``end`` at t=1000 ms."""
    state = LeaderState(
        leader_id=0,
        replicas=(0, 1, 2),
        isr=(0, 1, 2),
        leader_end=lambda: end,
        high_watermark=end,
        now_ms=0,
    )
    for follower in (1, 2):
        state.on_follower_fetch(follower, end, now_ms=1_000)
    return state


def test_a_follower_the_controller_removed_does_not_rejoin_without_fetching() -> None:
    """Killed at t=1000 ms; the controller drops it from the ISR at 2000 ms. Its last fetch
    (caught up, 1 s ago, on an idle partition) must not put it back: it never fetches again."""
    state = leader_of_idle_partition()
    state.set_isr((0, 2))
    assert state.expandable(now_ms=2_500, max_lag_ms=LAG_MS) == set()
    assert state.isr == {0, 2}


def test_a_follower_that_fetches_again_rejoins() -> None:
    state = leader_of_idle_partition()
    state.set_isr((0, 2))
    state.on_follower_fetch(1, 100, now_ms=2_600)
    assert state.expandable(now_ms=2_700, max_lag_ms=LAG_MS) == {1}


def test_a_laggard_leaves_and_comes_back_once_caught_up() -> None:
    end = [100]
    state = LeaderState(
        leader_id=0,
        replicas=(0, 1),
        isr=(0, 1),
        leader_end=lambda: end[0],
        high_watermark=100,
        now_ms=0,
    )
    state.on_follower_fetch(1, 100, now_ms=1_000)
    end[0] = 200  # the leader appends; the follower stops fetching
    assert state.laggards(now_ms=1_000 + LAG_MS + 1, max_lag_ms=LAG_MS) == {1}
    state.set_isr((0,))
    assert state.high_watermark == 200
    state.on_follower_fetch(1, 150, now_ms=5_000)  # fetching again, not there yet
    assert state.expandable(now_ms=5_000, max_lag_ms=LAG_MS) == set()
    state.on_follower_fetch(1, 200, now_ms=5_100)
    assert state.expandable(now_ms=5_100, max_lag_ms=LAG_MS) == {1}
