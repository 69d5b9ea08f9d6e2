"""The record-batch format: defined once here, imported by the broker and the tools."""

from client.record.batch import RecordBatch, iter_batches, read_header, stamp_batch
from client.record.builder import BatchBuilder, build_batch
from client.record.compression import Compression
from client.record.layout import HEADER_SIZE, LOG_OVERHEAD, MAGIC, BatchHeader
from client.record.record import Record
from client.record.validation import IncompleteBatchError, check_batch, compute_crc

__all__ = [
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "MAGIC",
    "BatchBuilder",
    "BatchHeader",
    "Compression",
    "IncompleteBatchError",
    "Record",
    "RecordBatch",
    "build_batch",
    "check_batch",
    "compute_crc",
    "iter_batches",
    "read_header",
    "stamp_batch",
]
