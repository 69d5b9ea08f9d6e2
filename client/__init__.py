"""The logserver client library.

It also holds the one definition of the record-batch format (``client.record``)
and the error table (``client.errors``), which the broker imports, the way
Kafka's clients module does. The producer, consumer and admin clients arrive
with the broker (issue 3).
"""

from client import errors
from client.record import BatchBuilder, Compression, Record, RecordBatch, iter_batches

__all__ = ["BatchBuilder", "Compression", "Record", "RecordBatch", "errors", "iter_batches"]
