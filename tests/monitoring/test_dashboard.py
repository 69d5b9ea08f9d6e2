"""monitoring/grafana/: the dashboard is valid JSON in Grafana's schema, has the rows issue
6 asks for, every query parses (``promtool check rules`` on the queries written as
recording rules) and reads only metrics that docs/metrics.md documents."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.monitoring.monitoring_files import (
    MONITORING,
    PROMETHEUS_METRICS,
    as_promql,
    dashboard_exprs,
    dashboard_panels,
    documented_metrics,
    exported_name,
    load_dashboard,
    metric_names,
    promtool,
)

ROWS = ["Cluster overview", "Throughput", "Latency", "Replication health", "Consumer groups"]
PROVISIONING = MONITORING / "grafana" / "provisioning"


def test_dashboard_is_schema_38_with_a_prometheus_datasource_variable() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] == 38
    assert dashboard["uid"] == "logserver-overview"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard_panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_has_the_rows_in_order_and_panels_do_not_overlap() -> None:
    panels = dashboard_panels(load_dashboard())
    assert [p["title"] for p in panels if p["type"] == "row"] == ROWS
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    exprs = " ".join(dashboard_exprs(load_dashboard()).values())
    for needed in [
        "up{",
        "logserver_active_controller",
        "logserver_leader_partitions",
        "logserver_offline_partitions",
        "logserver_under_replicated_partitions",
        "logserver_bytes_in_total",
        "logserver_bytes_out_total",
        "logserver_records_in_total",
        "histogram_quantile(0.5, sum by (api, le) (rate(logserver_request_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (api, le) (rate(logserver_request_latency_seconds_bucket",
        "logserver_produce_latency_seconds_bucket",
        "logserver_fetch_latency_seconds_bucket",
        "logserver_isr_shrinks_total",
        "logserver_isr_expands_total",
        "logserver_under_min_isr_partitions",
        "logserver_leader_elections_total",
        "logserver_group_lag_records",
        "logserver_group_lag_seconds",
    ]:
        assert needed in exprs, needed


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    exprs = dashboard_exprs(load_dashboard())
    rules = [
        {"record": f"dashboard:query_{i}", "expr": as_promql(expr)}
        for i, expr in enumerate(exprs.values())
    ]
    rules_file = tmp_path / "dashboard_queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = promtool("check", "rules", rules_file, cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in output


def test_dashboard_reads_only_documented_metrics() -> None:
    dashboard = load_dashboard()
    documented = documented_metrics()
    queries = dict(dashboard_exprs(dashboard))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["query"]["query"])
            assert inner, variable["name"]
            queries[f"variable {variable['name']}"] = inner.group(1)
    for where, expr in queries.items():
        names = {exported_name(name, documented) for name in metric_names(expr)}
        assert names, where
        unknown = names - documented.keys() - PROMETHEUS_METRICS
        assert not unknown, f"{where} reads metrics not in docs/metrics.md: {unknown}"


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "logserver.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
