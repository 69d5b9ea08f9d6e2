"""Partition logs: segments, indexes, recovery, retention. Synchronous and thread-safe."""

from logserver.log.config import LogConfig
from logserver.log.file_slice import FileSlice
from logserver.log.partition_log import AppendInfo, DeletedSegment, PartitionLog, TimestampOffset
from logserver.log.recovery import RecoveryReport, Truncation

__all__ = [
    "AppendInfo",
    "DeletedSegment",
    "FileSlice",
    "LogConfig",
    "PartitionLog",
    "RecoveryReport",
    "TimestampOffset",
    "Truncation",
]
