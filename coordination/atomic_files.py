"""Crash-safe files for the standalone coordinator (blocking; run in a worker thread).

A file is replaced by writing a temp file ``.<random>.tmp`` next to it,
fsyncing it, renaming it over the old one and fsyncing the directory: after a
crash the file is the old or the new version, never a mix, and a temp file may
be left over, which ``scan`` removes. The temp name is short and random, not
``<name>.tmp``: a name near the 255-byte limit would not fit a suffix.

Errors are ``OSError``: the callers convert them into ``StorageError`` naming
what the file holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from client.errors import StorageError
from logserver.log.files import TMP_SUFFIX, fsync_directory

__all__ = ["remove_file", "replace_file", "scan"]

log = logging.getLogger(__name__)


def replace_file(path: Path, data: bytes) -> None:
    """Make ``data`` the content of ``path``, atomically and durably."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=TMP_SUFFIX)
    try:
        with open(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o644)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def remove_file(path: Path) -> bool:
    """Remove ``path`` durably; False if it was not there (a retry after an fsync failure
    finds it so, which is fine)."""
    try:
        path.unlink()
        existed = True
    except FileNotFoundError:
        existed = False
    fsync_directory(path.parent)
    return existed


def scan(directory: Path, what: str) -> list[os.DirEntry[str]]:
    """The entries of ``directory`` by name, once the temp files a crash left are removed.

    Creates the directory (and its parent) if missing. ``what`` names the files it
    holds, for messages. Raises ``StorageError`` naming the directory or the file.
    """
    try:
        for level in (directory.parent, directory):
            if not level.is_dir():
                level.mkdir(parents=True, exist_ok=True)
                fsync_directory(level.parent)
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise StorageError(f"{directory}: cannot open the coordinator's directory: {exc}") from exc
    kept = []
    removed = False
    for entry in entries:
        if entry.is_file(follow_symlinks=False) and entry.name.endswith(TMP_SUFFIX):
            log.warning("%s: removing a %s left half-written by a crash", entry.path, what)
            try:
                os.unlink(entry.path)
            except OSError as exc:
                raise StorageError(
                    f"{entry.path}: cannot remove a leftover temp file: {exc}"
                ) from exc
            removed = True
        else:
            kept.append(entry)
    if removed:
        try:
            fsync_directory(directory)
        except OSError as exc:
            raise StorageError(f"{directory}: cannot fsync: {exc}") from exc
    return kept
