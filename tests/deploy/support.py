"""What the deployment tests share: the repository's paths and a broker's settings.

``settings_from_env`` runs the deployment's environment through the broker's own
parser (``load_config``), so a setting the image, docker-compose.yml or the
ConfigMap gets wrong fails here the way it would fail the broker at start.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from logserver.config import BrokerConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


def settings_from_env(environ: Mapping[str, str]) -> BrokerConfig:
    """The broker's settings from ``environ`` alone (no flags), as ``logserver`` reads them."""
    return load_config([], dict(environ))


def pyproject() -> dict:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def installed_packages() -> set[str]:
    """The top-level packages ``pip install .`` installs (pyproject's find.include)."""
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*") for pattern in include}
