"""BrokerMetrics: what one answered request adds to the counters and histograms."""

from __future__ import annotations

import time

from client.errors import NotLeaderOrFollowerError, UnknownTopicOrPartitionError
from client.protocol import ApiKey
from logserver.metrics import BrokerMetrics, NullMetrics
from logserver.network.response import Response


def test_a_request_counts_and_times_by_api() -> None:
    metrics = BrokerMetrics()
    value = metrics.registry.get_sample_value
    metrics.request(ApiKey.METADATA, {}, time.perf_counter(), Response({"error": 0}))
    metrics.request(ApiKey.METADATA, {}, time.perf_counter(), Response({"error": 0}))
    assert value("logserver_requests_total", {"api": "METADATA"}) == 2
    assert value("logserver_request_latency_seconds_count", {"api": "METADATA"}) == 2
    assert value("logserver_request_errors_total", {"api": "METADATA", "error": "NONE"}) is None


def test_errors_top_level_and_per_partition_are_counted_by_name() -> None:
    metrics = BrokerMetrics()
    value = metrics.registry.get_sample_value
    metrics.request(ApiKey.CREATE_TOPICS, {}, time.perf_counter(), Response({"error": 3}))
    produce = {
        "topics": [["t", [[0, 0, 5, 0, None], [1, NotLeaderOrFollowerError.code, -1, 0, "x"]]]]
    }
    metrics.request(ApiKey.PRODUCE, {"acks": -1}, time.perf_counter(), Response(produce))
    name = UnknownTopicOrPartitionError.name
    assert value("logserver_request_errors_total", {"api": "CREATE_TOPICS", "error": name}) == 1
    labels = {"api": "PRODUCE", "error": NotLeaderOrFollowerError.name}
    assert value("logserver_request_errors_total", labels) == 1
    assert value("logserver_produce_latency_seconds_count", {"acks": "all"}) == 1


def test_fetches_count_bytes_out_by_topic_and_kind() -> None:
    metrics = BrokerMetrics()
    value = metrics.registry.get_sample_value
    reply = {
        "topics": [
            ["t", [[0, 0, 9, 0, 300, None], [1, 0, 9, 0, 200, None]]],
            ["u", [[0, 0, 0, 0, 0, None]]],
        ]
    }
    metrics.request(ApiKey.FETCH, {"replica_id": -1}, time.perf_counter(), Response(reply))
    metrics.request(ApiKey.FETCH, {"replica_id": 2}, time.perf_counter(), Response(reply))
    assert value("logserver_bytes_out_total", {"topic": "t"}) == 1000
    assert value("logserver_bytes_out_total", {"topic": "u"}) is None
    assert value("logserver_fetch_latency_seconds_count", {"kind": "consumer"}) == 1
    assert value("logserver_fetch_latency_seconds_count", {"kind": "follower"}) == 1


def test_acks_0_has_no_response_but_is_timed() -> None:
    metrics = BrokerMetrics()
    metrics.request(ApiKey.PRODUCE, {"acks": 0}, time.perf_counter(), None)
    value = metrics.registry.get_sample_value
    assert value("logserver_produce_latency_seconds_count", {"acks": "0"}) == 1
    assert value("logserver_requests_total", {"api": "PRODUCE"}) == 1


def test_appends_isr_changes_and_deleted_topics() -> None:
    metrics = BrokerMetrics()
    value = metrics.registry.get_sample_value
    metrics.appended("t", 1000, 10)
    metrics.appended("t", 500, 5)
    assert value("logserver_bytes_in_total", {"topic": "t"}) == 1500
    assert value("logserver_records_in_total", {"topic": "t"}) == 15
    metrics.isr_changed(frozenset({1, 2, 3}), frozenset({1, 2}))
    metrics.isr_changed(frozenset({1, 2}), frozenset({1, 2, 3}))
    metrics.isr_changed(frozenset({1, 2}), frozenset({1, 3}))  # both at once
    assert value("logserver_isr_shrinks_total") == 2
    assert value("logserver_isr_expands_total") == 2
    metrics.forget_topic("t")
    assert value("logserver_bytes_in_total", {"topic": "t"}) is None


def test_null_metrics_take_the_same_calls() -> None:
    null = NullMetrics()
    null.request(ApiKey.PRODUCE, {}, 0.0, None)
    null.appended("t", 1, 1)
    null.isr_changed(frozenset(), frozenset({1}))
    null.forget_topic("t")
    assert not null.enabled
