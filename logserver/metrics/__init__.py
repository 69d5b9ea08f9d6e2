"""Prometheus metrics, health and readiness for one broker (docs/metrics.md).

``instruments``: counters and histograms fed by the request path;
``collector``: gauges read from broker state at scrape time; ``readiness``:
what ``/ready`` answers; ``server``: the HTTP port serving all three.
"""

from logserver.metrics.collector import BrokerStateCollector
from logserver.metrics.instruments import BrokerMetrics, NullMetrics
from logserver.metrics.readiness import not_ready_reason
from logserver.metrics.server import MetricsServer

__all__ = [
    "BrokerMetrics",
    "BrokerStateCollector",
    "MetricsServer",
    "NullMetrics",
    "not_ready_reason",
]
