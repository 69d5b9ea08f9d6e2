"""k8s/: validated offline against Kubernetes 1.29's schemas, scanned by checkov, and read back.

``kubernetes-validate`` checks every object strictly (an unknown field fails)
against the pinned version's OpenAPI schemas. ``checkov`` must find nothing
beyond the rows of k8s/checkov-skips.md, each with its reason, and every row
must still match a finding. The rest reads the manifests the way the cluster
would use them: the shell snippets that turn a pod's ordinal into ``BROKER_ID``
and ``ZOO_MY_ID`` are run, and the environment a broker pod ends up with goes
through the broker's own settings parser.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from logserver.config import SETTINGS
from tests.deploy.support import DOCKERFILE, K8S_DIR, pyproject, settings_from_env

KUBERNETES_VERSION = "1.29.0"
NAMESPACE = "logserver"
SKIPS = K8S_DIR / "checkov-skips.md"


def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path, document))
    return found


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """``{(kind, name): object}`` over every manifest."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for _, document in documents():
        key = (document["kind"], document["metadata"]["name"])
        assert key not in found, f"{key} defined twice"
        found[key] = document
    return found


def pod_spec(name: str) -> dict[str, Any]:
    return objects()[("StatefulSet", name)]["spec"]["template"]["spec"]


def container(name: str) -> dict[str, Any]:
    (main,) = pod_spec(name)["containers"]
    return main


def env_value(spec: dict[str, Any], name: str) -> str:
    (value,) = [item["value"] for item in spec["env"] if item["name"] == name]
    return value


def fake_command(directory: Path, name: str) -> Path:
    """An executable ``name`` that prints its environment as JSON (stands in for exec NAME)."""
    path = directory / name
    path.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, sys.stdout)\n"
    )
    path.chmod(0o755)
    return path


def run_pod_command(
    command: list[str], env: dict[str, str], tmp_path: Path, replace: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a container's ``command`` with ``env``; ``replace`` rewrites paths in its script."""
    argv = list(command)
    for old, new in (replace or {}).items():
        argv[-1] = argv[-1].replace(old, new)
    shell = shutil.which(argv[0])
    assert shell is not None, argv[0]
    environ = {"PATH": f"{tmp_path}:{os.environ['PATH']}", **env}
    result = subprocess.run(
        [shell, *argv[1:]], env=environ, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- schemas and checkov -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "document"),
    documents(),
    ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in documents()],
)
def test_valid_for_the_pinned_kubernetes_version(path: Path, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    statefulset = copy.deepcopy(objects()[("StatefulSet", "broker")])
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


def accepted_findings() -> dict[tuple[str, str], str]:
    """``{(check, resource): reason}`` from the table of k8s/checkov-skips.md."""
    rows: dict[tuple[str, str], str] = {}
    for line in SKIPS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"CKV2?_K8S_\d+", cells[0]):
            continue
        check, resource, reason = cells
        assert len(reason) > 40, f"{check} {resource}: say why"
        assert (check, resource) not in rows, f"{check} {resource} listed twice"
        rows[check, resource] = reason
    return rows


@pytest.mark.timeout(240)
def test_checkov_finds_nothing_beyond_the_accepted_findings(tmp_path: Path) -> None:
    checkov = Path(sys.executable).with_name("checkov")
    assert checkov.exists(), "checkov is a dev extra: pip install -e '.[dev]'"
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(K8S_DIR),
            "--framework",
            "kubernetes",
            "--skip-download",  # offline: no policy metadata from the vendor's API
            "--quiet",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "LOG_LEVEL": "ERROR"},
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    (kubernetes,) = [r for r in reports if r["check_type"] == "kubernetes"]
    assert kubernetes["summary"]["parsing_errors"] == 0
    assert kubernetes["summary"]["passed"] > 100
    found = {(f["check_id"], f["resource"]) for f in kubernetes["results"]["failed_checks"]}
    accepted = set(accepted_findings())
    assert found - accepted == set(), "new checkov findings: fix them or list them with a reason"
    assert accepted - found == set(), "k8s/checkov-skips.md lists findings checkov no longer has"


# -- what the manifests mean ----------------------------------------------------------


def test_everything_lives_in_the_namespace() -> None:
    assert objects()[("Namespace", NAMESPACE)]
    for (kind, name), document in objects().items():
        if kind != "Namespace":
            assert document["metadata"]["namespace"] == NAMESPACE, (kind, name)


@pytest.mark.parametrize("name", ["zookeeper", "broker"])
def test_statefulsets_have_a_headless_service_and_three_replicas(name: str) -> None:
    statefulset = objects()[("StatefulSet", name)]["spec"]
    assert statefulset["replicas"] == 3
    # Parallel: ZooKeeper servers are ready only in a quorum, brokers only registered.
    assert statefulset["podManagementPolicy"] == "Parallel"
    service = objects()[("Service", statefulset["serviceName"])]["spec"]
    assert service["clusterIP"] == "None"
    # Per-pod names must resolve before a pod is ready (quorum, catch-up).
    assert service["publishNotReadyAddresses"] is True
    labels = statefulset["template"]["metadata"]["labels"]
    assert statefulset["selector"]["matchLabels"].items() <= labels.items()
    assert service["selector"].items() <= labels.items()
    ports = {p["containerPort"] for p in container(name)["ports"]}
    assert {p["port"] for p in service["ports"]} <= ports


@pytest.mark.parametrize("name", ["zookeeper", "broker"])
def test_disruption_budget_and_anti_affinity(name: str) -> None:
    labels = objects()[("StatefulSet", name)]["spec"]["template"]["metadata"]["labels"]
    budget = objects()[("PodDisruptionBudget", name)]["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    (term,) = pod_spec(name)["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("name", ["zookeeper", "broker"])
def test_pods_run_locked_down(name: str) -> None:
    spec = pod_spec(name)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for each in spec.get("initContainers", []) + spec["containers"]:
        context = each["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, each["name"]
        assert context["allowPrivilegeEscalation"] is False, each["name"]
        assert context["capabilities"]["drop"] == ["ALL"], each["name"]
        resources = each["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_the_broker_runs_as_the_images_user() -> None:
    (user,) = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    context = pod_spec("broker")["securityContext"]
    assert (str(context["runAsUser"]), str(context["runAsGroup"])) == user
    assert str(context["fsGroup"]) == user[1]
    version = pyproject()["project"]["version"]
    assert container("broker")["image"] == f"logserver:{version}"


def broker_pod_env(ordinal: int, tmp_path: Path) -> dict[str, str]:
    """The environment ``logserver`` starts with in pod broker-N: ConfigMap, env, command."""
    main = container("broker")
    env: dict[str, str] = {}
    for source in main["envFrom"]:
        env.update(objects()[("ConfigMap", source["configMapRef"]["name"])]["data"])
    fields = {"metadata.name": f"broker-{ordinal}", "metadata.namespace": NAMESPACE}
    for item in main["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    fake_command(tmp_path, "logserver")
    ran = run_pod_command(main["command"], env, tmp_path)
    assert ran["argv"] == []
    return ran["env"]


@pytest.mark.parametrize("ordinal", [0, 1, 2, 11])
def test_broker_id_and_advertised_listener_come_from_the_pod_ordinal(
    ordinal: int, tmp_path: Path
) -> None:
    settings = settings_from_env(broker_pod_env(ordinal, tmp_path))
    assert settings.broker_id == ordinal
    (advertised,) = settings.advertised_listeners
    service = objects()[("StatefulSet", "broker")]["spec"]["serviceName"]
    assert advertised.host == f"broker-{ordinal}.{service}.{NAMESPACE}.svc.cluster.local"
    assert advertised.port == settings.listeners[0].port == 9092
    assert settings.listeners[0].host == "0.0.0.0"
    # logctl in a broker pod reaches the ready brokers through the bootstrap Service.
    bootstrap = objects()[("Service", "broker")]["spec"]
    assert bootstrap["type"] == "ClusterIP"
    (port,) = bootstrap["ports"]
    assert env_value(container("broker"), "LOGSERVER_BROKERS") == f"broker:{port['port']}"


def test_brokers_find_every_zookeeper_server(tmp_path: Path) -> None:
    settings = settings_from_env(broker_pod_env(0, tmp_path))
    assert settings.zookeeper_connect is not None
    zookeeper = objects()[("StatefulSet", "zookeeper")]["spec"]
    hosts = [
        f"zookeeper-{i}.{zookeeper['serviceName']}.{NAMESPACE}.svc.cluster.local:2181"
        for i in range(zookeeper["replicas"])
    ]
    assert settings.zookeeper_connect.split(",") == hosts


def test_broker_data_is_on_the_claimed_volume(tmp_path: Path) -> None:
    settings = settings_from_env(broker_pod_env(0, tmp_path))
    statefulset = objects()[("StatefulSet", "broker")]["spec"]
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (mount,) = [
        m for m in container("broker")["volumeMounts"] if m["name"] == claim["metadata"]["name"]
    ]
    (log_dir,) = settings.log_dirs
    assert log_dir.is_relative_to(mount["mountPath"])
    assert statefulset["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"


def test_brokers_change_only_when_the_rolling_restart_deletes_them() -> None:
    assert objects()[("StatefulSet", "broker")]["spec"]["updateStrategy"] == {"type": "OnDelete"}
    # ZooKeeper's readiness (in a quorum) is the right gate: the controller rolls it.
    zookeeper = objects()[("StatefulSet", "zookeeper")]["spec"]["updateStrategy"]
    assert zookeeper == {"type": "RollingUpdate"}


def test_broker_probes_and_scrape_annotations_use_the_metrics_port(tmp_path: Path) -> None:
    settings = settings_from_env(broker_pod_env(0, tmp_path))
    main = container("broker")
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports["metrics"] == settings.metrics_port
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert main["startupProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    annotations = objects()[("StatefulSet", "broker")]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(settings.metrics_port),
        "prometheus.io/path": "/metrics",
    }


@pytest.mark.parametrize("ordinal", [0, 1, 2])
def test_zookeeper_id_and_ensemble_come_from_the_pod_ordinal(ordinal: int, tmp_path: Path) -> None:
    main = container("zookeeper")
    spec = objects()[("StatefulSet", "zookeeper")]["spec"]
    entrypoint = fake_command(tmp_path, "docker-entrypoint.sh")
    env = {"POD_NAME": f"zookeeper-{ordinal}"}
    ran = run_pod_command(
        main["command"], env, tmp_path, replace={"/docker-entrypoint.sh": str(entrypoint)}
    )
    assert ran["env"]["ZOO_MY_ID"] == str(ordinal + 1)
    assert ran["argv"] == ["zkServer.sh", "start-foreground"]
    servers = env_value(main, "ZOO_SERVERS").split()
    assert servers == [
        f"server.{i + 1}=zookeeper-{i}.{spec['serviceName']}.{NAMESPACE}.svc.cluster.local"
        ":2888:3888;2181"
        for i in range(spec["replicas"])
    ]


def test_the_config_map_holds_only_broker_settings() -> None:
    known = {s.env for s in SETTINGS}
    data = objects()[("ConfigMap", "broker-config")]["data"]
    assert set(data) <= known, set(data) - known
    # Per pod, so never in the shared ConfigMap.
    assert not {"BROKER_ID", "ADVERTISED_LISTENERS"} & set(data)
