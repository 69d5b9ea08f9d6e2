"""Cuts a byte stream into frames, for an ``asyncio.BufferedProtocol``.

Each frame is delivered as its own ``bytearray``, owned by the receiver: the
broker stamps produce batches inside it and appends slices of it without
copying. Small frames are copied out of one scratch buffer (several per
read); a large frame gets a buffer of its exact size that the socket reads
into directly, so its bytes are copied only by the kernel.
"""

from __future__ import annotations

from collections.abc import Callable

from client.errors import InvalidRequestError
from client.protocol.frames import FRAME_LENGTH

__all__ = ["FrameReader", "FrameTooLargeError"]

_SCRATCH_BYTES = 256 * 1024
_BIG_START_BYTES = 256 * 1024
_unpack_length = FRAME_LENGTH.unpack_from


class FrameTooLargeError(InvalidRequestError):
    """A frame announced more bytes than the reader accepts (``socket.request.max.bytes``)."""


class FrameReader:
    __slots__ = (
        "_big",
        "_big_filled",
        "_big_size",
        "_end",
        "_max",
        "_on_frame",
        "_scratch",
        "_start",
        "_view",
    )

    def __init__(self, on_frame: Callable[[bytearray], None], max_frame_bytes: int) -> None:
        self._on_frame = on_frame
        self._max = max_frame_bytes
        self._scratch = bytearray(_SCRATCH_BYTES)
        self._view = memoryview(self._scratch)
        self._start = 0
        self._end = 0
        self._big: bytearray | None = None
        self._big_filled = 0
        self._big_size = 0  # the announced size of the frame being read into _big

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an incomplete frame held (zero between frames)."""
        return self._end - self._start + self._big_filled

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        big = self._big
        if big is not None:
            if self._big_filled == len(big):
                grown = bytearray(min(self._big_size, 2 * len(big)))
                grown[: self._big_filled] = big
                self._big = big = grown
            return memoryview(big)[self._big_filled :]
        if self._end == len(self._scratch):
            self._compact()
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        """Deliver every frame completed by ``nbytes`` new bytes.

        Raises ``FrameTooLargeError`` for a length over the limit and
        ``InvalidRequestError`` for a negative one; the stream cannot be
        resynchronised after either, so the caller closes the connection.
        """
        big = self._big
        if big is not None:
            self._big_filled += nbytes
            if self._big_filled == self._big_size:
                self._big = None
                self._big_filled = self._big_size = 0
                self._on_frame(big)
            return
        self._end += nbytes
        view, start, end = self._view, self._start, self._end
        while end - start >= 4:
            size = _unpack_length(view, start)[0]
            if not 0 <= size <= self._max:
                self._start = self._end = 0
                if size < 0:
                    raise InvalidRequestError(f"negative frame length {size}")
                raise FrameTooLargeError(
                    f"frame of {size} bytes is over the limit of {self._max} bytes"
                )
            if end - start - 4 >= size:
                frame = bytearray(view[start + 4 : start + 4 + size])
                start += 4 + size
                self._start = start
                self._on_frame(frame)
                # The callback may have consumed more (it cannot), but keep state local.
                continue
            if size + 4 > len(self._scratch) // 2:
                got = end - start - 4
                big = bytearray(min(size, max(2 * got, _BIG_START_BYTES)))
                big[:got] = view[start + 4 : end]
                self._big, self._big_filled, self._big_size = big, got, size
                start = end = 0
            break
        if start == end:
            start = end = 0
        self._start, self._end = start, end

    def _compact(self) -> None:
        pending = self._end - self._start
        self._scratch[:pending] = self._view[self._start : self._end]
        self._start, self._end = 0, pending
