"""A malformed setting in the ConfigMap or the environment: the broker refuses to start.

The real ``logserver`` console script runs with the environment a broker pod
gets from k8s/ (the ConfigMap, then BROKER_ID and ADVERTISED_LISTENERS), or a
broker of docker-compose.yml, with one value broken. It must exit 2 at once,
write nothing to its log dir, and say in one line which setting, where it came
from, the value, and what is allowed: as a JSON object when the ConfigMap asks
for JSON logs (what ``kubectl logs`` shows), as text otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from logserver.config import CONFIG_ENV, SETTINGS
from tests.deploy.support import COMPOSE_FILE, K8S_DIR, settings_from_env

LOGSERVER = Path(sys.executable).with_name("logserver")


def config_map() -> dict[str, str]:
    for document in yaml.safe_load_all((K8S_DIR / "20-broker-config.yaml").read_text()):
        if document["kind"] == "ConfigMap":
            return dict(document["data"])
    raise AssertionError("no ConfigMap in k8s/20-broker-config.yaml")


def pod_env(tmp_path: Path) -> dict[str, str]:
    """Broker 1's pod environment (tests/deploy/test_k8s.py checks how it is built)."""
    return {
        **config_map(),
        "BROKER_ID": "1",
        "ADVERTISED_LISTENERS": "PLAINTEXT://broker-1.broker-headless.logserver.svc.cluster.local:9092",
        "LOG_DIRS": str(tmp_path / "data"),
    }


def compose_env(tmp_path: Path) -> dict[str, str]:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    environment: dict[str, Any] = services["broker-1"]["environment"]  # merged by PyYAML
    return {**{k: str(v) for k, v in environment.items()}, "LOG_DIRS": str(tmp_path / "data")}


def start(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only PATH and the deployment's variables: no setting leaks in from this process.
    settings_env = {s.env for s in SETTINGS} | {CONFIG_ENV}
    inherited = {k: v for k, v in os.environ.items() if k not in settings_env}
    return subprocess.run(
        [str(LOGSERVER)],
        env={**inherited, **environ},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def refusal(result: subprocess.CompletedProcess[str], *, json_logs: bool) -> str:
    """The one line a refused start writes, as its message."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip()
    if not json_logs:
        assert line.startswith("logserver: [INVALID_CONFIG] "), line
        return line.removeprefix("logserver: ")
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert record["logger"] == "logserver"
    return record["message"]


def test_the_deployments_settings_are_valid(tmp_path: Path) -> None:
    assert settings_from_env(pod_env(tmp_path)).broker_id == 1
    assert settings_from_env(compose_env(tmp_path)).broker_id == 1


BAD = [
    (
        "LOG_SEGMENT_BYTES",
        "abc",
        "log.segment.bytes='abc' (env LOG_SEGMENT_BYTES): "
        "not an integer; must be between 14 and 2147483647",
    ),
    (
        "NUM_PARTITIONS",
        "-1",
        "num.partitions='-1' (env NUM_PARTITIONS): must be between 1 and 2147483647",
    ),
    (
        "METRICS_PORT",
        "metrics",
        "metrics.port='metrics' (env METRICS_PORT): not an integer; must be between 0 and 65535",
    ),
    (
        "AUTO_CREATE_TOPICS_ENABLE",
        "sometimes",
        "auto.create.topics.enable='sometimes' (env AUTO_CREATE_TOPICS_ENABLE): "
        "not a boolean (true/false, yes/no, 1/0)",
    ),
    (
        "LISTENERS",
        "PLAINTEXT://0.0.0.0:99999",
        "listeners='PLAINTEXT://0.0.0.0:99999' (env LISTENERS): "
        "port '99999' is not between 0 and 65535",
    ),
    (
        "LOG_RETENTION_HOURS",
        "-5",
        "log.retention.hours='-5' (env LOG_RETENTION_HOURS): must be -1 (forever) or >= 0",
    ),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD, ids=[name for name, _, _ in BAD])
def test_a_malformed_config_map_value_stops_the_broker_naming_it(
    name: str, value: str, message: str, tmp_path: Path
) -> None:
    environ = pod_env(tmp_path) | {name: value}
    assert environ["LOG_FORMAT"] == "json"

    said = refusal(start(environ), json_logs=True)

    assert said == f"[INVALID_CONFIG] {message}"
    assert not (tmp_path / "data").exists()


def test_a_malformed_log_format_is_reported_as_text(tmp_path: Path) -> None:
    environ = pod_env(tmp_path) | {"LOG_FORMAT": "yaml"}

    said = refusal(start(environ), json_logs=False)

    assert said == "[INVALID_CONFIG] log.format='yaml' (env LOG_FORMAT): must be one of text, json"


@pytest.mark.parametrize(
    ("name", "value", "message"), BAD[:2], ids=["LOG_SEGMENT_BYTES", "NUM_PARTITIONS"]
)
def test_a_malformed_compose_value_stops_the_broker_naming_it(
    name: str, value: str, message: str, tmp_path: Path
) -> None:
    environ = compose_env(tmp_path) | {name: value}

    said = refusal(start(environ), json_logs=False)

    assert said == f"[INVALID_CONFIG] {message}"
    assert not (tmp_path / "data").exists()
