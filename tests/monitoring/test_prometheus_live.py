"""A real Prometheus scrapes a live cluster (a real ZooKeeper, three real brokers with their
metrics ports), loads monitoring/prometheus/alerts.yml, and every alert expression and
every dashboard query evaluates over its HTTP API. Every metric an alert reads must have a
series: a rule naming a metric the broker does not export fails here, not in production.

The cluster gets a topic, records and a consumer group with committed offsets and no
members (``logctl group reset-offsets --execute``, then ``describe``), so the per-topic
and per-group series exist, and LogserverGroupWithoutMembers's selector must match that
group.

Prometheus runs from Debian's prometheus package, on a free loopback port, with its data in
the test's tmp dir; it is stopped by its PID.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.monitoring_files import (
    ALERTS,
    PROMETHEUS_METRICS,
    REPO_ROOT,
    SCRAPE_CONFIG,
    as_promql,
    dashboard_exprs,
    documented_metrics,
    exported_name,
    load_alert_rules,
    load_dashboard,
    metric_names,
)
from tests.support.broker_process import BrokerProcess
from tests.support.zookeeper_process import ZooKeeperProcess

pytestmark = pytest.mark.slow

BROKERS = 3
TOPIC = "monitored"
EMPTY_GROUP = "gone-consumers"
WAIT_S = 60.0
CLUSTER_FLAGS = (
    "--default-replication-factor", "3",
    "--min-insync-replicas", "2",
    "--num-partitions", "3",
    "--replica-fetch-wait-max-ms", "100",
    "--zookeeper-session-timeout-ms", "6000",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` and its answer."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout_s} s (last answer: {last!r})")


class PrometheusProcess:
    """``prometheus`` with monitoring/prometheus/prometheus.yml made to scrape ``targets``
    (job="logserver") and evaluate alerts.yml every second."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "prometheus.yml"
        # The repository's scrape config, every second, on these targets.
        config = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(ALERTS)]
        (job,) = config["scrape_configs"]
        job["static_configs"] = [{"targets": targets}]
        self.config.write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail(
                "prometheus not found: install Debian's prometheus package (scripts/test does)",
                pytrace=False,
            )
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for("prometheus ready", self._ready, timeout_s=30)

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            pytest.fail(f"prometheus exited with {self._process.returncode}:\n{self.output()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET ``/api/v1/PATH?PARAMS``; the JSON answer, whatever its status (400s included)."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return dict(json.load(answer))
        except urllib.error.HTTPError as error:
            return dict(json.load(error))

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def close(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)


def logctl(bootstrap: str, *args: str, input: bytes = b"", status: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "client.cli", "-b", bootstrap, *args],
        input=input,
        capture_output=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == status, (args, done.stdout, done.stderr)
    return done.stdout.decode()


@pytest.fixture(scope="module")
def brokers(
    zookeeper: ZooKeeperProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[BrokerProcess]]:
    root = tmp_path_factory.mktemp("brokers")
    connect = f"{zookeeper.address}/monitoring-{uuid.uuid4().hex[:12]}"
    started = [
        BrokerProcess(
            root / f"broker-{i}",
            flags=["--broker-id", str(i), *CLUSTER_FLAGS, "--metrics-port", str(free_port())],
            env={"ZOOKEEPER_CONNECT": connect},
        )
        for i in range(BROKERS)
    ]
    try:
        with concurrent.futures.ThreadPoolExecutor(BROKERS) as pool:
            list(pool.map(BrokerProcess.start, started))
        yield started
    finally:
        for broker in started:
            broker.close()
    for broker in started:
        assert broker.tracebacks() == [], broker.output(last=200)


@pytest.fixture(scope="module")
def prometheus(
    brokers: list[BrokerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    targets = [f"127.0.0.1:{_metrics_port(broker)}" for broker in brokers]
    server = PrometheusProcess(tmp_path_factory.mktemp("prometheus"), targets)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def scraped(brokers: list[BrokerProcess], prometheus: PrometheusProcess) -> PrometheusProcess:
    """Prometheus, once it scrapes every broker, and the cluster once it has a topic with
    records, a request refused (an error counted) and a group with offsets and no members."""
    up = wait_for("every broker target up", lambda: _targets_up(prometheus))
    assert len(up) == BROKERS, up
    bootstrap = ",".join(broker.address for broker in brokers)
    logctl(bootstrap, "topic", "create", TOPIC, "--partitions", "3", "--replication-factor", "3")
    logctl(bootstrap, "topic", "create", TOPIC, status=1)  # TOPIC_ALREADY_EXISTS
    records = "".join(f"record {i}\n" for i in range(300)).encode()
    logctl(bootstrap, "produce", TOPIC, input=records)
    logctl(
        bootstrap, "group", "reset-offsets", EMPTY_GROUP, "--topic", TOPIC, "--to-earliest",
        "--execute",
    )  # fmt: skip
    # The group metrics count only the groups the coordinator holds in memory, and its
    # sweep forgets an idle group whose offsets it has not read (a commit does not read
    # them), so without this read the group's series are there in some runs and not others.
    logctl(bootstrap, "group", "describe", EMPTY_GROUP)
    return prometheus


def _metrics_port(broker: BrokerProcess) -> str:
    return broker.flags[broker.flags.index("--metrics-port") + 1]


def _targets_up(prometheus: PrometheusProcess) -> list[str] | None:
    targets = prometheus.api("targets")["data"]["activeTargets"]
    health = [f"{t['scrapeUrl']}: {t['health']} {t['lastError']}" for t in targets]
    return None if any(t["health"] != "up" for t in targets) else health


def test_every_alert_evaluates_on_a_live_cluster(scraped: PrometheusProcess) -> None:
    documented = documented_metrics()
    rules = load_alert_rules()
    used = set().union(*(metric_names(rule["expr"]) for rule in rules))
    assert {exported_name(name, documented) for name in used} <= (
        documented.keys() | PROMETHEUS_METRICS
    )
    _wait_for_series(scraped, used, "alerts.yml")

    for rule in rules:
        answer = scraped.query(rule["expr"])
        assert answer["status"] == "success", (rule["alert"], answer)
        assert answer["data"]["resultType"] == "vector", rule["alert"]

    # The group left with offsets and no members is what LogserverGroupWithoutMembers counts.
    (empty_rule,) = [r for r in rules if r["alert"] == "LogserverGroupWithoutMembers"]
    assert scraped.query(empty_rule["expr"])["data"]["result"], "no Empty group counted"

    # Prometheus itself evaluates alerts.yml: no rule reports an error.
    def rules_evaluated() -> list[dict[str, Any]] | None:
        groups = scraped.api("rules")["data"]["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        done = len(loaded) == len(rules) and all(r["health"] != "unknown" for r in loaded)
        return loaded if done else None

    loaded = wait_for("alerts.yml evaluated by prometheus", rules_evaluated, timeout_s=20)
    errors = {rule["name"]: rule.get("lastError") for rule in loaded if rule["health"] != "ok"}
    assert errors == {}


def test_every_dashboard_query_evaluates_on_a_live_cluster(scraped: PrometheusProcess) -> None:
    documented = documented_metrics()
    queries = {
        where: as_promql(expr.replace('"$job"', '"logserver"').replace('"$group"', '".*"'))
        for where, expr in dashboard_exprs(load_dashboard()).items()
    }
    used = set().union(*(metric_names(query) for query in queries.values()))
    _wait_for_series(scraped, used, "the dashboard")
    for where, query in queries.items():
        answer = scraped.query(query)
        assert answer["status"] == "success", (where, query, answer)
    assert {exported_name(name, documented) for name in used} <= (
        documented.keys() | PROMETHEUS_METRICS
    )


def _wait_for_series(prometheus: PrometheusProcess, names: set[str], reader: str) -> None:
    """Wait until every metric in ``names`` has a series; fail naming those that have none."""
    deadline = time.monotonic() + WAIT_S
    while True:
        counts = {name: len(prometheus.query(name)["data"]["result"]) for name in sorted(names)}
        missing = [name for name, count in counts.items() if not count]
        if not missing:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"metrics read by {reader} that no broker exports: {missing}")
        time.sleep(0.5)
