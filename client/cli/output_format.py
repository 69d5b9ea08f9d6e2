"""``logctl consume --format``: kcat-like format strings, compiled once into a function.

Tokens: ``%v`` value, ``%k`` key, ``%p`` partition, ``%o`` offset, ``%T``
timestamp (ms), ``%t`` topic, ``%h`` headers (``name=value`` joined by ``,``),
``%%`` a literal ``%``; escapes ``\\n``, ``\\t``, ``\\r``, ``\\0`` and ``\\\\``.
A null key or value prints as nothing. Keys, values and header values are
written as the raw bytes they are.

``json`` instead prints one object per record and line: ``topic``,
``partition``, ``offset``, ``timestamp``, ``key``, ``value`` and ``headers``
(a list of ``[name, value]`` pairs); bytes are decoded as UTF-8 with
``backslashreplace`` (so ``\\xff`` marks a byte that is not UTF-8) and null
stays ``null``.

``compile_format`` raises ``FormatError`` (a ``ValueError``) naming an unknown
token or escape, which ``logctl`` reports as a usage error.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from client.record import Record

__all__ = ["DEFAULT_FORMAT", "FormatError", "Formatter", "compile_format"]

DEFAULT_FORMAT = "%v\\n"

Formatter = Callable[[str, int, Record], bytes]
_Part = Callable[[str, int, Record], bytes]


class FormatError(ValueError):
    """The format string has a token or escape we do not know."""


def _headers(record: Record) -> bytes:
    return b",".join(name.encode() + b"=" + (value or b"") for name, value in record.headers)


_FIELDS: dict[str, _Part] = {
    "v": lambda topic, partition, record: record.value or b"",
    "k": lambda topic, partition, record: record.key or b"",
    "p": lambda topic, partition, record: str(partition).encode(),
    "o": lambda topic, partition, record: str(record.offset).encode(),
    "T": lambda topic, partition, record: str(record.timestamp).encode(),
    "t": lambda topic, partition, record: topic.encode(),
    "h": lambda topic, partition, record: _headers(record),
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\"}


def parse_format(fmt: str) -> list[str | _Part]:
    """The format as literal strings and field functions, in order (adjacent literals merged)."""
    parts: list[str | _Part] = []
    literal: list[str] = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char not in "%\\":
            literal.append(char)
            i += 1
            continue
        if i + 1 == len(fmt):
            raise FormatError(f"format {fmt!r} ends with a lone {char!r}")
        token = fmt[i + 1]
        i += 2
        if char == "\\":
            if token not in _ESCAPES:
                raise FormatError(
                    f"unknown escape '\\{token}' in format {fmt!r} (known: \\n \\t \\r \\0 \\\\)"
                )
            literal.append(_ESCAPES[token])
        elif token == "%":
            literal.append("%")
        elif token in _FIELDS:
            if literal:
                parts.append("".join(literal))
                literal.clear()
            parts.append(_FIELDS[token])
        else:
            raise FormatError(
                f"unknown token '%{token}' in format {fmt!r} (known: %v %k %p %o %T %t %h %%)"
            )
    if literal:
        parts.append("".join(literal))
    return parts


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "backslashreplace")


def format_json(topic: str, partition: int, record: Record) -> bytes:
    obj = {
        "topic": topic,
        "partition": partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": _text(record.key),
        "value": _text(record.value),
        "headers": [[name, _text(value)] for name, value in record.headers],
    }
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"


def compile_format(fmt: str) -> Formatter:
    """A function from (topic, partition, record) to the bytes to print."""
    if fmt == "json":
        return format_json
    parts = [
        part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part
        for part in parse_format(fmt)
    ]
    if len(parts) == 2 and callable(parts[0]) and isinstance(parts[1], bytes):
        field, suffix = parts[0], parts[1]  # the common "%v\n": no loop per record
        return lambda topic, partition, record: field(topic, partition, record) + suffix

    def render(topic: str, partition: int, record: Record) -> bytes:
        return b"".join(
            part if isinstance(part, bytes) else part(topic, partition, record) for part in parts
        )

    return render
