"""The one look the broker takes inside assignment bytes: this project's msgpack format."""

from __future__ import annotations

import msgpack
import pytest

from logserver.groups.ownership import owned_partitions


def pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def test_our_format_names_the_partitions():
    assignment = pack({"version": 1, "partitions": [["a", [0, 2]], ["b", []]], "user_data": b"x"})
    assert owned_partitions(assignment) == {("a", 0), ("a", 2)}


def test_an_empty_assignment_in_our_format_owns_nothing():
    assert owned_partitions(pack({"version": 1, "partitions": [], "user_data": None})) == set()


@pytest.mark.parametrize(
    "assignment",
    [
        b"",  # no assignment at all
        b"\x00\x01\x00\x00\x00\x01",  # Kafka's ConsumerProtocol bytes
        b"\xc1",  # not msgpack
        pack({"version": 1, "partitions": [["a", [0]]]}) + b"trailing",
        pack([1, 2, 3]),
        pack({"partitions": [["a", [0]]]}),  # no version
        pack({"version": "1", "partitions": [["a", [0]]]}),
        pack({"version": 1, "partitions": {"a": [0]}}),
        pack({"version": 1, "partitions": [["a", 0]]}),
        pack({"version": 1, "partitions": [[1, [0]]]}),
        pack({"version": 1, "partitions": [["a", ["0"]]]}),
        pack({"version": 1, "partitions": [["a", [0], "extra"]]}),
    ],
)
def test_anything_else_is_unknown(assignment):
    assert owned_partitions(assignment) is None
