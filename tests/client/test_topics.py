"""Topic names: Kafka's rules, and errors that name the offending topic."""

from __future__ import annotations

import pytest

from client.errors import InvalidTopicError
from client.topics import MAX_TOPIC_NAME_LENGTH, validate_topic_name


@pytest.mark.parametrize(
    "name",
    ["a", "orders", "Orders.v2_final-1", "0", "-", "_", "...", "a..b", "x" * 249, "__consumer"],
)
def test_legal_names_are_returned(name):
    assert validate_topic_name(name) == name


def test_the_limit_is_kafkas():
    assert MAX_TOPIC_NAME_LENGTH == 249


@pytest.mark.parametrize(
    "name",
    [".", "..", "a/b", "../etc", "a b", "a\\b", "a:b", "a\nb", "orders\n", "caf\u00e9", "a*"],
)
def test_illegal_names_are_refused_naming_the_topic(name):
    with pytest.raises(InvalidTopicError) as info:
        validate_topic_name(name)

    assert repr(name) in str(info.value)


def test_an_empty_name_is_refused():
    with pytest.raises(InvalidTopicError, match="empty"):
        validate_topic_name("")


def test_a_name_of_250_characters_is_refused_with_its_length():
    name = "x" * 250

    with pytest.raises(InvalidTopicError, match="250 characters") as info:
        validate_topic_name(name)

    assert name in str(info.value)


@pytest.mark.parametrize("name", [None, 1, b"orders", ["orders"], 1.5])
def test_a_name_that_is_not_a_string_is_refused(name):
    with pytest.raises(InvalidTopicError, match=type(name).__name__):
        validate_topic_name(name)


def test_the_error_carries_kafkas_code():
    with pytest.raises(InvalidTopicError) as info:
        validate_topic_name("a/b")

    assert info.value.code == 17
    assert not info.value.retriable
