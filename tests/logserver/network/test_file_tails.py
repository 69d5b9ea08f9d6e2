"""Fetch-like responses whose tails come from files: byte-exact on both event loops.

The standard loop sends them with ``loop.sendfile``; uvloop cannot, so the broker reads
them (on the loop when small, in a worker thread when large) and writes the bytes.
"""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path

import pytest
import uvloop

from client.connection import BrokerConnection as ClientConnection
from client.errors import NetworkError
from logserver.log import FileSlice
from tests.logserver.network.harness import FakeDispatcher, start_server, until


class SliceFile:
    """A real segment-like file and FileSlices over it; closes the file on exit."""

    def __init__(self, directory: Path, data: bytes, name: str = "00000000000000000000.log"):
        self.path = directory / name
        self.path.write_bytes(data)
        self.file = io.FileIO(self.path)
        self.size = len(data)

    def slice(self, position: int, size: int) -> FileSlice:
        return FileSlice(
            file=self.file, path=self.path, position=position, size=size, first_offset=0
        )

    def __enter__(self) -> FileSlice:
        return self.slice(0, self.size)

    def __exit__(self, *exc_info: object) -> None:
        self.file.close()


# (position, size) per slice of each response: small ones are read on the loop, ones over
# 256 KiB in a worker thread (or both sent with sendfile on the standard loop).
RESPONSES = [
    [(0, 100)],
    [(100, 0)],
    [(7, 300 * 1024), (5, 5)],
    [(1 << 20, 3 << 20)],
    [(10, 1), (20, 1), (30, 1), (0, 4096)],
    [],
]


async def _serve_slices(directory: Path, *, expect_sendfile: bool) -> None:
    data = random.Random(7).randbytes(5 << 20)
    helper = SliceFile(directory, data)
    dispatcher = FakeDispatcher()
    loop = asyncio.get_running_loop()
    sendfile_calls: list[int] = []
    if expect_sendfile:
        real_sendfile = loop.sendfile

        async def spy(transport, file, offset=0, count=None, **kwargs):
            sendfile_calls.append(count)
            return await real_sendfile(transport, file, offset, count, **kwargs)

        loop.sendfile = spy  # type: ignore[method-assign]
    server, port = await start_server(dispatcher)
    try:
        client = await ClientConnection.open("127.0.0.1", port, client_id="fetcher")
        for i, pieces in enumerate(RESPONSES):
            dispatcher.slices[i] = [helper.slice(p, s) for p, s in pieces]
        for _ in range(2):  # pipelined: a tail must finish before the next frame starts
            futures = [client.send(1, {"i": i, "kind": "slices"}) for i in range(len(RESPONSES))]
            replies = await asyncio.wait_for(asyncio.gather(*futures), 30)
            for i, (body, tail) in enumerate(replies):
                expected = b"".join(data[p : p + s] for p, s in RESPONSES[i])
                assert body == {"i": i}
                assert bytes(tail) == expected, f"response {i}"
        client.close()
    finally:
        await server.shutdown(1.0)
        helper.file.close()
    if expect_sendfile:
        sent = [size for pieces in RESPONSES for _, size in pieces if size] * 2
        assert sorted(sendfile_calls) == sorted(sent)


async def test_file_tails_arrive_byte_exact_with_the_standard_loop(tmp_path):
    assert isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)
    await _serve_slices(tmp_path, expect_sendfile=True)


def test_file_tails_arrive_byte_exact_with_uvloop(tmp_path):
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(_serve_slices(tmp_path, expect_sendfile=False))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


async def test_a_slice_whose_file_was_renamed_is_read_from_the_held_file(start, tmp_path):
    _, dispatcher, connect = await start()
    data = random.Random(11).randbytes(600 * 1024)
    with SliceFile(tmp_path, data) as piece:
        piece.path.rename(piece.path.with_suffix(".log.deleted"))  # retention meanwhile
        dispatcher.slices[0] = [piece, _slice_with(piece, 0, 10)]
        client = await connect()
        _, tail = await client.request(1, {"i": 0, "kind": "slices"})
        assert bytes(tail) == data + data[:10]


def _slice_with(piece: FileSlice, position: int, size: int) -> FileSlice:
    return FileSlice(piece.file, piece.path, position, size, piece.first_offset)


async def test_a_slice_past_the_end_of_its_file_aborts_the_connection(start, tmp_path):
    server, dispatcher, connect = await start()
    with SliceFile(tmp_path, b"short") as piece:
        dispatcher.slices[0] = [_slice_with(piece, 0, 1000)]
        client = await connect()
        with pytest.raises(NetworkError):
            await client.request(1, {"i": 0, "kind": "slices"})
        await until(lambda: not server.connections)


def test_the_server_uses_sendfile_only_on_the_standard_loop():
    async def probe() -> bool:
        server, _ = await start_server(FakeDispatcher())
        try:
            return server._use_sendfile
        finally:
            await server.shutdown(1.0)

    assert asyncio.run(probe()) is True
    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(probe()) is False
    finally:
        loop.close()


async def test_a_connection_receiving_a_large_tail_is_not_idle(start, tmp_path):
    _, dispatcher, connect = await start(idle_timeout_ms=200)
    data = random.Random(3).randbytes(32 << 20)
    with SliceFile(tmp_path, data) as piece:
        dispatcher.slices[0] = [piece]
        client = await connect()
        future = client.send(1, {"i": 0, "kind": "slices"})
        await asyncio.sleep(0.01)
        client._transport.pause_reading()  # a slow consumer
        await asyncio.sleep(0.6)
        client._transport.resume_reading()
        _, tail = await asyncio.wait_for(future, 10)
        assert bytes(tail) == data
