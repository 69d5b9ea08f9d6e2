"""What a request handler produces: a msgpack body and, for Fetch, file ranges to send."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from logserver.log import FileSlice

__all__ = ["Response"]


class Response(NamedTuple):
    body: dict[str, Any]
    # Sent after the msgpack part, in order, as the frame's tail (fetched batches).
    slices: Sequence[FileSlice] = ()
