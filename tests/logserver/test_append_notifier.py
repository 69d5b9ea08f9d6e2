"""AppendNotifier: long-polling fetches wake at the next append to a partition they watch."""

from __future__ import annotations

import asyncio

from logserver.append_notifier import AppendNotifier


async def test_notify_resolves_a_waiter_on_that_partition():
    notifier = AppendNotifier()
    woken = notifier.register([("orders", 0)])
    assert not woken.done()
    notifier.notify(("orders", 0))
    assert woken.done()
    assert await woken is None


async def test_a_waiter_on_several_partitions_wakes_on_any_of_them():
    notifier = AppendNotifier()
    tps = [("orders", 0), ("orders", 1), ("clicks", 0)]
    woken = notifier.register(tps)
    notifier.notify(("clicks", 0))
    assert woken.done()
    notifier.notify(("orders", 1))  # already woken: no InvalidStateError
    notifier.unregister(woken, tps)
    assert notifier._waiters == {}


async def test_other_partitions_do_not_wake_a_waiter():
    notifier = AppendNotifier()
    woken = notifier.register([("orders", 0)])
    notifier.notify(("orders", 1))
    notifier.notify(("other", 0))
    assert not woken.done()


async def test_every_waiter_on_a_partition_wakes():
    notifier = AppendNotifier()
    waiters = [notifier.register([("orders", 0)]) for _ in range(5)]
    notifier.notify(("orders", 0))
    assert all(w.done() for w in waiters)


async def test_a_notification_wakes_only_current_waiters():
    notifier = AppendNotifier()
    first = notifier.register([("orders", 0)])
    notifier.notify(("orders", 0))
    second = notifier.register([("orders", 0)])
    assert first.done()
    assert not second.done()  # registered after the append: waits for the next one
    notifier.notify(("orders", 0))
    assert second.done()


async def test_notify_with_nobody_waiting_is_harmless():
    notifier = AppendNotifier()
    notifier.notify(("orders", 0))
    notifier.notify_topic("orders")
    assert notifier._waiters == {}


async def test_unregister_stops_the_wake_up_and_forgets_the_partition():
    notifier = AppendNotifier()
    tps = [("orders", 0), ("orders", 1)]
    woken = notifier.register(tps)
    other = notifier.register([("orders", 0)])
    notifier.unregister(woken, tps)
    assert set(notifier._waiters) == {("orders", 0)}  # ("orders", 1) had only ``woken``
    notifier.notify(("orders", 0))
    notifier.notify(("orders", 1))
    assert not woken.done()
    assert other.done()
    notifier.unregister(other, [("orders", 0)])
    assert notifier._waiters == {}


async def test_unregister_twice_or_unknown_is_harmless():
    notifier = AppendNotifier()
    woken = notifier.register([("orders", 0)])
    notifier.unregister(woken, [("orders", 0)])
    notifier.unregister(woken, [("orders", 0), ("never", 9)])
    assert notifier._waiters == {}


async def test_a_cancelled_waiter_is_skipped():
    notifier = AppendNotifier()
    cancelled = notifier.register([("orders", 0)])
    live = notifier.register([("orders", 0)])
    cancelled.cancel()
    notifier.notify(("orders", 0))
    assert cancelled.cancelled()
    assert live.done()
    assert not live.cancelled()


async def test_notify_topic_wakes_every_partition_of_that_topic_only():
    notifier = AppendNotifier()
    orders = [notifier.register([("orders", p)]) for p in range(3)]
    clicks = notifier.register([("clicks", 0)])
    prefixed = notifier.register([("orders-eu", 0)])
    notifier.notify_topic("orders")
    assert all(w.done() for w in orders)
    assert not clicks.done()
    assert not prefixed.done()


async def test_a_long_poll_wakes_early_on_append_or_times_out():
    """How the fetch handler uses it: wait_for the future, unregister in finally."""
    notifier = AppendNotifier()
    loop = asyncio.get_running_loop()
    tps = [("orders", 0)]

    async def long_poll(max_wait_s: float) -> bool:
        woken = notifier.register(tps)
        try:
            await asyncio.wait_for(woken, max_wait_s)
            return True
        except TimeoutError:
            return False
        finally:
            notifier.unregister(woken, tps)

    started = loop.time()
    poll = asyncio.ensure_future(long_poll(5.0))
    await asyncio.sleep(0.01)
    notifier.notify(("orders", 0))
    assert await poll is True
    assert loop.time() - started < 1.0

    assert await long_poll(0.02) is False
    assert notifier._waiters == {}  # nothing left behind either way


async def test_futures_belong_to_the_running_loop():
    notifier = AppendNotifier()
    woken = notifier.register([("orders", 0)])
    assert woken.get_loop() is asyncio.get_running_loop()
    notifier.unregister(woken, [("orders", 0)])
