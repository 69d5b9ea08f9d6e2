"""docs/format.md must describe the format the code writes: table and example both."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from client.record import BatchBuilder, stamp_batch
from client.record.layout import CRC_COVERS_FROM, HEADER, MAGIC

DOC = Path(__file__).resolve().parents[3] / "docs" / "format.md"
_SIZES = {"int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint32": 4}


def _header_rows() -> list[tuple[int, int, str, str, str]]:
    section = DOC.read_text().split("## Header", 1)[1].split("###", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1], cells[2], cells[3], cells[4]))
    return rows


def test_header_table_matches_the_struct():
    rows = [r for r in _header_rows() if r[2] != "body"]
    offsets = [r[0] for r in rows]
    sizes = [int(r[1]) for r in rows]
    assert [_SIZES[r[3]] for r in rows] == sizes
    assert sum(sizes) == HEADER.size == 61
    assert offsets == [sum(sizes[:i]) for i in range(len(sizes))]
    codes = "".join(
        {"int64": "q", "int32": "i", "int16": "h", "int8": "b", "uint32": "I"}[r[3]] for r in rows
    )
    assert struct.Struct(">" + codes).format == HEADER.format
    covered = [r[0] for r in rows if r[4] == "yes"]
    assert min(covered) == CRC_COVERS_FROM
    assert all(r[4] in ("no", "—") for r in rows if r[0] < CRC_COVERS_FROM)


def test_magic_is_documented():
    assert f"magic is our own format version (`{MAGIC}`)" in DOC.read_text()


def test_hex_example_is_what_the_builder_writes():
    builder = BatchBuilder()
    builder.append(b"hello", key=b"k", timestamp_ms=1700000000000, headers=[("h", b"v")])
    builder.append(b"world", key=None, timestamp_ms=1700000000005)
    batch = bytearray(builder.build())
    stamp_batch(batch, 0, 42, 3)
    example = DOC.read_text().split("## Example", 1)[1].split("## On disk", 1)[0]
    hex_bytes = []
    for line in example.splitlines():
        match = re.match(r"\s+[0-9a-f]{4}  ((?:[0-9a-f]{2} ?)+)", line)
        if match:
            hex_bytes.extend(match.group(1).split())
    assert bytes.fromhex("".join(hex_bytes)) == bytes(batch)
    assert f"({len(batch)} bytes)" in example
