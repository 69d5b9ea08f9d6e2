"""The Dockerfile, read statically (no engine runs here), and its health check run for real.

hadolint is not installable from PyPI; checkov's Dockerfile checks pass (see
docs/deployment.md). What matters for this image is asserted directly: a
non-root numeric user, ``logserver`` as the entry point, the data volume where
``LOG_DIRS`` points, the ports, and a HEALTHCHECK that really answers.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import (
    DOCKERFILE,
    REPO_ROOT,
    installed_packages,
    pyproject,
    settings_from_env,
)
from tests.support.broker_process import BrokerProcess


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, f"unterminated continuation: {pending!r}"
    return found


def only(keyword: str) -> str:
    matching = [rest for kw, rest in instructions() if kw == keyword]
    assert len(matching) == 1, f"{keyword}: {matching}"
    return matching[0]


def env() -> dict[str, str]:
    """Every ENV key=value of the image (the ``ENV a=b c=d`` form, values without spaces)."""
    values: dict[str, str] = {}
    for kw, rest in instructions():
        if kw == "ENV":
            for item in rest.split():
                key, equals, value = item.partition("=")
                assert equals, f"ENV {rest!r}: use the key=value form"
                values[key] = value
    return values


def healthcheck_argv() -> list[str]:
    _options, cmd, exec_form = only("HEALTHCHECK").partition("CMD ")
    assert cmd, "HEALTHCHECK without CMD"
    argv = json.loads(exec_form)
    assert isinstance(argv, list)
    return argv


def test_base_is_a_pinned_slim_python_311() -> None:
    (base,) = [rest for kw, rest in instructions() if kw == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base


def test_runs_as_a_numeric_non_root_user() -> None:
    # Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
    user, _, group = only("USER").partition(":")
    assert user.isdigit()
    assert int(user) != 0
    assert group.isdigit()
    assert int(group) != 0
    assert "useradd" in " ".join(rest for kw, rest in instructions() if kw == "RUN")
    # The last instruction that could run as root comes before USER.
    keywords = [kw for kw, _ in instructions()]
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")


def test_the_entry_point_is_the_logserver_console_script() -> None:
    assert json.loads(only("ENTRYPOINT")) == ["logserver"]
    assert pyproject()["project"]["scripts"]["logserver"] == "logserver.main:main"
    assert not [kw for kw, _ in instructions() if kw == "CMD"]


def test_installs_the_project_with_pip_and_no_cache() -> None:
    runs = " ".join(rest for kw, rest in instructions() if kw == "RUN")
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", runs), runs


def test_copies_every_package_the_project_installs() -> None:
    packages = installed_packages()
    copied = {
        rest.split()[0].rstrip("/")
        for kw, rest in instructions()
        if kw == "COPY" and not rest.startswith("--")
    }
    assert packages <= copied, packages - copied
    assert {"pyproject.toml", "README.md"} <= {
        part for kw, rest in instructions() if kw == "COPY" for part in rest.split()[:-1]
    }
    # .dockerignore lets exactly those through.
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == packages | {"pyproject.toml", "README.md"}
    assert "**" in ignore


def test_the_data_volume_is_where_log_dirs_points() -> None:
    volume = json.loads(only("VOLUME"))
    settings = settings_from_env(env())
    assert volume == [str(settings.log_dirs[0])] == ["/var/lib/logserver"]


def test_exposes_the_broker_port_and_the_metrics_port() -> None:
    settings = settings_from_env(env())
    exposed = {int(port) for port in only("EXPOSE").split()}
    assert settings.metrics_port is not None
    assert exposed == {settings.listeners[0].port, settings.metrics_port} == {9092, 9404}
    assert settings.listeners[0].host == "0.0.0.0"


def test_the_health_check_asks_health_with_python_only() -> None:
    argv = healthcheck_argv()
    assert argv[:2] == ["python", "-c"]
    assert "/health" in argv[2]
    assert "--interval=" in only("HEALTHCHECK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_healthcheck(metrics_port: int) -> subprocess.CompletedProcess[bytes]:
    argv = healthcheck_argv()
    argv[0] = sys.executable  # the image's python, here the venv's
    environ = {**os.environ, "METRICS_PORT": str(metrics_port)}
    return subprocess.run(argv, env=environ, capture_output=True, timeout=30, check=False)


@pytest.mark.timeout(60)
def test_the_health_check_passes_on_a_running_broker_and_fails_once_it_stops(
    tmp_path: Path,
) -> None:
    port = free_port()
    with BrokerProcess(tmp_path / "data", flags=["--metrics-port", str(port)]) as broker:
        result = run_healthcheck(port)
        assert result.returncode == 0, (result.stderr.decode(), broker.output())
        assert broker.stop() == 0
    stopped = run_healthcheck(port)
    assert stopped.returncode != 0
    assert b"Connection refused" in stopped.stderr
