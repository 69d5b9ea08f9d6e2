"""The record-batch header, byte by byte (big-endian, 61 bytes).

    offset size field                   covered by CRC
    0      8    base_offset  int64      no  (stamped by the leader on append)
    8      4    batch_length int32      no  (bytes after this field)
    12     4    partition_leader_epoch  no  (stamped by the leader on append)
    16     1    magic        int8       no  (format version, MAGIC)
    17     4    crc          uint32     -   (CRC32C of bytes 21 .. end of batch)
    21     2    attributes   int16      yes (bits 0-2 codec, bit 3 timestamp type)
    23     4    last_offset_delta int32 yes (record_count - 1)
    27     8    first_timestamp int64   yes (ms since the epoch)
    35     8    max_timestamp int64     yes
    43     8    producer_id  int64      yes (-1: not idempotent)
    51     2    producer_epoch int16    yes
    53     4    base_sequence int32     yes
    57     4    record_count int32      yes
    61     …    body                    yes (msgpack array of records, compressed as a whole)

The layout is Kafka's RecordBatch v2 header; the body differs (msgpack, see
``builder``), so the magic is our own format version. Fields outside the CRC are
exactly the ones a broker writes, which is why it can stamp a batch in place
without recomputing the checksum. See docs/format.md for the full description.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

BytesLike = bytes | bytearray | memoryview

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61

# The part a broker stamps: base_offset, batch_length, partition_leader_epoch.
STAMP = struct.Struct(">qii")
STAMP_SIZE = STAMP.size  # 16

BASE_OFFSET_AT = 0
LENGTH_AT = 8
PARTITION_LEADER_EPOCH_AT = 12
MAGIC_AT = 16
CRC_AT = 17
ATTRIBUTES_AT = 21
CRC_COVERS_FROM = ATTRIBUTES_AT

# Bytes before ``batch_length`` counts: base_offset + batch_length itself.
LOG_OVERHEAD = 12
# Smallest legal batch_length: the rest of the header and an empty body.
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD

MAGIC = 1

# attributes
COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08  # 0: CreateTime, 1: LogAppendTime
TRANSACTIONAL_MASK = 0x10  # reserved
CONTROL_MASK = 0x20  # reserved

NO_PARTITION_LEADER_EPOCH = -1
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1

CRC = struct.Struct(">I")


class BatchHeader(NamedTuple):
    """Every header field, read without touching the body."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size_in_bytes(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression_id(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_MASK)
