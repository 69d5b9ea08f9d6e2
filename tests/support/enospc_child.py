"""Child process for the real disk-full test: ``python enospc_child.py MOUNT_POINT``.

Run under ``unshare -m`` after a small tmpfs was mounted at MOUNT_POINT (the
mount lives in the child's private mount namespace and vanishes with it). Fills
the disk through ``PartitionLog.append`` and writes one JSON line to stdout
describing what happened; the parent test makes the assertions.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from client.errors import StorageError
from client.record import RecordBatch
from logserver.log import LogConfig, PartitionLog
from tests.support.batches import make_batch

CONFIG = LogConfig(segment_bytes=64 * 1024 * 1024, file_delete_delay_ms=0)
SCRATCH_BYTES = 96 * 1024
MAX_APPENDS = 10_000


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def read_back(log: PartitionLog) -> dict[int, str]:
    out: dict[int, str] = {}
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        file_slice = log.read(offset, 1 << 20)
        assert file_slice is not None
        for batch in file_slice.batches():
            for record in batch.records():
                out[record.offset] = (record.value or b"").decode()
            offset = batch.next_offset
    return out


def open_files_under(directory: Path) -> list[str]:
    """Files in ``directory`` this process still has open."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{directory}/"):
            out.append(os.path.basename(target))
    return sorted(out)


class Filler:
    def __init__(self, log: PartitionLog, acked: dict[int, str], tag: str) -> None:
        self.log = log
        self.acked = acked
        self.tag = tag
        self.count = 0

    def batch(self) -> bytes:
        # ~1.5 KB, not page-aligned, so the failing write is usually a short one first.
        self.count += 1
        return make_batch(3, tag=f"{self.tag}{self.count}", value_size=500)

    def append(self, data: bytes) -> int:
        info = self.log.append(data)
        for record in RecordBatch(data).records():
            self.acked[info.first_offset + record.offset] = (record.value or b"").decode()
        return info.first_offset

    def fill(self) -> dict[str, Any]:
        """Append until the disk is full; describe the failing append."""
        for _ in range(MAX_APPENDS):
            data = self.batch()
            segment = self.log.active_segment
            size_before = os.stat(segment.path).st_size
            end_before = self.log.log_end_offset
            free_before = free_bytes(segment.path.parent)
            try:
                self.append(data)
            except StorageError as exc:
                return {
                    "appended": self.count - 1,
                    "type": type(exc).__name__,
                    "mro": [c.__name__ for c in type(exc).__mro__],
                    "code": exc.code,
                    "name": exc.name,
                    "message": exc.message,
                    "cause_errno": getattr(exc.__cause__, "errno", None),
                    "batch_bytes": len(data),
                    "free_before": free_before,
                    "slack_before": -size_before % os.sysconf("SC_PAGE_SIZE"),
                    "size_before": size_before,
                    "size_after": os.stat(segment.path).st_size,
                    "segment_size_after": segment.size,
                    "end_before": end_before,
                    "end_after": self.log.log_end_offset,
                }
        raise AssertionError(f"the disk never filled after {MAX_APPENDS} appends")


def main(mount: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"fs_bytes": os.statvfs(mount).f_blocks * os.statvfs(mount).f_frsize}
    scratch = mount / "scratch"
    scratch.write_bytes(b"\0" * SCRATCH_BYTES)
    directory = mount / "topic-0"
    acked: dict[int, str] = {}

    log = PartitionLog.open(directory, CONFIG)
    filler = Filler(log, acked, "a")
    result["first_fill"] = filler.fill()

    # Still full: a second attempt fails the same way and changes nothing.
    size = os.stat(log.active_segment.path).st_size
    try:
        filler.append(filler.batch())
        result["second_attempt"] = "appended"
    except StorageError as exc:
        result["second_attempt"] = type(exc).__name__
    result["second_attempt_size_unchanged"] = os.stat(log.active_segment.path).st_size == size
    result["acked_after_failure"] = len(acked)
    result["read_back_while_full"] = read_back(log) == acked

    # Free space: appends work again, at the offset the failed append would have had.
    scratch.unlink()
    end = log.log_end_offset
    result["resumed_at"] = end
    result["resumed_first_offset"] = filler.append(filler.batch())
    for _ in range(4):
        filler.append(filler.batch())
    result["read_back_after_freeing"] = read_back(log) == acked
    log.close()

    # A clean reopen loses nothing.
    log = PartitionLog.open(directory, CONFIG)
    report = log.recovery_report
    result["clean_reopen"] = {
        "clean_shutdown": report.clean_shutdown,
        "lost_data": report.lost_data,
        "truncation": report.truncation is not None,
        "end": log.log_end_offset,
        "expected_end": max(acked) + 1,
        "read_back": read_back(log) == acked,
    }

    # Fill again and crash while full (no flush, no marker), free a little, reopen.
    (mount / "scratch2").write_bytes(b"\0" * (16 * 1024))
    filler = Filler(log, acked, "b")
    result["second_fill"] = filler.fill()
    log.close_handlers()
    try:
        full = PartitionLog.open(directory, CONFIG)
    except StorageError as exc:
        result["reopen_while_full"] = f"StorageError: {exc.message}"
        del exc
        result["files_left_open_by_failed_open"] = open_files_under(directory)
    else:
        result["reopen_while_full"] = {
            "lost_data": full.recovery_report.lost_data,
            "read_back": read_back(full) == acked,
        }
        full.close_handlers()
    (mount / "scratch2").unlink()
    log = PartitionLog.open(directory, CONFIG)
    report = log.recovery_report
    result["crash_reopen"] = {
        "clean_shutdown": report.clean_shutdown,
        "validated_from": report.validated_from_offset,
        "lost_data": report.lost_data,
        "truncation": None if report.truncation is None else report.truncation.reason,
        "end": log.log_end_offset,
        "expected_end": max(acked) + 1,
        "read_back": read_back(log) == acked,
    }
    next_offset = log.log_end_offset
    result["append_after_crash_reopen"] = log.append(make_batch(1)).first_offset == next_offset
    log.close()
    result["acked"] = len(acked)
    return result


if __name__ == "__main__":
    try:
        outcome = main(Path(sys.argv[1]))
    except BaseException:
        sys.stdout.write("RESULT " + json.dumps({"crash": traceback.format_exc()}) + "\n")
        sys.stdout.flush()
        raise
    sys.stdout.write("RESULT " + json.dumps(outcome) + "\n")
    sys.stdout.flush()
