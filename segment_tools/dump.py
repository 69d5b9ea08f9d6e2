"""``segment-tools dump``: what is in a segment or index file, batch by batch.

Like ``kafka-dump-log``: one line per batch, and one per record with
``--print-records``. Dumping is lenient: a batch with a bad CRC is shown as
``valid: false`` and the walk goes on while the framing (length) still makes
sense; a torn or nonsensical length ends the walk with an error line.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from client.errors import CorruptRecordError, InvalidRecordError
from client.record import RecordBatch, check_batch, read_header
from client.record.compression import Compression
from client.record.layout import LOG_OVERHEAD, MIN_BATCH_LENGTH
from logserver.log.batch_scanner import mapped_file
from logserver.log.files import (
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    list_directory,
    parse_segment_name,
    segment_path,
)
from logserver.log.offset_index import OffsetIndex
from logserver.log.time_index import TimeIndex

__all__ = ["dump_path"]

_LENGTH = struct.Struct(">i")
_PREVIEW_BYTES = 32

Emit = Callable[[dict[str, Any]], None]


def _preview(data: bytes | None) -> str | None:
    if data is None:
        return None
    text = repr(bytes(data[:_PREVIEW_BYTES]))[2:-1]
    return text + ("…" if len(data) > _PREVIEW_BYTES else "")


def _codec_label(codec_id: int) -> str:
    try:
        return Compression(codec_id).label
    except ValueError:
        return f"unknown({codec_id})"


def _log_file_events(path: Path, print_records: bool) -> Iterator[dict[str, Any]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        with mapped_file(fd) as view:
            size = len(view)
            pos = 0
            while pos < size:
                if size - pos < LOG_OVERHEAD:
                    yield {
                        "type": "error",
                        "position": pos,
                        "error": f"{size - pos} trailing bytes: torn batch header",
                    }
                    return
                length = _LENGTH.unpack_from(view, pos + 8)[0]
                if length < MIN_BATCH_LENGTH or pos + LOG_OVERHEAD + length > size:
                    yield {
                        "type": "error",
                        "position": pos,
                        "error": f"batch_length {length} at position {pos} is impossible "
                        f"(file size {size}): torn or corrupt, walk stops",
                    }
                    return
                end = pos + LOG_OVERHEAD + length
                header = read_header(view, pos)
                error = None
                try:
                    check_batch(view, pos, end)
                except (CorruptRecordError, InvalidRecordError) as exc:
                    error = exc.message
                yield {
                    "type": "batch",
                    "baseOffset": header.base_offset,
                    "lastOffset": header.last_offset,
                    "count": header.record_count,
                    "codec": _codec_label(header.compression_id),
                    "crc": header.crc,
                    "valid": error is None,
                    "position": pos,
                    "size": end - pos,
                    "firstTimestamp": header.first_timestamp,
                    "maxTimestamp": header.max_timestamp,
                    "leaderEpoch": header.partition_leader_epoch,
                    "magic": header.magic,
                    "error": error,
                }
                if print_records and error is None:
                    yield from _record_events(view[pos:end])
                pos = end
    finally:
        os.close(fd)


def _record_events(batch_bytes: memoryview) -> Iterator[dict[str, Any]]:
    try:
        records = RecordBatch(batch_bytes, validate=False).records()
    except CorruptRecordError as exc:
        yield {"type": "error", "error": exc.message}
        return
    for r in records:
        yield {
            "type": "record",
            "offset": r.offset,
            "timestamp": r.timestamp,
            "keySize": -1 if r.key is None else len(r.key),
            "key": _preview(r.key),
            "valueSize": -1 if r.value is None else len(r.value),
            "headers": [[k, _preview(v)] for k, v in r.headers],
            "payload": _preview(r.value),
        }


def _index_file_events(path: Path, suffix: str) -> Iterator[dict[str, Any]]:
    base, _ = parse_segment_name(path.name.removesuffix(DELETED_SUFFIX)) or (0, suffix)
    entry = OffsetIndex.ENTRY if suffix == INDEX_SUFFIX else TimeIndex.ENTRY
    data = path.read_bytes()
    usable = len(data) - len(data) % entry.size
    for a, b in entry.iter_unpack(data[:usable]):
        if suffix == INDEX_SUFFIX:
            yield {"type": "index", "offset": base + a, "position": b}
        else:
            yield {"type": "timeindex", "timestamp": a, "offset": base + b}
    if usable != len(data):
        yield {
            "type": "error",
            "position": usable,
            "error": f"{len(data) - usable} trailing bytes: not a whole {entry.size}-byte entry",
        }


def _files_to_dump(target: Path) -> list[Path]:
    if target.is_dir():
        return [segment_path(target, base, LOG_SUFFIX) for base in list_directory(target).log_bases]
    return [target]


def dump_path(
    target: Path, *, print_records: bool, as_json: bool, out: Callable[[str], None]
) -> int:
    """Dump a file or every ``.log`` file of a directory; return the exit status."""
    files = _files_to_dump(target)
    if not files:
        out(f"no segment files in {target}")
        return 1
    emit: Emit = (lambda e: out(json.dumps(e))) if as_json else (lambda e: out(_as_text(e)))
    for path in files:
        parsed = parse_segment_name(path.name.removesuffix(DELETED_SUFFIX))
        if parsed is None:
            out(
                f"{path}: not a segment file (expected <20-digit offset>.log, .index or .timeindex)"
            )
            return 1
        base, suffix = parsed
        emit({"type": "file", "path": str(path), "baseOffset": base})
        events = (
            _log_file_events(path, print_records)
            if suffix == LOG_SUFFIX
            else _index_file_events(path, suffix)
        )
        for event in events:
            emit(event)
    return 0


def _as_text(event: dict[str, Any]) -> str:
    kind = event["type"]
    if kind == "file":
        return f"Dumping {event['path']}\nStarting offset: {event['baseOffset']}"
    if kind == "batch":
        text = (
            f"baseOffset: {event['baseOffset']} lastOffset: {event['lastOffset']} "
            f"count: {event['count']} codec: {event['codec']} crc: {event['crc']} "
            f"valid: {str(event['valid']).lower()} position: {event['position']} "
            f"size: {event['size']} firstTimestamp: {event['firstTimestamp']} "
            f"maxTimestamp: {event['maxTimestamp']} leaderEpoch: {event['leaderEpoch']} "
            f"magic: {event['magic']}"
        )
        return text + (f" error: {event['error']}" if event["error"] else "")
    if kind == "record":
        headers = ",".join(f"{k}={v}" for k, v in event["headers"])
        return (
            f"| offset: {event['offset']} timestamp: {event['timestamp']} "
            f"keySize: {event['keySize']} key: {event['key']} valueSize: {event['valueSize']} "
            f"headers: [{headers}] payload: {event['payload']}"
        )
    if kind == "index":
        return f"offset: {event['offset']} position: {event['position']}"
    if kind == "timeindex":
        return f"timestamp: {event['timestamp']} offset: {event['offset']}"
    return f"ERROR at position {event.get('position', '?')}: {event['error']}"
