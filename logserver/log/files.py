"""What lives in a partition directory, and how the names are spelled.

    00000000000000000000.log        batches, as received (offsets stamped)
    00000000000000000000.index      sparse offset index (derived)
    00000000000000000000.timeindex  sparse time index (derived)
    partition.checkpoint            recovery point, log start offset (atomic JSON)
    .clean-shutdown                 present only while the log is closed cleanly
    *.deleted                       segments retention removed, awaiting file.delete.delay.ms
    *.tmp                           a checkpoint being written

Anything else is foreign: reported and left alone, never read as data.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)
DELETED_SUFFIX = ".deleted"
TMP_SUFFIX = ".tmp"
CHECKPOINT_FILE = "partition.checkpoint"
LEADER_EPOCH_FILE = "leader-epoch-checkpoint"
CLEAN_SHUTDOWN_FILE = ".clean-shutdown"

_OFFSET_DIGITS = 20


def segment_path(directory: Path, base_offset: int, suffix: str) -> Path:
    return directory / f"{base_offset:0{_OFFSET_DIGITS}d}{suffix}"


def parse_segment_name(name: str) -> tuple[int, str] | None:
    """``(base_offset, suffix)`` for a segment file name, else None."""
    stem, dot, ext = name.partition(".")
    if not dot or len(stem) != _OFFSET_DIGITS or not stem.isdigit():
        return None
    suffix = "." + ext
    if suffix not in SEGMENT_SUFFIXES:
        return None
    return int(stem), suffix


def log_fields(directory: Path, offset: int | None = None) -> dict[str, str | int]:
    """The ``extra=`` of a log line about the partition in ``<topic>-<partition>``.

    ``topic``, ``partition`` (when the name has that shape) and ``offset``, which
    the JSON log format turns into fields of their own.
    """
    topic, dash, number = directory.name.rpartition("-")
    fields: dict[str, str | int] = {}
    if dash and topic and number.isascii() and number.isdigit():
        fields.update(topic=topic, partition=int(number))
    if offset is not None:
        fields["offset"] = offset
    return fields


@dataclasses.dataclass
class DirectoryListing:
    """A partition directory sorted into what recovery keeps, cleans and ignores."""

    segments: dict[int, set[str]]  # base offset -> suffixes present
    leftovers: list[Path]  # *.deleted and *.tmp: safe to remove at open
    foreign: list[Path]  # not ours: reported, left alone

    @property
    def log_bases(self) -> list[int]:
        return sorted(b for b, suffixes in self.segments.items() if LOG_SUFFIX in suffixes)

    @property
    def orphan_indexes(self) -> list[tuple[int, str]]:
        return sorted(
            (b, s)
            for b, suffixes in self.segments.items()
            if LOG_SUFFIX not in suffixes
            for s in suffixes
        )


def list_directory(directory: Path) -> DirectoryListing:
    segments: dict[int, set[str]] = {}
    leftovers: list[Path] = []
    foreign: list[Path] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        name = entry.name
        if name in (CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE, LEADER_EPOCH_FILE):
            continue
        path = Path(entry.path)
        if name.endswith(DELETED_SUFFIX) and parse_segment_name(name[: -len(DELETED_SUFFIX)]):
            leftovers.append(path)
            continue
        if name in (CHECKPOINT_FILE + TMP_SUFFIX, LEADER_EPOCH_FILE + TMP_SUFFIX):
            leftovers.append(path)
            continue
        parsed = parse_segment_name(name)
        if parsed is None or not entry.is_file(follow_symlinks=False):
            foreign.append(path)
            continue
        segments.setdefault(parsed[0], set()).add(parsed[1])
    return DirectoryListing(segments, leftovers, foreign)


def fsync_directory(directory: Path) -> None:
    """Make renames, creations and unlinks in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
