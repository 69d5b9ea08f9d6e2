"""The rules both coordinators share for committed offsets (``coordination.offsets``), and the
standalone file names (``coordination.embedded_offsets``): group ids as one path segment."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from client.errors import InvalidGroupIdError
from coordination.embedded_offsets import file_name, group_of
from coordination.offsets import (
    MAX_GROUP_ID_LENGTH,
    decode_group,
    encode_group,
    is_partition_name,
    validate_group_id,
)

group_ids = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=MAX_GROUP_ID_LENGTH
)


@given(group_ids)
@example(".")
@example("..")
@example("/")
@example("../x")
@example(".hidden")
@example("%2E")
@example("a%2Fb")
@example("~_-.")
@example("x" * 255)
@example("\U0010ffff" * 255)
def test_a_group_id_encodes_to_one_segment_and_back(group):
    encoded = encode_group(validate_group_id(group))

    assert decode_group(encoded) == group
    assert encoded
    assert encoded.isascii()
    assert "/" not in encoded
    assert encoded not in (".", "..")
    assert not encoded.startswith(".")
    assert "\x00" not in encoded


@given(group_ids, group_ids)
def test_different_groups_never_share_a_segment_or_a_file(one, other):
    if one != other:
        assert encode_group(one) != encode_group(other)
        assert file_name(one) != file_name(other)


@given(st.text(max_size=300))
@example("a%2fb")
@example("%2e")
@example(".")
@example("%FF")
@example("%")
@example("")
def test_only_a_segment_encode_group_makes_decodes(segment):
    group = decode_group(segment)

    assert group is None or encode_group(group) == segment


@given(group_ids)
@example("x" * 255)
@example("/" * 255)
@example("\U0010ffff" * 255)
def test_a_file_name_fits_and_says_whose_it_is_when_it_can(group):
    name = file_name(group)

    assert len(name.encode()) <= 255
    assert name.endswith(".json")
    assert not name.startswith(".")
    assert "/" not in name
    assert group_of(name) in (group, None)
    if "+" not in name:
        assert group_of(name) == group


@pytest.mark.parametrize(
    ("group", "match"),
    [
        ("", "empty"),
        ("x" * 256, "256 characters long: at most 255 characters"),
        ("a\x00b", "control character"),
        ("a\x85b", "control character"),  # C1: NEXT LINE
        ("\udfff", "surrogate"),
        (None, "must be a string"),
        (b"app", "must be a string"),
    ],
)
def test_illegal_group_ids(group, match):
    with pytest.raises(InvalidGroupIdError, match=match):
        validate_group_id(group)


def test_a_long_group_id_is_not_quoted_whole_in_the_message():
    with pytest.raises(InvalidGroupIdError) as info:
        validate_group_id("x" * 10_000)

    assert len(str(info.value)) < 200


@pytest.mark.parametrize("group", ["x" * 255, " ", "\u200b", "a\u2028b", "🚀", "\ufeff"])
def test_legal_group_ids(group):
    assert unicodedata.category(group[0]) not in ("Cc", "Cs")
    assert validate_group_id(group) == group


@pytest.mark.parametrize(
    ("name", "expected"),
    [("0", True), ("17", True), ("007", False), ("-1", False), ("", False), ("²", False)],
)
def test_partition_names(name, expected):
    assert is_partition_name(name) is expected
