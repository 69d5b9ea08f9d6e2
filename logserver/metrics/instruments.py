"""The hot-path instruments: counters and histograms bumped while requests are served.

Each broker has its own ``CollectorRegistry`` (several brokers may share one
process in tests), never prometheus-client's global one. Labelled children
are bound once per API, acks value or topic and cached in plain dicts, so a
request costs a dict lookup and a few lock-protected increments (measured
with perf/producer_perf.py: within noise). ``NullMetrics`` has the same
methods doing nothing: a broker without ``metrics.port`` pays one call.

What is computed from broker state (gauges, the controller's and the groups'
counters) is not here but in ``collector.py``, read at scrape time.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from client.errors import error_class_for_code
from client.protocol import ApiKey

__all__ = ["BrokerMetrics", "NullMetrics"]

# Seconds: 0.5 ms to 30 s, long polls and acks=all waits included.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_ACKS = {0: "0", 1: "1", -1: "all"}
# Where an API's response carries per-topic or per-partition error codes:
# (field, rows nested per topic, column of the code), after docs/protocol.md.
_ROW_ERRORS: dict[int, tuple[str, bool, int]] = {
    ApiKey.PRODUCE: ("topics", True, 1),
    ApiKey.FETCH: ("topics", True, 1),
    ApiKey.LIST_OFFSETS: ("topics", True, 1),
    ApiKey.OFFSETS_FOR_LEADER_EPOCH: ("topics", True, 1),
    ApiKey.OFFSET_COMMIT: ("topics", True, 1),
    ApiKey.OFFSET_FETCH: ("topics", True, 3),
    ApiKey.CREATE_TOPICS: ("topics", False, 1),
    ApiKey.DELETE_TOPICS: ("topics", False, 1),
    ApiKey.DELETE_GROUPS: ("results", False, 1),
    ApiKey.ELECT_LEADERS: ("results", False, 2),
}
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)


class NullMetrics:
    """What a broker without ``metrics.port`` records: nothing."""

    enabled = False

    def request(self, api_key: int, body: dict[str, Any], started: float, answer: Any) -> None:
        pass

    def appended(self, topic: str, size: int, records: int) -> None:
        pass

    def isr_changed(self, old: frozenset[int], new: frozenset[int]) -> None:
        pass

    def forget_topic(self, topic: str) -> None:
        pass


class BrokerMetrics(NullMetrics):
    """The per-broker registry and the instruments the request path feeds."""

    enabled = True

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.bytes_in = Counter(
            "logserver_bytes_in", "bytes appended by produce requests", ["topic"], registry=r
        )
        self.bytes_out = Counter(
            "logserver_bytes_out", "bytes served by fetches", ["topic"], registry=r
        )
        self.records_in = Counter("logserver_records_in", "records appended", ["topic"], registry=r)
        self.requests = Counter("logserver_requests", "requests handled", ["api"], registry=r)
        self.request_errors = Counter(
            "logserver_request_errors",
            "responses carrying an error code, by error name",
            ["api", "error"],
            registry=r,
        )
        self.request_latency = Histogram(
            "logserver_request_latency_seconds",
            "from the request's dispatch to its response",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.produce_latency = Histogram(
            "logserver_produce_latency_seconds",
            "produce requests, by acks",
            ["acks"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fetch_latency = Histogram(
            "logserver_fetch_latency_seconds",
            "fetch requests, long polls included",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.isr_shrinks = Counter(
            "logserver_isr_shrinks", "ISR shrinks made as leader", registry=r
        )
        self.isr_expands = Counter(
            "logserver_isr_expands", "ISR expansions made as leader", registry=r
        )
        self._per_api: dict[int, tuple[str, Any, Any]] = {}
        self._per_topic: dict[str, tuple[Any, Any, Any]] = {}
        self._errors: dict[tuple[str, int], Any] = {}
        self._by_acks = {acks: self.produce_latency.labels(name) for acks, name in _ACKS.items()}
        self._consumer_fetch = self.fetch_latency.labels("consumer")
        self._follower_fetch = self.fetch_latency.labels("follower")

    # -- the request path ------------------------------------------------------------

    def request(self, api_key: int, body: dict[str, Any], started: float, answer: Any) -> None:
        """One request answered (``answer``: a Response, or None when none is sent)."""
        elapsed = time.perf_counter() - started
        bound = self._per_api.get(api_key)
        if bound is None:
            bound = self._bind_api(api_key)
        name, count, latency = bound
        count.inc()
        latency.observe(elapsed)
        reply = getattr(answer, "body", None)
        if api_key == _PRODUCE:
            by_acks = self._by_acks.get(body.get("acks"))  # type: ignore[call-overload]
            if by_acks is not None:
                by_acks.observe(elapsed)
        elif api_key == _FETCH:
            replica_id = body.get("replica_id", -1)
            follower = type(replica_id) is int and replica_id >= 0
            (self._follower_fetch if follower else self._consumer_fetch).observe(elapsed)
            if reply is not None:
                self._fetched(reply)
        if reply is not None:
            self._count_errors(name, api_key, reply)

    def appended(self, topic: str, size: int, records: int) -> None:
        bound = self._per_topic.get(topic)
        if bound is None:
            bound = self._bind_topic(topic)
        bound[0].inc(size)
        bound[2].inc(records)

    def isr_changed(self, old: frozenset[int], new: frozenset[int]) -> None:
        if old - new:
            self.isr_shrinks.inc()
        if new - old:
            self.isr_expands.inc()

    # -- helpers ---------------------------------------------------------------------

    def _fetched(self, reply: dict[str, Any]) -> None:
        for topic, partitions in reply.get("topics") or ():
            size = sum(row[4] for row in partitions)
            if size:
                bound = self._per_topic.get(topic)
                if bound is None:
                    bound = self._bind_topic(topic)
                bound[1].inc(size)

    def _count_errors(self, name: str, api_key: int, reply: dict[str, Any]) -> None:
        code = reply.get("error")
        if code:
            self._error(name, code)
        where = _ROW_ERRORS.get(api_key)
        if where is None:
            return
        field, nested, column = where
        for item in reply.get(field) or ():
            for row in item[1] if nested else (item,):
                if row[column]:
                    self._error(name, row[column])

    def _error(self, api: str, code: int) -> None:
        child = self._errors.get((api, code))
        if child is None:
            child = self.request_errors.labels(api, error_class_for_code(code).name)
            self._errors[(api, code)] = child
        child.inc()

    def _bind_api(self, api_key: int) -> tuple[str, Any, Any]:
        try:
            name = ApiKey(api_key).name
        except ValueError:
            name = "UNKNOWN"
        bound = (name, self.requests.labels(name), self.request_latency.labels(name))
        self._per_api[api_key] = bound
        return bound

    def _bind_topic(self, topic: str) -> tuple[Any, Any, Any]:
        bound = (
            self.bytes_in.labels(topic),
            self.bytes_out.labels(topic),
            self.records_in.labels(topic),
        )
        self._per_topic[topic] = bound
        return bound

    def forget_topic(self, topic: str) -> None:
        """A deleted topic's series go, so churn of topics cannot grow the scrape."""
        if self._per_topic.pop(topic, None) is not None:
            for counter in (self.bytes_in, self.bytes_out, self.records_in):
                counter.remove(topic)
