"""Which ``__consumer_offsets`` partition, and so which broker, coordinates a group.

Kafka's rule, so a Kafka user can predict the placement::

    partition = (java_string_hash(group_id) & 0x7fffffff) % partitions

``java_string_hash`` is Java's ``String.hashCode``: ``s[0]*31^(n-1) + … + s[n-1]``
over the string's UTF-16 code units (a character outside the BMP counts as its
two surrogates), in 32-bit two's-complement arithmetic.
"""

from __future__ import annotations

__all__ = ["OFFSETS_TOPIC", "coordinator_partition", "java_string_hash"]

OFFSETS_TOPIC = "__consumer_offsets"
"""The internal topic whose partition leaders coordinate the groups; it holds no data."""

_MASK32 = 0xFFFFFFFF


def java_string_hash(text: str) -> int:
    """Java's ``text.hashCode()``: a signed 32-bit integer."""
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & _MASK32
    return h - (1 << 32) if h & 0x80000000 else h


def coordinator_partition(group_id: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition of ``group_id`` among ``partitions`` (>= 1)."""
    if partitions < 1:
        raise ValueError(f"{partitions} partitions: there must be at least one")
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions
