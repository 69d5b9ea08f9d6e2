"""Which leader epoch wrote which offsets: Kafka's leader-epoch cache.

Entries are ``(epoch, start_offset)``: the first offset written under each
leader epoch, epochs and offsets both increasing. A follower that becomes
follower again asks its leader "where does my latest epoch end on your log?"
(OffsetsForLeaderEpoch, answered by ``end_offset_for``) and truncates there.
That removes a divergent suffix, which the high watermark alone cannot find
(KIP-101).

The cache lives in ``leader-epoch-checkpoint`` beside the segments: JSON,
written to a temp file, fsynced and renamed. It is derived data, so an
unreadable file is logged and the cache starts empty. The log then answers
OffsetsForLeaderEpoch with "unknown", which makes a follower fall back to the
high watermark.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from bisect import bisect_right
from pathlib import Path
from typing import NamedTuple

from logserver.log.checkpoint import write_atomically
from logserver.log.files import LEADER_EPOCH_FILE

__all__ = ["UNDEFINED", "EpochEndOffset", "EpochEntry", "LeaderEpochCache"]

log = logging.getLogger(__name__)

UNDEFINED = -1
_VERSION = 1


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class EpochEndOffset(NamedTuple):
    epoch: int
    end_offset: int


class LeaderEpochCache:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LEADER_EPOCH_FILE
        self._lock = threading.Lock()
        self._dirty = False  # the file is behind memory: deferred, or a write failed
        self._entries: list[EpochEntry] = self._load()

    def _load(self) -> list[EpochEntry]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("%s: unreadable (%s); starting an empty epoch cache", self.path, exc)
            return []
        try:
            if data.get("version") != _VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            entries = [EpochEntry(int(e), int(o)) for e, o in data["entries"]]
            for before, after in itertools.pairwise(entries):
                if after.epoch <= before.epoch or after.start_offset < before.start_offset:
                    raise ValueError(f"entries out of order: {before} then {after}")
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            log.warning("%s: not a valid epoch cache (%s); starting empty", self.path, exc)
            return []
        return entries

    def _save(self) -> None:
        payload = {"version": _VERSION, "entries": [list(e) for e in self._entries]}
        self._dirty = True
        write_atomically(self.path, json.dumps(payload).encode() + b"\n")
        self._dirty = False

    def flush(self) -> None:
        """Write the cache if it is behind memory: an ``assign(persist=False)``, or a failed
        write. The log calls this before it moves its recovery point, and on close."""
        with self._lock:
            if self._dirty:
                self._save()

    @property
    def entries(self) -> list[EpochEntry]:
        with self._lock:
            return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        """The newest epoch, or ``UNDEFINED`` for an empty cache."""
        entries = self._entries
        return entries[-1].epoch if entries else UNDEFINED

    def assign(self, epoch: int, start_offset: int, *, persist: bool = True) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; return whether anything changed.

        Only a newer epoch adds an entry. An older one is ignored: it comes from
        a batch a follower copies from a leader that already moved on.
        ``persist=False`` leaves the file to the next ``flush`` (the append path runs
        on the event loop, and an fsync there stalls every request).
        """
        with self._lock:
            if epoch < 0 or (self._entries and epoch <= self._entries[-1].epoch):
                return False
            if self._entries and start_offset < self._entries[-1].start_offset:
                log.warning(
                    "%s: epoch %d at %d starts before epoch %d at %d; dropping the later entries",
                    self.path.parent.name,
                    epoch,
                    start_offset,
                    *self._entries[-1],
                )
                self._entries = [e for e in self._entries if e.start_offset < start_offset]
            self._entries.append(EpochEntry(epoch, start_offset))
            if persist:
                self._save()
            else:
                self._dirty = True
            return True

    def end_offset_for(self, epoch: int, log_end_offset: int) -> EpochEndOffset:
        """``(epoch, end offset)`` of the largest epoch at or below ``epoch`` (Kafka's rule).

        The end offset is where the next epoch starts, or the log end for the
        latest epoch. Returns ``(UNDEFINED, UNDEFINED)`` when ``epoch`` is below
        every entry, or the cache is empty.
        """
        with self._lock:
            entries = self._entries
            if not entries or epoch < entries[0].epoch:
                return EpochEndOffset(UNDEFINED, UNDEFINED)
            if epoch >= entries[-1].epoch:
                return EpochEndOffset(entries[-1].epoch, log_end_offset)
            i = bisect_right([e.epoch for e in entries], epoch) - 1
            return EpochEndOffset(entries[i].epoch, entries[i + 1].start_offset)

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget the epochs that start at or after ``end_offset`` (the log was cut there)."""
        with self._lock:
            kept = [e for e in self._entries if e.start_offset < end_offset]
            if len(kept) != len(self._entries):
                self._entries = kept
                self._save()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: drop epochs wholly before it."""
        with self._lock:
            entries = self._entries
            i = bisect_right([e.start_offset for e in entries], start_offset) - 1
            if i < 0 or (i == 0 and entries[0].start_offset == start_offset):
                return
            first = entries[i]
            self._entries = [EpochEntry(first.epoch, start_offset), *entries[i + 1 :]]
            self._save()
