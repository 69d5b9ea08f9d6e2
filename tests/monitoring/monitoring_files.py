"""The monitoring files (monitoring/), the metric names documented in docs/metrics.md, the
metric names a PromQL expression reads, and ``promtool`` from Debian's prometheus package.

Metric names are read from an expression by removing what is not one (strings, label
matchers, range and subquery brackets, label lists after ``by``/``without``/``on``/
``ignoring``/``group_left``/``group_right``, function names, keywords and numbers). That
is enough for the expressions of this repository; ``promtool check rules`` parses them for
real.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MONITORING = REPO_ROOT / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "logserver.json"
METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"

# Metrics Prometheus makes itself for every target, not exported by the broker.
PROMETHEUS_METRICS = frozenset({"up"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"}
    | {"by", "without", "on", "ignoring", "group_left", "group_right"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_DOC_ROW = re.compile(r"^\|\s*`(logserver_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|")


def promtool(*args: str | Path, cwd: Path = PROMETHEUS_DIR) -> str:
    """Run ``promtool ARGS`` in ``cwd``; fail the test with its output unless it exits 0."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package (scripts/test does)",
            pytrace=False,
        )
    done = subprocess.run(
        [binary, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"promtool {' '.join(map(str, args))} exited {done.returncode}:\n{output}")
    return output


def documented_metrics() -> dict[str, str]:
    """``{name: type}`` for every row of docs/metrics.md's table."""
    found = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        row = _DOC_ROW.match(line)
        if row:
            found[row.group(1)] = row.group(2)
    return found


def exported_name(name: str, documented: dict[str, str]) -> str:
    """The documented metric a series name belongs to: a histogram's ``_bucket``, ``_sum``
    and ``_count`` series belong to the histogram; any other name is itself."""
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and documented.get(base) == "histogram":
            return base
    return name


def metric_names(expr: str) -> set[str]:
    """The metric (series) names a PromQL expression selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word in _KEYWORDS:
            continue
        if match.start() > 0 and (
            text[match.start() - 1].isdigit() or text[match.start() - 1] == "."
        ):
            continue  # a unit or exponent: 5m, 1e3
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        names.add(word)
    return names


def load_alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml, over all its groups."""
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included (collapsed rows keep theirs inside)."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_exprs(dashboard: dict[str, Any]) -> dict[str, str]:
    """``{"panel title / refId": expr}`` for every query of every panel."""
    exprs = {}
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            exprs[f"{panel['title']} / {target['refId']}"] = target["expr"]
    return exprs


def as_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced by what Prometheus accepts."""
    text = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", r"\1", text)
