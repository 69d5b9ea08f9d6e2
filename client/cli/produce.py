"""``logctl produce TOPIC``: one record per line of standard input.

Like ``kafka-console-producer.sh``: each line (without its ``\\n``) is a value;
with ``--key-separator SEP`` the text before the first ``SEP`` is the key (a
line without ``SEP`` has a null key). An empty line is an empty value; a last
line without ``\\n`` is still sent.

Standard input is read by a daemon thread with ``os.read`` on its file
descriptor, so a Ctrl-C while waiting for input ends at once and batches keep
flowing while the terminal is idle. Every record's acknowledgement is awaited
in order by one task: the first failure of each kind is reported on stderr as
it happens, and the command exits 1 naming how many records were not
acknowledged. A record too large is skipped; any other error from ``send``
(no such topic or partition, an illegal name) would fail every later line
too, so reading stops there.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable

from client.errors import LogServerError, RecordTooLargeError
from client.producer import Producer

__all__ = ["add_parser", "read_lines"]

_CHUNK_BYTES = 1 << 16
_ACK_WINDOW = 10_000  # records whose answer may be outstanding before reading waits


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = commands.add_parser(
        "produce", parents=[common], help="send each line of standard input as a record"
    )
    parser.add_argument("topic", metavar="TOPIC")
    parser.add_argument(
        "--key-separator",
        metavar="SEP",
        help="split each line into key and value at the first SEP",
    )
    parser.add_argument(
        "--acks",
        choices=["0", "1", "all", "-1"],
        default="1",
        help="0: no answer, 1: the leader's (default), all: every in-sync replica",
    )
    parser.add_argument("--compression", choices=["none", "lz4", "snappy"], default="none")
    parser.add_argument(
        "--partition", type=int, metavar="P", help="default: by key, sticky when null"
    )
    parser.add_argument("--linger-ms", type=_non_negative, default=0, metavar="MS")
    parser.add_argument("--batch-size", type=_positive, default=16384, metavar="BYTES")
    parser.set_defaults(run=run, check=functools.partial(_check, parser))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.key_separator == "":
        parser.error("--key-separator must not be empty")
    if args.partition is not None and args.partition < 0:
        parser.error(f"--partition must not be negative, not {args.partition}")


class _StdinChunks:
    """Chunks of a file descriptor, read on a daemon thread; b"" at end of input."""

    def __init__(self, fd: int, max_pending: int = 8) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._slots = threading.Semaphore(max_pending)
        thread = threading.Thread(target=self._read, name="logctl-stdin", daemon=True)
        thread.start()

    def _read(self) -> None:
        while True:
            self._slots.acquire()
            item: bytes | BaseException
            try:
                item = os.read(self._fd, _CHUNK_BYTES)
            except OSError as exc:
                item = exc
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                return
            if not isinstance(item, bytes) or not item:
                return

    async def next(self) -> bytes:
        item = await self._queue.get()
        self._slots.release()
        if isinstance(item, BaseException):
            raise item
        return item


async def read_lines(fd: int) -> AsyncIterator[bytes]:
    """The lines of ``fd`` without their ``\\n`` (a last unterminated line included)."""
    chunks = _StdinChunks(fd)
    rest = b""
    while True:
        chunk = await chunks.next()
        if not chunk:
            break
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line
    if rest:
        yield rest


class _Tally:
    """Counts records and failures, reporting the first failure of each kind as it happens."""

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0
        self._reported: set[str] = set()

    def fail(self, record_number: int, exc: LogServerError) -> None:
        self.failed += 1
        kind = type(exc).__name__
        if kind not in self._reported:
            self._reported.add(kind)
            sys.stderr.write(f"logctl: record {record_number} was not acknowledged: {exc}\n")
            sys.stderr.flush()


async def _await_acks(
    pending: asyncio.Queue[tuple[int, Awaitable[object]] | None], tally: _Tally
) -> None:
    while True:
        item = await pending.get()
        if item is None:
            return
        number, future = item
        try:
            await future
        except LogServerError as exc:
            tally.fail(number, exc)


async def run(args: argparse.Namespace) -> int:
    separator = None if args.key_separator is None else args.key_separator.encode()
    acks: int | str = "all" if args.acks in ("all", "-1") else int(args.acks)
    tally = _Tally()
    pending: asyncio.Queue[tuple[int, Awaitable[object]] | None] = asyncio.Queue(_ACK_WINDOW)
    producer = Producer(
        args.bootstrap_server,
        client_id="logctl-producer",
        acks=acks,
        compression_type=args.compression,
        batch_size=args.batch_size,
        linger_ms=args.linger_ms,
    )
    await producer.start()
    acker = asyncio.create_task(_await_acks(pending, tally), name="logctl-acks")
    stopped = False
    try:
        async for line in read_lines(sys.stdin.fileno()):
            tally.sent += 1
            key = None
            value = line
            if separator is not None:
                head, found, tail = line.partition(separator)
                if found:
                    key, value = head, tail
            try:
                future = await producer.send(args.topic, value, key=key, partition=args.partition)
            except RecordTooLargeError as exc:
                tally.fail(tally.sent, exc)
                continue
            except LogServerError as exc:  # the topic or partition: every later line would fail
                tally.fail(tally.sent, exc)
                stopped = True
                break
            await pending.put((tally.sent, future))
        await producer.flush()
        await pending.put(None)
        await acker
    finally:
        acker.cancel()
        await producer.close()
    if tally.failed:
        where = f"; stopped reading at line {tally.sent}" if stopped else ""
        sys.stderr.write(
            f"logctl: {tally.failed} of {tally.sent} records were not acknowledged{where}\n"
        )
        return 1
    return 0
