"""``logserver``: run one broker until SIGTERM or SIGINT, then stop cleanly.

Without ``ZOOKEEPER_CONNECT`` the broker runs standalone on the embedded
coordinator, keeping its topic metadata next to its logs, so the first command
a newcomer types just works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from client.errors import LogServerError
from coordination import Coordinator, EmbeddedCoordinator
from logserver.broker import Broker
from logserver.config import SETTINGS, BrokerConfig, build_parser, load_config
from logserver.log_format import configure_logging

__all__ = ["main"]

log = logging.getLogger("logserver")


def _make_coordinator(config: BrokerConfig) -> Coordinator:
    if config.zookeeper_connect is None:
        return EmbeddedCoordinator(Path(config.log_dirs[0]))
    from coordination.zookeeper import ZooKeeperCoordinator

    return ZooKeeperCoordinator(
        config.zookeeper_connect,
        broker_id=config.broker_id,
        session_timeout_ms=config.zookeeper_session_timeout_ms,
    )


async def serve(config: BrokerConfig) -> None:
    broker = Broker(config, _make_coordinator(config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await broker.start()
    try:
        await stop.wait()
        log.info("signal received: shutting down")
    finally:
        await broker.stop()


def _run(config: BrokerConfig) -> None:
    choice = config.event_loop
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise LogServerError("event.loop=uvloop but uvloop is not installed") from None
        else:
            uvloop.run(serve(config))
            return
    asyncio.run(serve(config))


def _report_settings_error(
    exc: LogServerError, argv: Sequence[str], environ: Mapping[str, str]
) -> None:
    """Print why the settings were refused, as one JSON line when log.format=json was asked for.

    Only the flags and the environment are read here (the file may be what is
    wrong), for log.format and broker.id; an unreadable broker.id is null.
    """
    flags = vars(build_parser().parse_args(argv))
    early: dict[str, object] = {}
    for s in SETTINGS:
        if s.name in ("log.format", "broker.id"):
            with contextlib.suppress(ValueError):
                early[s.attr] = s.kind.parse(flags.get(s.attr, environ.get(s.env, s.default)))
    if early.get("log_format") != "json":
        print(f"logserver: {exc}", file=sys.stderr)  # noqa: T201
        return
    broker_id = early.get("broker_id")
    configure_logging("INFO", "json", broker_id=broker_id if isinstance(broker_id, int) else None)
    log.error("%s", exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["dev-cluster"]:
        from logserver.dev_cluster import main as dev_cluster

        return dev_cluster(args[1:])
    argv = args
    try:
        config = load_config(argv, os.environ)
    except LogServerError as exc:
        _report_settings_error(exc, argv, os.environ)
        return 2
    configure_logging(config.log_level, config.log_format, broker_id=config.broker_id)
    try:
        _run(config)
    except LogServerError as exc:
        log.error("%s", exc)
        return 1
    return 0
