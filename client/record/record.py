"""One record as an application sees it after a batch is decoded."""

from __future__ import annotations

from typing import NamedTuple

Header = tuple[str, bytes]


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
