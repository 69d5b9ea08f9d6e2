"""A real broker per test module, and ``logctl``: the CLI run through its real entry point.

``logctl(*args, input=b"...")`` runs ``python -m client.cli -b <broker> ...`` in
a subprocess (bounded by a timeout) and returns the ``CompletedProcess`` with
bytes stdout and stderr. The broker is shared by a module's tests, so each
test uses topics of its own; a broker that logged a Python traceback fails the
module at teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.broker_process import REPO_ROOT, BrokerProcess

Logctl = Callable[..., subprocess.CompletedProcess[bytes]]

COMMAND_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("broker"))
    process.start()
    try:
        yield process
    finally:
        process.close()
    assert process.tracebacks() == [], process.output(last=200)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LOGSERVER_BROKERS"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_logctl(
    args: list[str],
    *,
    input: bytes = b"",
    env: dict[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT_S,
    command: list[str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*(command or [sys.executable, "-m", "client.cli"]), *args],
        input=input,
        capture_output=True,
        cwd=REPO_ROOT,
        env=env or cli_env(),
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def logctl(broker: BrokerProcess) -> Logctl:
    def run(
        *args: str, input: bytes = b"", timeout: float = COMMAND_TIMEOUT_S
    ) -> subprocess.CompletedProcess[bytes]:
        return run_logctl(["-b", broker.address, *args], input=input, timeout=timeout)

    return run


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique to the test (legal characters only)."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:200]


def lines(output: bytes) -> list[str]:
    return output.decode().splitlines()


def stderr_of(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


def venv_logctl() -> Path:
    return Path(sys.executable).parent / "logctl"
