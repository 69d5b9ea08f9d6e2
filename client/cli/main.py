"""The ``logctl`` parser and the one place errors become messages and exit statuses.

Each command module adds its parser and sets ``run`` (a coroutine function
taking the parsed arguments and returning the exit status) and optionally
``check`` (cross-flag validation taking the arguments, calling its own
subparser's ``error`` so the usage shown is the command's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from client.cli import cluster, consume, group, produce, topic
from client.cluster import parse_bootstrap
from client.errors import LogServerError

__all__ = ["build_parser", "main"]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for ^C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `cmd | head` reports for other tools


def _bootstrap(text: str) -> str:
    try:
        parse_bootstrap(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand's default must not overwrite a value given before the noun.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-b",
        "--bootstrap-server",
        type=_bootstrap,
        default=argparse.SUPPRESS,
        metavar="HOST:PORT[,...]",
        help="brokers to start from (default: $LOGSERVER_BROKERS or localhost:9092)",
    )
    parser = argparse.ArgumentParser(
        prog="logctl",
        description="Manage topics and consumer groups, produce and consume records on a logserver "
        "cluster.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="noun", required=True, metavar="COMMAND")
    topic.add_parser(commands, common)
    produce.add_parser(commands, common)
    consume.add_parser(commands, common)
    cluster.add_parser(commands, common)
    group.add_parser(commands, common)
    return parser


def _fail(message: str) -> None:
    sys.stderr.write(f"logctl: {message}\n")
    sys.stderr.flush()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.bootstrap_server = getattr(args, "bootstrap_server", None)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    try:
        return asyncio.run(args.run(args))
    except LogServerError as exc:
        _fail(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
