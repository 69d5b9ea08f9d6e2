"""The consumer: groups and subscriptions, assignment, seeking, replay, background prefetch."""

from client.consumer.consumer import Consumer, ConsumerRecord
from client.consumer.offsets import CommitFailedError
from client.group.membership import MaxPollIntervalExceededError

__all__ = ["CommitFailedError", "Consumer", "ConsumerRecord", "MaxPollIntervalExceededError"]
