"""Shared fixtures: a hand-moved clock and a factory of partition logs closed at teardown."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from logserver.log import LogConfig, PartitionLog
from tests.support.clock import FakeClock

pytest_plugins = ["tests.support.zookeeper_fixtures"]

settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "topic-0"


@pytest.fixture
def open_log(log_dir: Path, clock: FakeClock) -> Iterator[Callable[..., PartitionLog]]:
    """``open_log(segment_bytes=4096, ...)`` opens ``log_dir`` with those LogConfig fields.

    Pass ``directory=`` to open another directory, ``full_recovery=True`` to force it.
    Every log opened here is closed at teardown (closing twice is harmless).
    """
    opened: list[PartitionLog] = []

    def factory(
        *, directory: Path | None = None, full_recovery: bool = False, **config: Any
    ) -> PartitionLog:
        config.setdefault("file_delete_delay_ms", 0)
        log = PartitionLog.open(
            directory or log_dir, LogConfig(**config), clock_ms=clock, full_recovery=full_recovery
        )
        opened.append(log)
        return log

    yield factory
    for log in opened:
        if not log.closed:
            log.close()
