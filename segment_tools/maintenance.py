"""``segment-tools recover`` and ``reindex``: the broker's own repairs, run offline.

``recover`` opens the directory exactly as the broker does (so it cuts a torn
tail, removes what follows it and rebuilds indexes), then closes it cleanly.
``reindex`` rebuilds index files only and never changes a ``.log`` file.
Neither may run while a broker has the directory open.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from logserver.log import LogConfig, PartitionLog, RecoveryReport
from logserver.log.files import INDEX_SUFFIX, TIME_INDEX_SUFFIX, list_directory, segment_path
from logserver.log.segment import LogSegment, SegmentScan, now_ms

__all__ = ["ReindexResult", "recover_directory", "reindex_directory"]


def recover_directory(directory: Path, config: LogConfig, *, full: bool) -> RecoveryReport:
    """Run the broker's recovery (all of it with ``full``) and leave the log closed cleanly."""
    log = PartitionLog.open(directory, config, full_recovery=full)
    try:
        return log.recovery_report
    finally:
        log.close()


@dataclasses.dataclass(frozen=True)
class ReindexResult:
    base_offset: int
    batches: int
    index_entries: int
    time_index_entries: int
    scan: SegmentScan


def reindex_directory(directory: Path, config: LogConfig) -> list[ReindexResult]:
    """Rebuild every segment's ``.index`` and ``.timeindex`` from its valid batches."""
    bases = list_directory(directory).log_bases
    results = []
    for i, base in enumerate(bases):
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            segment_path(directory, base, suffix).unlink(missing_ok=True)
        segment = LogSegment(
            directory,
            base,
            index_interval_bytes=config.index_interval_bytes,
            max_index_bytes=config.segment_index_bytes,
            created_ms=now_ms(),
        )
        try:
            scan = segment.rebuild_indexes()
            if i < len(bases) - 1:
                segment.seal()
            segment.write_pending_indexes()
            segment.fsync()
            results.append(
                ReindexResult(
                    base,
                    scan.batches,
                    segment.offset_index.entry_count,
                    segment.time_index.entry_count,
                    scan,
                )
            )
        finally:
            segment.close()
    return results
