"""The producer: batching per partition, compression, retries, Kafka's partitioning."""

from client.producer.producer import Producer, ProducerClosedError
from client.producer.record_metadata import RecordFuture, RecordMetadata

__all__ = ["Producer", "ProducerClosedError", "RecordFuture", "RecordMetadata"]
