"""Key partitioning matches Kafka's Java producer; unkeyed records stick per topic (KIP-480)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.partitioner import StickyPartitioner, default_partition, murmur2, to_positive

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# apache/kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# testMurmur2 (read at commit f55581dc73953c3509a4702433aeeeddc2970779). Signed Java ints.
# Lengths 2, 6, 24, 26, 48, 3 exercise tails of 2, 2, 0, 2, 0 and 3 bytes.
KAFKA_MURMUR2_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# dpkp/kafka-python, test/test_partitioner.py, test_murmur2_java_compatibility (commit
# da5e8f3bb762bc9d8e67a097e2787a3bab1957c3; the same table is in aio-libs/aiokafka): key ->
# partition out of 1000, "compare with output from Kafka's ... Partitioner". Second-hand, but
# it adds the empty key and 1-byte tails (b"a", b"123456789") that Kafka's own table lacks.
KAFKA_PYTHON_PARTITION_VECTORS = [
    (b"", 681),
    (b"a", 524),
    (b"ab", 434),
    (b"abc", 107),
    (b"123456789", 566),
    (b"\x00 ", 742),
]


def _int(x: int) -> int:
    """Wrap to a Java int, as every Java int operation does."""
    return (x + 2**31) % 2**32 - 2**31


def java_murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2 transliterated line by line, slow on purpose: the oracle."""
    length = len(data)
    seed = _int(0x9747B28C)
    m = 0x5BD1E995
    r = 24
    h = _int(seed ^ length)
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = _int(
            (data[i4 + 0] & 0xFF)
            + ((data[i4 + 1] & 0xFF) << 8)
            + ((data[i4 + 2] & 0xFF) << 16)
            + ((data[i4 + 3] & 0xFF) << 24)
        )
        k = _int(k * m)
        k ^= (k & 0xFFFFFFFF) >> r  # k >>> r
        k = _int(k * m)
        h = _int(h * m)
        h ^= k
    rem = length % 4
    if rem == 3:
        h ^= (data[(length & ~3) + 2] & 0xFF) << 16
    if rem >= 2:
        h ^= (data[(length & ~3) + 1] & 0xFF) << 8
    if rem >= 1:
        h ^= data[length & ~3] & 0xFF
        h = _int(h * m)
    h = _int(h)
    h ^= (h & 0xFFFFFFFF) >> 13
    h = _int(h * m)
    h ^= (h & 0xFFFFFFFF) >> 15
    return _int(h)


# --- murmur2 --------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), KAFKA_MURMUR2_VECTORS)
def test_murmur2_matches_kafka_utils_test(data, expected):
    assert murmur2(data) == expected


@pytest.mark.parametrize(("data", "expected"), KAFKA_MURMUR2_VECTORS)
def test_the_oracle_matches_kafka_utils_test(data, expected):
    assert java_murmur2(data) == expected


@pytest.mark.parametrize(("key", "partition"), KAFKA_PYTHON_PARTITION_VECTORS)
def test_default_partition_matches_the_java_client_out_of_1000(key, partition):
    assert default_partition(key, 1000) == partition


@given(st.binary(max_size=300))
def test_murmur2_matches_the_line_by_line_port(data):
    # max_size 300 crosses the 64-block (256-byte) precompiled-unpacker boundary.
    assert murmur2(data) == java_murmur2(data)


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 255, 256, 257, 259, 260, 261, 4099])
def test_murmur2_at_block_and_cache_boundaries(length):
    data = bytes((i * 131 + 7) & 0xFF for i in range(length))
    assert murmur2(data) == java_murmur2(data)


@given(st.binary(max_size=300))
def test_murmur2_is_a_signed_int32(data):
    assert INT32_MIN <= murmur2(data) <= INT32_MAX


def test_murmur2_accepts_any_bytes_like():
    for data, expected in KAFKA_MURMUR2_VECTORS:
        assert murmur2(bytearray(data)) == expected
        assert murmur2(memoryview(data)) == expected


# --- to_positive and default_partition ------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 0), (5, 5), (INT32_MAX, INT32_MAX), (-1, INT32_MAX), (INT32_MIN, 0), (-5, 2**31 - 5)],
)
def test_to_positive_clears_the_sign_bit_like_kafka(n, expected):
    assert to_positive(n) == expected


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=100_000))
def test_default_partition_is_in_range_and_is_kafkas_formula(key, num_partitions):
    partition = default_partition(key, num_partitions)

    assert 0 <= partition < num_partitions
    assert partition == to_positive(java_murmur2(key)) % num_partitions


def test_default_partition_is_stable():
    assert default_partition(b"key", 3) == default_partition(b"key", 3)


@pytest.mark.parametrize("num_partitions", [0, -1])
def test_default_partition_rejects_no_partitions(num_partitions):
    with pytest.raises(ValueError, match="num_partitions"):
        default_partition(b"key", num_partitions)


# --- StickyPartitioner ----------------------------------------------------------------------


def test_sticky_stays_on_one_partition_until_next_batch():
    sticky = StickyPartitioner(random.Random(1))

    first = sticky.partition("t", 8)

    assert 0 <= first < 8
    assert all(sticky.partition("t", 8) == first for _ in range(100))


def test_next_batch_switches_to_a_different_partition_and_sticks_there():
    sticky = StickyPartitioner(random.Random(2))
    current = sticky.partition("t", 5)

    for _ in range(200):
        switched = sticky.next_batch("t", 5, current)

        assert switched != current
        assert 0 <= switched < 5
        assert sticky.partition("t", 5) == switched
        current = switched


def test_switching_eventually_visits_every_partition():
    sticky = StickyPartitioner(random.Random(3))
    current = sticky.partition("t", 4)
    seen = {current}

    for _ in range(200):
        current = sticky.next_batch("t", 4, current)
        seen.add(current)

    assert seen == {0, 1, 2, 3}


def test_next_batch_for_a_stale_partition_does_not_switch():
    # A batch for an earlier partition closing late must not move the topic off its new one.
    sticky = StickyPartitioner(random.Random(4))
    old = sticky.partition("t", 6)
    new = sticky.next_batch("t", 6, old)

    assert sticky.next_batch("t", 6, old) == new
    assert sticky.partition("t", 6) == new


def test_a_single_partition_topic_always_gets_partition_0():
    sticky = StickyPartitioner(random.Random(5))

    assert sticky.partition("t", 1) == 0
    for _ in range(10):
        assert sticky.next_batch("t", 1, 0) == 0
        assert sticky.partition("t", 1) == 0


def test_topics_are_sticky_independently():
    sticky = StickyPartitioner(random.Random(6))
    a = sticky.partition("a", 10)
    b = sticky.partition("b", 10)

    sticky.next_batch("a", 10, a)

    assert sticky.partition("b", 10) == b


def test_next_batch_before_partition_picks_a_partition():
    sticky = StickyPartitioner(random.Random(7))

    picked = sticky.next_batch("t", 3, 0)

    assert 0 <= picked < 3
    assert sticky.partition("t", 3) == picked


def _sticky_on_partition_at_least(minimum: int, num_partitions: int) -> StickyPartitioner:
    sticky = StickyPartitioner(random.Random(8))
    current = sticky.partition("t", num_partitions)
    while current < minimum:
        current = sticky.next_batch("t", num_partitions, current)
    return sticky


def test_partition_replaces_a_remembered_partition_that_is_out_of_range():
    # Never hand out a partition the caller says does not exist.
    sticky = _sticky_on_partition_at_least(2, num_partitions=100)

    replaced = sticky.partition("t", 2)

    assert replaced in (0, 1)
    assert sticky.partition("t", 2) == replaced


def test_next_batch_replaces_a_remembered_partition_that_is_out_of_range():
    sticky = _sticky_on_partition_at_least(2, num_partitions=100)

    replaced = sticky.next_batch("t", 2, previous=0)

    assert replaced in (0, 1)
    assert sticky.partition("t", 2) == replaced


def test_a_seeded_rng_makes_the_choices_reproducible():
    def run(seed: int) -> list[int]:
        sticky = StickyPartitioner(random.Random(seed))
        picks = [sticky.partition("t", 16)]
        for _ in range(20):
            picks.append(sticky.next_batch("t", 16, picks[-1]))
        return picks

    assert run(42) == run(42)


def test_the_default_rng_works_without_a_seed():
    sticky = StickyPartitioner()

    assert 0 <= sticky.partition("t", 3) < 3


@pytest.mark.parametrize("method", ["partition", "next_batch"])
def test_sticky_rejects_no_partitions(method):
    sticky = StickyPartitioner()
    args = ("t", 0) if method == "partition" else ("t", 0, 0)

    with pytest.raises(ValueError, match="num_partitions"):
        getattr(sticky, method)(*args)
