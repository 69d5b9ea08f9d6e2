"""Gauges (and state-held counters) read from the broker when a scrape comes.

``BrokerStateCollector.collect`` walks the replica manager, the partition
states, the log manager, the controller and the group coordinator. It must
run on the broker's event loop (``server.py`` calls it there): those dicts
are changed by the loop only, so on the loop a scrape sees one consistent
moment and needs no lock, and a role change (a leader election) cannot
happen half-way through it.

Per-partition series (log size and offsets, group offsets and lag) are
exported only while the broker hosts at most ``partition_limit``
partitions; beyond it only the totals are, so the scrape stays bounded.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from client.record import HEADER_SIZE, read_header
from logserver.log.fsync_timing import FSYNC_TIMES, FsyncTimes
from logserver.metrics.exposition import Rows, label_text

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["SESSION_STATES", "BrokerStateCollector"]

log = logging.getLogger(__name__)

SESSION_STATES = ("connected", "suspended", "lost", "standalone")
ELECTION_KINDS = ("clean", "unclean", "preferred")
VERSION = "0.1.0"
_HEADER_READS_PER_SCRAPE = 200  # lag in seconds reads one batch header per new offset
_TP = ("topic", "partition")
_GTP = ("group", "topic", "partition")


class BrokerStateCollector(Collector):
    def __init__(
        self, broker: Broker, *, partition_limit: int, fsync_times: FsyncTimes = FSYNC_TIMES
    ) -> None:
        self._broker = broker
        self.partition_limit = partition_limit
        self._fsync_times = fsync_times
        # (group, topic, partition) -> (committed offset, first timestamp after it): read
        # once per committed offset, not on every scrape; only this scrape's keys are kept.
        self._first_times: dict[tuple[str, str, int], tuple[int, int | None]] = {}
        self._labels: dict[tuple[str, ...], str] = {}  # label values -> rendered text
        self._known_labels: dict[tuple[str, ...], str] = {}

    def collect(self) -> Iterator[Metric]:
        broker = self._broker
        logs = broker.logs.partitions()
        detailed = len(logs) <= self.partition_limit
        self._known_labels, self._labels = self._labels, {}
        yield from self._info()
        yield from self._replication()
        yield from self._logs(logs, detailed)
        yield from self._disks()
        yield from self._fsyncs()
        yield from self._session()
        yield from self._groups(logs, detailed)

    def _label_text(self, names: tuple[str, ...], values: tuple[str, ...]) -> str:
        text = self._known_labels.get(values)
        if text is None:
            text = label_text(names, values)
        self._labels[values] = text
        return text

    # -- families ------------------------------------------------------------------------

    def _info(self) -> Iterator[Metric]:
        broker = self._broker
        info = GaugeMetricFamily(
            "logserver_broker_info", "always 1", labels=["broker_id", "version", "mode"]
        )
        info.add_metric([str(broker.broker_id), VERSION, broker.coordinator.mode], 1)
        yield info

    def _replication(self) -> Iterator[Metric]:
        broker = self._broker
        leaders = broker.replicas.leaders
        under = under_min = 0
        for (topic, _), leader in leaders.items():
            if len(leader.isr) < len(leader.replicas):
                under += 1
            if len(leader.isr) < broker.min_insync_replicas(topic):
                under_min += 1
        controller = broker.controller
        active = broker.coordinator.mode == "standalone" or bool(
            controller is not None and controller.is_active
        )
        offline = 0
        if active:
            offline = sum(1 for s in broker.partition_states.values() if s.leader < 0)
        yield _gauge("logserver_under_replicated_partitions", "led, ISR < replicas", under)
        yield _gauge("logserver_under_min_isr_partitions", "led, ISR < min.insync", under_min)
        yield _gauge("logserver_offline_partitions", "partitions without a leader", offline)
        yield _gauge("logserver_active_controller", "1 on the controller", int(active))
        yield _gauge("logserver_leader_partitions", "partitions led here", len(leaders))
        elections = CounterMetricFamily(
            "logserver_leader_elections", "elections made as controller", labels=["kind"]
        )
        made = getattr(controller, "elections", None) or {}
        for kind in ELECTION_KINDS:
            elections.add_metric([kind], made.get(kind, 0))
        yield elections

    def _logs(self, logs: dict[tuple[str, int], Any], detailed: bool) -> Iterator[Metric]:
        size = Rows("logserver_log_size_bytes", "bytes on disk", "gauge", _TP)
        start = Rows("logserver_log_start_offset", "log start offset", "gauge", _TP)
        end = Rows("logserver_log_end_offset", "log end offset", "gauge", _TP)
        total = 0
        for (topic, partition), partition_log in logs.items():
            bytes_ = partition_log.size_bytes
            total += bytes_
            if detailed:
                key = (topic, str(partition))
                text = self._label_text(_TP, key)
                size.add(text, key, bytes_)
                start.add(text, key, partition_log.log_start_offset)
                end.add(text, key, partition_log.log_end_offset)
        yield size
        yield start
        yield end
        yield _gauge("logserver_log_size_bytes_total", "bytes of every hosted partition", total)

    def _disks(self) -> Iterator[Metric]:
        free = GaugeMetricFamily(
            "logserver_log_dir_free_bytes", "free bytes of the log dir", labels=["log_dir"]
        )
        size = GaugeMetricFamily(
            "logserver_log_dir_size_bytes", "bytes of the log dir", labels=["log_dir"]
        )
        for log_dir in self._broker.logs.log_dirs:
            try:
                usage = shutil.disk_usage(log_dir)
            except OSError as exc:
                log.debug("%s: no disk usage: %s", log_dir, exc)
                continue
            free.add_metric([str(log_dir)], usage.free)
            size.add_metric([str(log_dir)], usage.total)
        yield free
        yield size

    def _fsyncs(self) -> Iterator[Metric]:
        buckets, total = self._fsync_times.snapshot()
        yield HistogramMetricFamily(
            "logserver_fsync_latency_seconds",
            "each fsync of a segment with its indexes",
            buckets=buckets,
            sum_value=total,
        )

    def _session(self) -> Iterator[Metric]:
        coordinator = self._broker.coordinator
        if coordinator.mode == "standalone":
            current = "standalone"
        else:
            current = str(getattr(coordinator.session_state, "value", "")).lower()
        state = GaugeMetricFamily(
            "logserver_zookeeper_session_state", "1 for the current state", labels=["state"]
        )
        for name in SESSION_STATES:
            state.add_metric([name], int(name == current))
        yield state
        yield CounterMetricFamily(
            "logserver_zookeeper_session_expirations",
            "sessions lost",
            value=getattr(coordinator, "session_expirations", 0),
        )

    def _groups(self, logs: dict[tuple[str, int], Any], detailed: bool) -> Iterator[Metric]:
        groups = self._broker.groups
        by_state: dict[str, int] = {}
        members = 0
        committed = Rows("logserver_group_committed_offset", "last committed offset", "gauge", _GTP)
        lag = Rows("logserver_group_lag_records", "records behind", "gauge", _GTP)
        lag_s = Rows("logserver_group_lag_seconds", "seconds behind", "gauge", _GTP)
        now_ms = int(time.time() * 1000)
        known, self._first_times = self._first_times, {}
        reads_left = _HEADER_READS_PER_SCRAPE
        for group_id, group, offsets in groups.snapshot():
            by_state[group.state.value] = by_state.get(group.state.value, 0) + 1
            members += len(group.members)
            if not detailed:
                continue
            for (topic, partition), stored in (offsets or {}).items():
                key = (group_id, topic, str(partition))
                text = self._label_text(_GTP, key)
                committed.add(text, key, stored.offset)
                partition_log = logs.get((topic, partition))
                if partition_log is None:
                    continue
                behind = max(0, partition_log.log_end_offset - stored.offset)
                lag.add(text, key, behind)
                if not behind:
                    lag_s.add(text, key, 0)
                    continue
                cache_key = (group_id, topic, partition)
                cached = known.get(cache_key)
                if cached is None or cached[0] != stored.offset:
                    if not reads_left:
                        continue  # bounded per scrape: the next scrapes fill the rest in
                    reads_left -= 1
                    cached = (stored.offset, _first_timestamp(partition_log, stored.offset))
                self._first_times[cache_key] = cached
                if cached[1] is not None:
                    lag_s.add(text, key, max(0.0, (now_ms - cached[1]) / 1000))
        state_family = GaugeMetricFamily("logserver_groups", "groups by state", labels=["state"])
        for name, count in sorted(by_state.items()):
            state_family.add_metric([name], count)
        yield state_family
        yield _gauge("logserver_group_members", "members of the groups coordinated", members)
        yield CounterMetricFamily(
            "logserver_group_rebalances", "generations completed", value=groups.rebalances
        )
        yield committed
        yield lag
        yield lag_s


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _first_timestamp(partition_log: Any, offset: int) -> int | None:
    """The first timestamp of the batch holding ``offset`` (or the first after it), in ms:
    one header read from the page cache. None when unreadable (deleted meanwhile)."""
    try:
        piece = partition_log.read(max(offset, partition_log.log_start_offset), 1)
        if piece is None:
            return None
        header = read_header(os.pread(piece.file.fileno(), HEADER_SIZE, piece.position))
    except Exception:  # noqa: BLE001 - a scrape must not fail on one partition
        return None
    return int(header.first_timestamp)
