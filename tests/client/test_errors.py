"""The error table: one class per Kafka code, and the flags retry logic reads."""

from __future__ import annotations

import inspect

import pytest

from client import errors
from client.errors import (
    CorruptRecordError,
    LogServerError,
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
    StorageError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
    all_error_classes,
    error_class_for_code,
    error_for_code,
)

REGISTRY = all_error_classes()


def test_the_registry_is_not_empty_and_holds_the_root_code():
    assert REGISTRY[-1] is UnknownServerError
    assert len(REGISTRY) > 10


def test_each_registered_class_carries_its_own_code():
    for code, cls in REGISTRY.items():
        assert cls.code == code, cls.__name__


def test_codes_and_names_are_unique():
    classes = list(REGISTRY.values())
    assert len({cls.code for cls in classes}) == len(classes)
    assert len({cls.name for cls in classes}) == len(classes)
    assert len(set(classes)) == len(classes)


def test_every_error_class_in_the_module_is_registered():
    defined = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, LogServerError) and cls.__module__ == errors.__name__
    }

    assert defined - {LogServerError} == set(REGISTRY.values())


def test_all_error_classes_returns_a_copy():
    copy = all_error_classes()
    copy[12345] = UnknownServerError

    assert 12345 not in all_error_classes()
    assert error_class_for_code(12345) is UnknownServerError


@pytest.mark.parametrize("code", sorted(REGISTRY))
def test_a_code_maps_back_to_its_class(code):
    cls = REGISTRY[code]

    assert error_class_for_code(code) is cls
    error = error_for_code(code)
    assert type(error) is cls
    assert error.code == code
    assert isinstance(error, LogServerError)
    assert isinstance(error, Exception)


@pytest.mark.parametrize("code", sorted(REGISTRY))
def test_a_code_with_a_message_keeps_the_message(code):
    error = error_for_code(code, "partition topic-0 said so")

    assert error.message == "partition topic-0 said so"
    assert "partition topic-0 said so" in str(error)


@pytest.mark.parametrize("code", [0, -2, 30, 9999, 2**31 - 1])
def test_an_unknown_code_becomes_unknown_server_error_carrying_the_code(code):
    error = error_for_code(code)

    assert type(error) is UnknownServerError
    assert error.code == -1
    assert str(code) in error.message
    assert str(code) in str(error)
    assert error_class_for_code(code) is UnknownServerError


def test_an_unknown_code_keeps_the_message_too():
    error = error_for_code(9999, "something odd")

    assert "9999" in str(error)
    assert "something odd" in str(error)


KAFKA_FLAGS = [
    # name, code, class, retriable, invalid_metadata
    ("NOT_LEADER_OR_FOLLOWER", 6, NotLeaderOrFollowerError, True, True),
    ("UNKNOWN_TOPIC_OR_PARTITION", 3, UnknownTopicOrPartitionError, True, True),
    ("CORRUPT_MESSAGE", 2, CorruptRecordError, True, False),
    ("OFFSET_OUT_OF_RANGE", 1, OffsetOutOfRangeError, False, False),
    ("KAFKA_STORAGE_ERROR", 56, StorageError, True, False),
]


@pytest.mark.parametrize(
    ("name", "code", "cls", "retriable", "invalid_metadata"),
    KAFKA_FLAGS,
    ids=[row[0] for row in KAFKA_FLAGS],
)
def test_codes_names_and_flags_match_kafka(name, code, cls, retriable, invalid_metadata):
    error = error_for_code(code)

    assert type(error) is cls
    assert error.name == name
    assert error.retriable is retriable
    assert error.invalid_metadata is invalid_metadata


def test_invalid_metadata_implies_retriable():
    # In Kafka, InvalidMetadataException extends RetriableException.
    for cls in REGISTRY.values():
        if cls.invalid_metadata:
            assert cls.retriable, cls.__name__


def test_the_root_error_is_unknown_server_error_and_not_retriable():
    error = LogServerError()

    assert error.code == -1
    assert error.name == "UNKNOWN_SERVER_ERROR"
    assert not error.retriable
    assert not error.invalid_metadata


@pytest.mark.parametrize("cls", sorted(REGISTRY.values(), key=lambda c: c.code))
def test_str_includes_the_name_and_the_message(cls):
    error = cls("broker 3 is not the leader of topic-0")

    assert str(error) == f"[{cls.name}] broker 3 is not the leader of topic-0"
    assert error.message == "broker 3 is not the leader of topic-0"
    assert error.args == ("broker 3 is not the leader of topic-0",)


@pytest.mark.parametrize("cls", sorted(REGISTRY.values(), key=lambda c: c.code))
def test_str_without_a_message_is_the_name(cls):
    error = cls()

    assert str(error) == cls.name
    assert error.message == cls.name


def test_errors_can_be_raised_and_caught_by_their_base():
    with pytest.raises(LogServerError) as excinfo:
        raise error_for_code(6, "moved")

    assert isinstance(excinfo.value, NotLeaderOrFollowerError)
    assert excinfo.value.retriable
    assert "NOT_LEADER_OR_FOLLOWER" in str(excinfo.value)
    assert "moved" in str(excinfo.value)
