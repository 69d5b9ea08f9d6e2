"""exposition.render: the same samples as prometheus-client's own text rendering."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coordination import CommittedOffset
from logserver.log.fsync_timing import FsyncTimes
from logserver.metrics import BrokerStateCollector
from logserver.metrics.exposition import render
from tests.logserver.metrics.fake_broker import FakeBroker, a_group


def parsed(text: str) -> dict[str, tuple[str, set[tuple[str, tuple[tuple[str, str], ...], float]]]]:
    return {
        f.name: (f.type, {(s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples})
        for f in text_string_to_metric_families(text)
    }


def test_render_matches_generate_latest(tmp_path: Path) -> None:
    broker = FakeBroker(tmp_path)
    for partition in range(3):
        broker.host("a.b-c_d", partition)
    odd = 'a "quoted"\\group\nwith newline'
    broker.groups.groups.append((odd, a_group(odd), {("a.b-c_d", 0): CommittedOffset(3)}))
    fsyncs = FsyncTimes()
    fsyncs.observe(0.003)
    collector = BrokerStateCollector(broker, partition_limit=10, fsync_times=fsyncs)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    registry.register(collector)
    ours = render(collector.collect()).decode()
    assert parsed(ours) == parsed(generate_latest(registry).decode())
    assert 'group="a \\"quoted\\"\\\\group\\nwith newline"' in ours
