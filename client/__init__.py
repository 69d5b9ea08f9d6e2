"""The logserver client library: producer, consumer and admin, asyncio and blocking.

It also holds the one definition of the record-batch format (``client.record``),
the wire protocol (``client.protocol``) and the error table (``client.errors``),
which the broker imports, the way Kafka's clients module does.
"""

from client import errors
from client.admin import Admin
from client.blocking_admin import BlockingAdmin
from client.blocking_consumer import BlockingConsumer
from client.blocking_producer import BlockingProducer
from client.consumer import (
    CommitFailedError,
    Consumer,
    ConsumerRecord,
    MaxPollIntervalExceededError,
)
from client.group.dead_letter import BlockingDeadLetterQueue, DeadLetterQueue
from client.producer import Producer, RecordFuture, RecordMetadata
from client.record import BatchBuilder, Compression, Record, RecordBatch, iter_batches
from client.topic_partition import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = [
    "Admin",
    "BatchBuilder",
    "BlockingAdmin",
    "BlockingConsumer",
    "BlockingDeadLetterQueue",
    "BlockingProducer",
    "CommitFailedError",
    "Compression",
    "Consumer",
    "ConsumerRecord",
    "DeadLetterQueue",
    "MaxPollIntervalExceededError",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "Producer",
    "Record",
    "RecordBatch",
    "RecordFuture",
    "RecordMetadata",
    "TopicPartition",
    "errors",
    "iter_batches",
]
