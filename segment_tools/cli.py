"""The ``segment-tools`` command: dump, verify, recover and reindex partition directories.

Exit status: 0 when the work succeeded and the data is clean, 1 when problems
were found (verify) or data was invalid (reindex), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from client.errors import LogServerError
from logserver.log import LogConfig
from logserver.log.files import list_directory
from segment_tools.dump import dump_path
from segment_tools.maintenance import recover_directory, reindex_directory
from segment_tools.verify import verify_directory

__all__ = ["main"]


def _partition_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a directory")
    return path


def _existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segment-tools",
        description="Inspect and repair logserver partition directories "
        "(<topic>-<partition>/ with <offset>.log, .index, .timeindex files). "
        "Never run recover or reindex while a broker has the directory open.",
    )
    parser.add_argument("--log-level", default="ERROR", help="logging level (default ERROR)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dump = sub.add_parser("dump", help="one line per batch (and per record), like kafka-dump-log")
    dump.add_argument(
        "path",
        type=_existing_path,
        metavar="FILE_OR_DIR",
        help="a .log, .index or .timeindex file, or a partition directory",
    )
    dump.add_argument(
        "--print-records",
        action="store_true",
        help="also print each record: offset, timestamp, key, sizes, a preview",
    )
    dump.add_argument("--json", action="store_true", help="one JSON object per line")

    verify = sub.add_parser("verify", help="check CRCs, offset continuity and indexes (read-only)")
    verify.add_argument("directory", type=_partition_dir, metavar="DIR")

    for name, text in (
        ("recover", "the broker's recovery, offline: cut the torn tail, rebuild indexes"),
        ("reindex", "rebuild the .index and .timeindex files only"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("directory", type=_partition_dir, metavar="DIR")
        cmd.add_argument(
            "--index-interval-bytes",
            type=int,
            default=LogConfig().index_interval_bytes,
            help="index.interval.bytes of the topic (default %(default)s)",
        )
        if name == "recover":
            cmd.add_argument(
                "--full",
                action="store_true",
                help="re-validate every segment, not only those after the recovery "
                "point (what a broker does after an unclean stop)",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(message)s")
    try:
        if args.command == "dump":
            return dump_path(
                args.path, print_records=args.print_records, as_json=args.json, out=print
            )
        if args.command == "verify":
            return _verify(args.directory)
        if not list_directory(args.directory).log_bases:
            print(f"{args.directory}: no segment (.log) files, nothing to do", file=sys.stderr)
            return 1
        config = LogConfig(index_interval_bytes=args.index_interval_bytes)
        if args.command == "recover":
            report = recover_directory(args.directory, config, full=args.full)
            for line in report.describe():
                print(line)
            return 0
        return _reindex(args.directory, config)
    except BrokenPipeError:
        # The reader went away (``dump | head``): stop quietly, as the docs recipe says.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except LogServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 1


def _verify(directory: Path) -> int:
    result = verify_directory(directory)
    for warning in result.warnings:
        print(f"WARNING {directory}: {warning}")
    for problem in result.problems:
        print(f"ERROR {problem}")
    status = "OK" if result.ok else f"{len(result.problems)} problem(s)"
    print(
        f"{status}: {directory}: {result.segments} segment(s), {result.batches} batch(es), "
        f"{result.bytes} bytes, offsets [{result.log_start_offset}, {result.log_end_offset})"
    )
    return 0 if result.ok else 1


def _reindex(directory: Path, config: LogConfig) -> int:
    status = 0
    for r in reindex_directory(directory, config):
        print(
            f"segment {r.base_offset}: {r.batches} batch(es), {r.index_entries} offset-index "
            f"entries, {r.time_index_entries} time-index entries"
        )
        if r.scan.stop is not None:
            status = 1
            print(
                f"  invalid data from position {r.scan.stop.position}: {r.scan.stop.reason}; "
                f"indexed up to it (run `segment-tools recover --full` to cut it)"
            )
    return status
