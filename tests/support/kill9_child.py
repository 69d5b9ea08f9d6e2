"""Child process for the kill -9 test: ``python kill9_child.py DIRECTORY SEED FLUSH_EVERY``.

Opens the log (recovering whatever the previous kill left), writes one
``open <log_end> <lost_bytes>`` line, then appends batches forever, writing
``ack <first_offset> <last_offset>`` after each append returns. The record at
offset ``o`` always holds ``value_for(o)``, so the parent can check every
offset it finds, acknowledged or not. Every line is flushed before the next
append, so a line the parent reads is an acknowledged append.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from client.record import BatchBuilder
from logserver.log import LogConfig, PartitionLog

CONFIG = LogConfig(segment_bytes=8192, index_interval_bytes=512, file_delete_delay_ms=0)


def value_for(offset: int) -> bytes:
    return f"value-{offset}-".encode() + b"x" * (offset % 97)


def main(directory: Path, seed: int, flush_every: int) -> None:
    out = sys.stdout
    log = PartitionLog.open(directory, CONFIG)
    report = log.recovery_report
    out.write(f"open {log.log_end_offset} {report.bytes_cut}\n")
    out.flush()
    rng = random.Random(seed)
    appended = 0
    while True:
        start = log.log_end_offset
        builder = BatchBuilder(rng.choice(["none", "none", "lz4"]))
        for i in range(rng.randint(1, 6)):
            builder.append(value_for(start + i), timestamp_ms=1_700_000_000_000 + start + i)
        info = log.append(builder.build())
        if info.first_offset != start:
            raise AssertionError(f"appended at {info.first_offset}, expected {start}")
        appended += 1
        if flush_every and appended % flush_every == 0:
            log.flush()
        out.write(f"ack {info.first_offset} {info.last_offset}\n")
        out.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
