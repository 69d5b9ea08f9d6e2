"""Subscription and assignment bytes: the layout of docs/groups.md, round trips, and refusals."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.errors import InconsistentGroupProtocolError, LogServerError
from client.group.member_metadata import (
    VERSION,
    Assignment,
    MemberMetadataError,
    Subscription,
)
from client.topic_partition import TopicPartition

TOPIC_NAMES = st.text(min_size=1, max_size=20)
PARTITIONS = st.builds(TopicPartition, TOPIC_NAMES, st.integers(0, 2**31 - 1))
USER_DATA = st.none() | st.binary(max_size=64)
SUBSCRIPTIONS = st.builds(
    Subscription,
    topics=st.lists(TOPIC_NAMES, max_size=8).map(tuple),
    user_data=USER_DATA,
    owned=st.lists(PARTITIONS, max_size=20).map(tuple),
)
ASSIGNMENTS = st.builds(
    Assignment, partitions=st.lists(PARTITIONS, max_size=20).map(tuple), user_data=USER_DATA
)


def pack(body) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


def test_subscription_layout_is_the_documented_one():
    subscription = Subscription(
        topics=("orders", "clicks"),
        user_data=b"\x01",
        owned=(tp("orders", 2), tp("clicks", 0), tp("orders", 0)),
    )

    assert msgpack.unpackb(subscription.encode()) == {
        "version": VERSION,
        "topics": ["clicks", "orders"],
        "user_data": b"\x01",
        "owned": [["clicks", [0]], ["orders", [0, 2]]],
    }


def test_assignment_layout_is_the_documented_one():
    assignment = Assignment(partitions=(tp("b", 1), tp("a", 3), tp("b", 0)))

    assert msgpack.unpackb(assignment.encode()) == {
        "version": 1,
        "partitions": [["a", [3]], ["b", [0, 1]]],
        "user_data": None,
    }


def test_values_are_normalised_so_equal_ones_compare_and_encode_equal():
    first = Subscription(["b", "a", "b"], bytearray(b"x"), [("t", 1), ("t", 0), ("t", 1)])
    second = Subscription(("a", "b"), b"x", (tp("t", 0), tp("t", 1)))

    assert first == second
    assert first.encode() == second.encode()
    assert first.topics == ("a", "b")
    assert first.owned == (tp("t", 0), tp("t", 1))
    assert isinstance(first.owned[0], TopicPartition)
    assert Assignment([("t", 2), ("s", 0)]).partitions == (tp("s", 0), tp("t", 2))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Subscription("orders"),
        lambda: Subscription((1,)),
        lambda: Subscription(("t",), user_data="text"),
        lambda: Subscription(("t",), owned=(("t", -1),)),
        lambda: Subscription(("t",), owned=(("t", True),)),
        lambda: Assignment(((b"t", 0),)),
        lambda: Assignment((("t", 2**31),)),
    ],
)
def test_bad_values_are_refused_when_built(make):
    with pytest.raises(TypeError):
        make()


@given(SUBSCRIPTIONS)
def test_a_subscription_round_trips(subscription):
    assert Subscription.decode(subscription.encode()) == subscription


@given(ASSIGNMENTS)
def test_an_assignment_round_trips(assignment):
    assert Assignment.decode(assignment.encode()) == assignment


def test_decode_takes_any_bytes_like():
    data = Assignment((tp("t", 0),)).encode()

    assert Assignment.decode(bytearray(data)) == Assignment.decode(memoryview(data))


def test_a_newer_version_with_fields_we_do_not_know_is_read():
    subscription = {
        "version": 7,
        "topics": ["t"],
        "user_data": None,
        "owned": [["t", [1]]],
        "rack_id": "eu-west-1a",
        "generation": 12,
    }
    assignment = {"version": 2, "partitions": [["t", [0]]], "user_data": b"u", "epoch": [1, 2]}

    assert Subscription.decode(pack(subscription)) == Subscription(("t",), None, (tp("t", 1),))
    assert Assignment.decode(pack(assignment)) == Assignment((tp("t", 0),), b"u")


def test_optional_fields_may_be_absent():
    assert Subscription.decode(pack({"version": 1, "topics": ["t"]})) == Subscription(("t",))
    assert Assignment.decode(pack({"version": 1, "partitions": []})) == Assignment(())


def test_the_error_is_a_group_protocol_error():
    with pytest.raises(MemberMetadataError) as caught:
        Subscription.decode(b"\xc1")

    assert isinstance(caught.value, InconsistentGroupProtocolError)
    assert isinstance(caught.value, LogServerError)
    assert caught.value.code == 23
    assert "subscription" in str(caught.value)


VALID_SUBSCRIPTION = {"version": 1, "topics": ["t"], "user_data": None, "owned": []}
VALID_ASSIGNMENT = {"version": 1, "partitions": [["t", [0]]], "user_data": None}


_DROP = object()  # a key to leave out


def _with(base: dict, **changes) -> bytes:
    body = {**base, **changes}
    return pack({k: v for k, v in body.items() if v is not _DROP})


MALFORMED_SUBSCRIPTIONS = {
    "empty": b"",
    "reserved byte": b"\xc1",
    "truncated": Subscription(("topic",), owned=(tp("topic", 3),)).encode()[:-3],
    "trailing bytes": Subscription(("t",)).encode() + b"\x00",
    "not a map": pack(["t"]),
    "integer keys": pack({1: 1}),
    "invalid utf-8": b"\x81\xa7version\xa2\xff\xfe",
    "no version": _with(VALID_SUBSCRIPTION, version=_DROP),
    "version 0": _with(VALID_SUBSCRIPTION, version=0),
    "version as text": _with(VALID_SUBSCRIPTION, version="1"),
    "version as bool": _with(VALID_SUBSCRIPTION, version=True),
    "no topics": _with(VALID_SUBSCRIPTION, topics=_DROP),
    "topics not a list": _with(VALID_SUBSCRIPTION, topics="t"),
    "topic not text": _with(VALID_SUBSCRIPTION, topics=["t", 5]),
    "user_data as text": _with(VALID_SUBSCRIPTION, user_data="u"),
    "owned not a list": _with(VALID_SUBSCRIPTION, owned={"t": [0]}),
    "owned entry too short": _with(VALID_SUBSCRIPTION, owned=[["t"]]),
    "owned partitions not a list": _with(VALID_SUBSCRIPTION, owned=[["t", 0]]),
    "negative partition": _with(VALID_SUBSCRIPTION, owned=[["t", [-1]]]),
    "partition past int32": _with(VALID_SUBSCRIPTION, owned=[["t", [2**31]]]),
    "partition as float": _with(VALID_SUBSCRIPTION, owned=[["t", [1.0]]]),
    "deeply nested": b"\x91" * 100_000,
}


@pytest.mark.parametrize("data", MALFORMED_SUBSCRIPTIONS.values(), ids=MALFORMED_SUBSCRIPTIONS)
def test_malformed_subscriptions_are_refused(data):
    with pytest.raises(MemberMetadataError):
        Subscription.decode(data)


MALFORMED_ASSIGNMENTS = {
    "no partitions": _with(VALID_ASSIGNMENT, partitions=_DROP),
    "partitions null": _with(VALID_ASSIGNMENT, partitions=None),
    "topic not text": _with(VALID_ASSIGNMENT, partitions=[[b"t", [0]]]),
    "partition as bool": _with(VALID_ASSIGNMENT, partitions=[["t", [False]]]),
    "user_data as int": _with(VALID_ASSIGNMENT, user_data=3),
    "a subscription": Subscription(("t",)).encode(),
}


@pytest.mark.parametrize("data", MALFORMED_ASSIGNMENTS.values(), ids=MALFORMED_ASSIGNMENTS)
def test_malformed_assignments_are_refused(data):
    with pytest.raises(MemberMetadataError):
        Assignment.decode(data)


@pytest.mark.parametrize("data", ["text", None, 12])
def test_non_bytes_are_refused(data):
    with pytest.raises(MemberMetadataError):
        Subscription.decode(data)


def _decodes_or_refuses(data: bytes) -> None:
    for kind in (Subscription, Assignment):
        with contextlib.suppress(MemberMetadataError):
            kind.decode(data)


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_are_refused_never_anything_else(data):
    _decodes_or_refuses(data)


@given(SUBSCRIPTIONS, st.data())
def test_damaged_encodings_decode_or_are_refused(subscription, data):
    encoded = bytearray(subscription.encode())
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))

    _decodes_or_refuses(bytes(encoded))
    _decodes_or_refuses(bytes(encoded[:cut]))


def test_the_message_says_what_is_wrong():
    with pytest.raises(MemberMetadataError, match=r"partition -1 of 't'"):
        Subscription.decode(MALFORMED_SUBSCRIPTIONS["negative partition"])
    with pytest.raises(MemberMetadataError, match=r"version \(>= 1\): 0"):
        Assignment.decode(_with(VALID_ASSIGNMENT, version=0))
