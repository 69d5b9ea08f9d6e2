"""BrokerStateCollector: gauges read from a fake broker's state at scrape time."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from coordination import CommittedOffset, PartitionState, SessionState
from logserver.log.fsync_timing import FsyncTimes
from logserver.metrics import BrokerStateCollector
from tests.logserver.metrics.fake_broker import FakeBroker, a_group


def scrape(broker: FakeBroker, *, limit: int = 2000, fsyncs: FsyncTimes | None = None):
    registry = CollectorRegistry()
    collector = BrokerStateCollector(
        broker, partition_limit=limit, fsync_times=fsyncs or FsyncTimes()
    )  # type: ignore[arg-type]
    registry.register(collector)
    generate_latest(registry)  # the text format renders too
    return registry.get_sample_value


@pytest.fixture
def broker(tmp_path: Path) -> FakeBroker:
    return FakeBroker(tmp_path)


def test_replication_gauges_count_what_this_broker_leads(broker: FakeBroker) -> None:
    broker.host("a", 0)  # led, fully in sync
    broker.host("a", 1, isr=(1, 2))  # led, under-replicated
    broker.host("a", 2, isr=(1,))  # led, under min ISR too
    broker.host("a", 3, leader=2, isr=(2, 1))  # followed: not counted
    value = scrape(broker)
    assert value("logserver_leader_partitions") == 3
    assert value("logserver_under_replicated_partitions") == 2
    assert value("logserver_under_min_isr_partitions") == 1
    assert value("logserver_active_controller") == 0
    assert value("logserver_offline_partitions") == 0


def test_offline_partitions_and_elections_come_from_the_controller(broker: FakeBroker) -> None:
    broker.host("a", 0)
    broker.host("b", 0, replicas=(2, 3), leader=-1, isr=(2,))
    assert scrape(broker)("logserver_offline_partitions") == 0  # not the controller
    broker.controller.is_active = True
    broker.controller.elections.update(clean=2, unclean=1)
    value = scrape(broker)
    assert value("logserver_active_controller") == 1
    assert value("logserver_offline_partitions") == 1
    assert value("logserver_leader_elections_total", {"kind": "clean"}) == 2
    assert value("logserver_leader_elections_total", {"kind": "unclean"}) == 1
    assert value("logserver_leader_elections_total", {"kind": "preferred"}) == 0


def test_standalone_is_its_own_controller(tmp_path: Path) -> None:
    broker = FakeBroker(tmp_path, mode="standalone")
    broker.controller = None
    value = scrape(broker)
    assert value("logserver_active_controller") == 1
    assert value("logserver_zookeeper_session_state", {"state": "standalone"}) == 1
    assert value("logserver_zookeeper_session_state", {"state": "connected"}) == 0
    assert (
        value("logserver_broker_info", {"broker_id": "1", "version": "0.1.0", "mode": "standalone"})
        == 1
    )


def test_session_state_and_expirations(broker: FakeBroker) -> None:
    broker.coordinator.session_state = SessionState.SUSPENDED
    broker.coordinator.session_expirations = 3
    value = scrape(broker)
    assert value("logserver_zookeeper_session_state", {"state": "suspended"}) == 1
    assert value("logserver_zookeeper_session_state", {"state": "connected"}) == 0
    assert value("logserver_zookeeper_session_expirations_total") == 3


def test_log_gauges_per_partition_and_in_total(broker: FakeBroker) -> None:
    broker.host("a", 0, end=10)
    log = broker.host("a", 1, end=20)
    log.log_start_offset = 5
    value = scrape(broker)
    assert value("logserver_log_end_offset", {"topic": "a", "partition": "1"}) == 20
    assert value("logserver_log_start_offset", {"topic": "a", "partition": "1"}) == 5
    assert value("logserver_log_size_bytes", {"topic": "a", "partition": "0"}) == 1000
    assert value("logserver_log_size_bytes_total") == 3000
    log_dir = str(broker.logs.log_dirs[0])
    assert value("logserver_log_dir_free_bytes", {"log_dir": log_dir}) > 0
    assert value("logserver_log_dir_size_bytes", {"log_dir": log_dir}) > 0


def test_per_partition_series_stop_past_the_limit(broker: FakeBroker) -> None:
    for partition in range(5):
        broker.host("a", partition)
    group = a_group("g")
    broker.groups.groups.append(("g", group, {("a", 0): CommittedOffset(4)}))
    value = scrape(broker, limit=4)
    assert value("logserver_log_end_offset", {"topic": "a", "partition": "0"}) is None
    assert (
        value("logserver_group_lag_records", {"group": "g", "topic": "a", "partition": "0"}) is None
    )
    assert value("logserver_log_size_bytes_total") == 5000  # totals stay
    assert value("logserver_groups", {"state": group.state.value}) == 1
    assert (
        scrape(broker, limit=5)("logserver_log_end_offset", {"topic": "a", "partition": "0"}) == 10
    )


def test_group_gauges(broker: FakeBroker) -> None:
    broker.host("a", 0, end=10)
    group = a_group("g")
    broker.groups.groups.append(
        ("g", group, {("a", 0): CommittedOffset(4), ("x", 0): CommittedOffset(1)})
    )
    broker.groups.groups.append(("h", a_group("h"), {("a", 0): CommittedOffset(10)}))
    broker.groups.rebalances = 7
    value = scrape(broker)
    key = {"group": "g", "topic": "a", "partition": "0"}
    assert value("logserver_groups", {"state": group.state.value}) == 2
    assert value("logserver_group_members") == 0
    assert value("logserver_group_rebalances_total") == 7
    assert value("logserver_group_committed_offset", key) == 4
    assert value("logserver_group_lag_records", key) == 6
    assert value("logserver_group_lag_seconds", key) is None  # the fake log cannot tell
    caught_up = {"group": "h", "topic": "a", "partition": "0"}
    assert value("logserver_group_lag_records", caught_up) == 0
    assert value("logserver_group_lag_seconds", caught_up) == 0
    # not hosted here: the committed offset only
    assert (
        value("logserver_group_committed_offset", {"group": "g", "topic": "x", "partition": "0"})
        == 1
    )
    assert (
        value("logserver_group_lag_records", {"group": "g", "topic": "x", "partition": "0"}) is None
    )


def test_fsync_histogram(broker: FakeBroker) -> None:
    fsyncs = FsyncTimes()
    fsyncs.observe(0.0007)
    fsyncs.observe(0.2)
    value = scrape(broker, fsyncs=fsyncs)
    assert value("logserver_fsync_latency_seconds_bucket", {"le": "0.001"}) == 1
    assert value("logserver_fsync_latency_seconds_bucket", {"le": "+Inf"}) == 2
    assert value("logserver_fsync_latency_seconds_count") == 2
    assert value("logserver_fsync_latency_seconds_sum") == pytest.approx(0.2007)


def test_a_scrape_between_role_changes_sees_each_role_once(broker: FakeBroker) -> None:
    """A leader election moves partitions between roles; every scrape in between succeeds
    and counts each partition in exactly one role."""
    for partition in range(50):
        broker.host("a", partition)
    for epoch in range(2, 12):
        for partition in range(0, 50, 2):
            leader = 2 if epoch % 2 else 1
            broker.take_role("a", partition, PartitionState(leader, epoch, (leader,)))
            value = scrape(broker)
            leading = value("logserver_leader_partitions")
            assert leading == len(broker.replicas.leaders)
            assert leading + len(broker.replicas.followers) == 50
