"""docker-compose.yml, validated by docker-compose itself (no engine runs here) and read back.

``docker-compose config`` resolves the file (anchors, merges, relative paths)
the way ``up`` would; the tests read that resolved form with PyYAML. Every
broker's environment goes through the broker's own settings parser, and the
monitoring files it mounts must agree with it: Prometheus scrapes the brokers'
metrics ports, Grafana reads Prometheus and the dashboards where they are mounted.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import COMPOSE_FILE, REPO_ROOT, pyproject, settings_from_env

BROKERS = ("broker-0", "broker-1", "broker-2")


def docker_compose(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("docker-compose")
    if executable is None:
        pytest.fail("docker-compose is not installed (scripts/test installs Debian's)")
    return subprocess.run(
        [executable, "-f", str(COMPOSE_FILE), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = docker_compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """``{target: source}`` of a resolved service's volumes (short syntax)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def test_docker_compose_config_validates() -> None:
    result = docker_compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_the_services(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {"zookeeper", *BROKERS, "prometheus", "grafana"}
    assert services["zookeeper"]["image"] == "zookeeper:3.8"
    assert "healthcheck" in services["zookeeper"]
    version = pyproject()["project"]["version"]
    for name in BROKERS:
        assert services[name]["image"] == f"logserver:{version}"
        assert Path(services[name]["build"]["context"]) == REPO_ROOT
        assert services[name]["depends_on"] == {"zookeeper": {"condition": "service_healthy"}}


def test_each_broker_has_its_id_listeners_and_advertised_address(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    published = set()
    for broker_id, name in enumerate(BROKERS):
        service = services[name]
        settings = settings_from_env(service["environment"])
        assert settings.broker_id == broker_id
        assert settings.zookeeper_connect == "zookeeper:2181"
        (listener,) = settings.listeners
        (advertised,) = settings.advertised_listeners
        assert listener.host == "0.0.0.0"
        # The service name resolves on the compose network; the host reaches the same
        # name and port through the published port (docs/deployment.md).
        assert advertised.host == name
        assert advertised.port == listener.port
        (port,) = service["ports"]
        assert int(port["published"]) == int(port["target"]) == listener.port
        published.add(listener.port)
    assert len(published) == len(BROKERS)
    # logctl inside any broker container finds them all.
    for name in BROKERS:
        assert services[name]["environment"]["LOGSERVER_BROKERS"] == ",".join(
            f"{b}:{p}" for b, p in zip(BROKERS, sorted(published), strict=True)
        )


def test_each_broker_has_its_own_volume_at_its_log_dir(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    sources = []
    for name in BROKERS:
        settings = settings_from_env(services[name]["environment"])
        (log_dir,) = settings.log_dirs
        source = mounts(services[name])[str(log_dir)]
        assert source in resolved["volumes"]
        sources.append(source)
    assert len(set(sources)) == len(BROKERS)


def test_each_broker_serves_metrics_and_is_health_checked(resolved: dict[str, Any]) -> None:
    for name in BROKERS:
        service = resolved["services"][name]
        settings = settings_from_env(service["environment"])
        assert settings.metrics_port == 9404
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert f"http://127.0.0.1:{settings.metrics_port}/health" in test[3]


def test_prometheus_scrapes_every_broker_and_loads_the_alerts(resolved: dict[str, Any]) -> None:
    prometheus = resolved["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config_dir = Path(mounts(prometheus)["/etc/prometheus"])
    assert config_dir == REPO_ROOT / "monitoring" / "prometheus"
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (config_dir / rule_file).is_file(), rule_file
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    expected = set()
    for name in BROKERS:
        settings = settings_from_env(resolved["services"][name]["environment"])
        expected.add(f"{name}:{settings.metrics_port}")
    assert targets == expected


def test_grafana_is_provisioned_with_prometheus_and_the_dashboards(
    resolved: dict[str, Any],
) -> None:
    grafana = mounts(resolved["services"]["grafana"])
    provisioning = Path(grafana["/etc/grafana/provisioning"])
    assert provisioning == REPO_ROOT / "monitoring" / "grafana" / "provisioning"
    sources = [
        source
        for file in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(file.read_text())["datasources"]
    ]
    assert [source["url"] for source in sources] == ["http://prometheus:9090"]
    assert "9090:9090" in [
        f"{port['published']}:{port['target']}"
        for port in resolved["services"]["prometheus"]["ports"]
    ]
    providers = [
        provider
        for file in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(file.read_text())["providers"]
    ]
    (provider,) = providers
    dashboards = Path(grafana[provider["options"]["path"]])
    assert dashboards == REPO_ROOT / "monitoring" / "grafana" / "dashboards"
    assert list(dashboards.glob("*.json"))
