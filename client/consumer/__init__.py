"""The consumer: assignment, seeking, replay by offset or time, background prefetch."""

from client.consumer.consumer import Consumer, ConsumerRecord

__all__ = ["Consumer", "ConsumerRecord"]
