"""Group placement: Java's String.hashCode, so Kafka users can predict the coordinator."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logserver.groups.placement import coordinator_partition, java_string_hash

# Computed with a real JVM (java 17): (s.hashCode(), (s.hashCode() & 0x7fffffff) % 50).
JAVA = [
    ("", 0, 0),
    ("a", 97, 47),
    ("hello", 99162322, 22),
    ("group-1", 293427299, 49),
    ("Aa", 2112, 12),
    ("polygenelubricants", -2147483648, 0),  # hashCode is Integer.MIN_VALUE
    ("\U0001f600", 1772899, 49),  # outside the BMP: two UTF-16 code units
    ("\u00e9", 233, 33),
    ("my-consumer-group", 1513705513, 13),
    ("orders-processor", 633927594, 44),
    ("\u4e2d\u6587\u7ec4", 20070666, 16),
    ("x\U0001d11ey", 58519255, 5),
    ("console-consumer-12345", 158455506, 6),
]


@pytest.mark.parametrize(("group", "hash_code", "partition"), JAVA)
def test_matches_java(group, hash_code, partition):
    assert java_string_hash(group) == hash_code
    assert coordinator_partition(group, 50) == partition


@given(st.text(max_size=300), st.integers(min_value=1, max_value=10_000))
def test_always_a_valid_partition_and_a_signed_int32(group, partitions):
    assert -(2**31) <= java_string_hash(group) < 2**31
    assert 0 <= coordinator_partition(group, partitions) < partitions


def test_no_partitions_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        coordinator_partition("g", 0)
