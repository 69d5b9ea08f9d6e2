"""One consumer-group member as its own process, for tests and benchmarks that kill members.

It subscribes to a topic in a group, and for every record it processes it
writes one JSON line to ``--out`` (``{"e": "record", "p": partition, "o":
offset, "v": value}``), then commits after each poll (at-least-once: process,
then commit). Assignments and revocations are written too (``"assigned"``,
``"revoked"``, with ``"t"``, a wall-clock time in seconds), so a test can time
a rebalance and check that nothing was skipped; so are errors ``poll`` or
``commit`` raised (``"error"``, with the class name in ``"type"``).
``--slow-ms`` sleeps after each poll that returned records, to play a handler
stuck past ``max_poll_interval_ms``.

``--progress-ms`` is the benchmark's mode (perf/group_perf.py): no line per
record, so that writing JSON does not bound the speed measured; instead, every
that many milliseconds and when it stops, one ``"progress"`` line with the
records processed so far (``"records"``), the next offset of each partition it
processed (``"next"``, ``{"partition": offset}``) and the wall-clock time of
the poll that returned the latest of them (``"last_record_t"``).

    python perf/group_member.py --bootstrap-server H:P --group G --topic T --out F
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker_launcher import run_async

from client import Consumer, TopicPartition
from client.errors import LogServerError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-server", "-b", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--instance-id", default=None, help="static membership")
    parser.add_argument("--session-timeout-ms", type=int, default=6_000)
    parser.add_argument("--heartbeat-interval-ms", type=int, default=1_000)
    parser.add_argument("--max-poll-interval-ms", type=int, default=300_000)
    parser.add_argument("--assignor", default="range")
    parser.add_argument(
        "--slow-ms", type=int, default=0, help="sleep after each poll that returned records"
    )
    parser.add_argument("--quiet", action="store_true", help="write no record lines")
    parser.add_argument(
        "--progress-ms",
        type=int,
        default=0,
        help="count records instead of writing them: a progress line every MS ms (0: off)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="the client's INFO log lines on standard error"
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="asyncio",
        help="the event loop (default asyncio; auto: uvloop when installed)",
    )
    return parser


class _Journal:
    def __init__(self, out: IO[str], quiet: bool, progress_s: float) -> None:
        self._out = out
        self._quiet = quiet or progress_s > 0
        self._progress_s = progress_s
        self._next_progress = time.monotonic() + progress_s
        self.count = 0
        self.next_offsets: dict[int, int] = {}
        self.last_record_t: float | None = None

    def event(self, kind: str, **fields: Any) -> None:
        self._out.write(json.dumps({"e": kind, "t": time.time(), **fields}) + "\n")
        self._out.flush()

    def records(self, tp: TopicPartition, records: list[Any]) -> None:
        self.count += len(records)
        self.next_offsets[tp.partition] = records[-1].offset + 1
        self.last_record_t = time.time()
        if self._quiet:
            return
        lines = [
            json.dumps({"e": "record", "p": tp.partition, "o": r.offset, "v": r.value.decode()})
            for r in records
        ]
        self._out.write("\n".join(lines) + "\n")

    def progress(self, *, final: bool = False) -> None:
        """A progress line when one is due (``--progress-ms``), or at the end."""
        if self._progress_s <= 0 or (not final and time.monotonic() < self._next_progress):
            return
        self._next_progress = time.monotonic() + self._progress_s
        self.event(
            "progress",
            records=self.count,
            next=self.next_offsets,
            last_record_t=self.last_record_t,
        )


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with args.out.open("a", encoding="utf-8") as out:
        journal = _Journal(out, args.quiet, args.progress_ms / 1000)

        def assigned(tps: set[TopicPartition]) -> None:
            journal.event("assigned", partitions=sorted(tp.partition for tp in tps))

        def revoked(tps: set[TopicPartition]) -> None:
            journal.event("revoked", partitions=sorted(tp.partition for tp in tps))

        async with Consumer(
            args.bootstrap_server,
            group_id=args.group,
            group_instance_id=args.instance_id,
            session_timeout_ms=args.session_timeout_ms,
            heartbeat_interval_ms=args.heartbeat_interval_ms,
            max_poll_interval_ms=args.max_poll_interval_ms,
            partition_assignment_strategy=(args.assignor,),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        ) as consumer:
            consumer.subscribe([args.topic], on_assign=assigned, on_revoke=revoked)
            journal.event("started")
            while not stop.is_set():
                try:
                    batch = await consumer.poll(timeout_ms=200)
                except LogServerError as exc:
                    journal.event("error", type=type(exc).__name__, message=str(exc))
                    continue
                for tp, records in batch.items():
                    journal.records(tp, records)
                if batch:
                    out.flush()
                    try:
                        await consumer.commit()
                        journal.event(
                            "committed",
                            offsets={tp.partition: r[-1].offset + 1 for tp, r in batch.items()},
                        )
                    except LogServerError as exc:
                        journal.event("error", type=type(exc).__name__, message=str(exc))
                journal.progress()
                if batch and args.slow_ms:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), args.slow_ms / 1000)
            journal.progress(final=True)
            journal.event("stopping")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run_async(lambda: run(args), args.event_loop)


if __name__ == "__main__":
    raise SystemExit(main())
