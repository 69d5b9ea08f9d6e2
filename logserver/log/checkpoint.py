"""The partition checkpoint: recovery point and log start offset.

``partition.checkpoint`` is a small JSON object, replaced atomically (temp file,
fsync, rename, fsync of the directory), so it is always either the old or the
new version. A missing or unreadable checkpoint is not fatal: the log falls
back to the safe defaults (validate everything, start at the first segment).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

from logserver.log.files import CHECKPOINT_FILE, TMP_SUFFIX, fsync_directory

__all__ = ["PartitionCheckpoint", "read_checkpoint", "write_atomically", "write_checkpoint"]

log = logging.getLogger(__name__)

_VERSION = 1


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionCheckpoint:
    recovery_point: int  # every offset below it is fsynced, with its indexes
    log_start_offset: int


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


def write_checkpoint(directory: Path, checkpoint: PartitionCheckpoint) -> None:
    payload = {"version": _VERSION, **dataclasses.asdict(checkpoint)}
    write_atomically(directory / CHECKPOINT_FILE, json.dumps(payload).encode() + b"\n")


def read_checkpoint(directory: Path) -> PartitionCheckpoint | None:
    """The checkpoint, or None when it is missing or cannot be trusted (logged)."""
    path = directory / CHECKPOINT_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s: unreadable (%s); validating the whole log", path, exc.strerror)
        return None
    try:
        data = json.loads(raw)
        if data.get("version") != _VERSION:
            raise ValueError(f"unknown version {data.get('version')!r}")
        checkpoint = PartitionCheckpoint(
            recovery_point=data["recovery_point"], log_start_offset=data["log_start_offset"]
        )
        for value in (checkpoint.recovery_point, checkpoint.log_start_offset):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"bad offset {value!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: not a valid checkpoint (%s); validating the whole log", path, exc)
        return None
    return checkpoint
