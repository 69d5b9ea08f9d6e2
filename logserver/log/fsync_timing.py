"""How long fsyncs take, for the metrics: a process-wide cumulative histogram.

The storage code knows nothing of Prometheus; it times each segment fsync
(log and indexes together) into ``FSYNC_TIMES``, and the broker's metrics
collector exports it. Process-wide, since a process runs one broker (tests
that run several in one process see their sum).
"""

from __future__ import annotations

import bisect
import threading

__all__ = ["FSYNC_TIMES", "FsyncTimes"]

BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class FsyncTimes:
    def __init__(self, buckets_s: tuple[float, ...] = BUCKETS_S) -> None:
        self.buckets_s = buckets_s
        self._counts = [0] * (len(buckets_s) + 1)  # the last one: above every bound
        self._sum_s = 0.0
        self._lock = threading.Lock()  # fsyncs run on storage threads

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets_s, seconds)] += 1
            self._sum_s += seconds

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative ``(le, count)`` pairs ending with ``+Inf``, and the sum in seconds."""
        with self._lock:
            counts, total = list(self._counts), self._sum_s
        cumulative, running = [], 0
        for bound, count in zip([*map(str, self.buckets_s), "+Inf"], counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative, total


FSYNC_TIMES = FsyncTimes()
