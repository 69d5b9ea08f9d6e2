"""Choosing a partition for a record, the way Kafka's Java producer does.

A keyed record must land on the partition Kafka would pick for the same key and
partition count, so data produced by this client and by Kafka clients stays
co-partitioned (joins, per-key ordering, compacted topics). That means hashing
with Kafka's exact ``Utils.murmur2`` and reducing it exactly as
``BuiltInPartitioner.partitionForKey`` does::

    partition = toPositive(murmur2(key)) % numPartitions

Records without a key use the sticky behaviour of KIP-480: stay on one random
partition until its batch is closed, then move on, so unkeyed traffic fills
whole batches instead of spraying one record into every partition.
"""

from __future__ import annotations

import random
import struct
import threading
from collections.abc import Callable

__all__ = ["StickyPartitioner", "default_partition", "murmur2", "to_positive"]

# One precompiled little-endian "<nI" unpacker per block count for typical key sizes
# (up to 256 bytes); a longer key compiles its own, cheap next to hashing that many blocks.
# A tuple, not a lazily filled dict, so lookups are lock-free and the memory is fixed.
_MAX_CACHED_BLOCKS = 64
_UNPACKERS: tuple[Callable[[bytes], tuple[int, ...]], ...] = tuple(
    struct.Struct(f"<{n}I").unpack_from for n in range(_MAX_CACHED_BLOCKS + 1)
)


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: the 32-bit MurmurHash2 behind the default key partitioner.

    Returns Kafka's value as a signed 32-bit int (a Java ``int``) so it can be compared with
    Kafka's own numbers. Any bytes-like object (``bytearray``, ``memoryview``) works.
    """
    # Constants are inlined literals (seed 0x9747b28c, m 0x5bd1e995, r 24): a constant load
    # is cheaper than a global lookup in this hot loop. Python ints never overflow, so every
    # product is masked back to 32 bits, which is what Java's int arithmetic does implicitly.
    length = len(data)
    blocks = length >> 2
    h = 0x9747B28C ^ length
    unpack = (
        _UNPACKERS[blocks]
        if blocks <= _MAX_CACHED_BLOCKS
        else struct.Struct(f"<{blocks}I").unpack_from
    )
    for k in unpack(data):
        k = (k * 0x5BD1E995) & 0xFFFFFFFF
        # Java: k ^= k >>> 24; k *= m; h *= m; h ^= k. The low 32 bits of a xor are the xor
        # of the low 32 bits, so one mask covers both products.
        h = (h * 0x5BD1E995 ^ (k ^ k >> 24) * 0x5BD1E995) & 0xFFFFFFFF
    tail = length & 3
    if tail:
        # The fall-through switch xors bytes 2, 1, 0 in at <<16, <<8, <<0, which is the tail
        # read as one little-endian int; then h *= m.
        h = ((h ^ int.from_bytes(data[length - tail :], "little")) * 0x5BD1E995) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0x5BD1E995) & 0xFFFFFFFF
    h ^= h >> 15
    return (h ^ 0x80000000) - 0x80000000  # reinterpret as a signed Java int


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not ``abs``, which differs).

    Using Kafka's exact reduction matters: ``abs`` would send negative hashes elsewhere.
    """
    return n & 0x7FFFFFFF


def default_partition(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's producer picks for ``key`` (``BuiltInPartitioner.partitionForKey``).

    Same key and partition count, same partition as a Java producer, so keyed data written
    by either client lands together.
    """
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, got {num_partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class StickyPartitioner:
    """Partitions for records without a key, sticky per topic as in Kafka (KIP-480).

    Each topic keeps one current partition, chosen at random. ``partition`` returns it;
    the producer calls ``next_batch`` when it closes a batch for a partition, and if that
    partition is still the current one the topic moves to a different random partition.
    Sticking until a batch is full gives larger batches and lower latency than spreading
    unkeyed records over every partition, which is why Kafka switched to it.

    Pass ``rng`` (a seeded ``random.Random``) for reproducible tests.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._current: dict[str, int] = {}
        # Guards the check-and-switch in ``next_batch`` (Kafka's ConcurrentMap.replace), so
        # two threads closing the same batch switch the topic once, not twice.
        self._lock = threading.Lock()

    def partition(self, topic: str, num_partitions: int) -> int:
        """The topic's current partition, picking one at random the first time."""
        _check_partitions(num_partitions)
        current = self._current.get(topic)
        if current is not None and current < num_partitions:
            return current
        with self._lock:
            current = self._current.get(topic)
            # Also re-pick when the remembered partition is out of range for the count
            # given now: never hand out a partition that does not exist.
            if current is None or current >= num_partitions:
                current = self._rng.randrange(num_partitions)
                self._current[topic] = current
            return current

    def next_batch(self, topic: str, num_partitions: int, previous: int) -> int:
        """The producer closed a batch for ``previous``: move on if it is still current.

        Returns the topic's current partition afterwards. If ``previous`` is no longer the
        current partition (another batch already triggered a switch) nothing changes, as in
        Kafka's ``StickyPartitionCache.nextPartition``. With one partition it stays 0.
        """
        _check_partitions(num_partitions)
        with self._lock:
            current = self._current.get(topic)
            if current is None or current >= num_partitions:
                current = self._rng.randrange(num_partitions)
            elif current == previous and num_partitions > 1:
                # Uniform over the other num_partitions - 1 partitions, without a retry loop.
                pick = self._rng.randrange(num_partitions - 1)
                current = pick + (pick >= current)
            self._current[topic] = current
            return current


def _check_partitions(num_partitions: int) -> None:
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, got {num_partitions}")
