"""Bounds on ids, with the codes and messages docs/groups.md names."""

from __future__ import annotations

import pytest

from client.errors import InvalidGroupIdError, InvalidRequestError, UnknownMemberIdError
from logserver.groups.validation import (
    check_group_id,
    check_instance_id,
    check_member_id,
    new_member_id,
)


def test_group_ids():
    assert check_group_id("a" * 255) == "a" * 255
    with pytest.raises(InvalidGroupIdError, match="at most 255 characters"):
        check_group_id("g" * 10_000)
    with pytest.raises(InvalidGroupIdError):
        check_group_id("")
    with pytest.raises(InvalidGroupIdError):
        check_group_id("bad\x00id")


def test_member_ids():
    assert check_member_id("") == ""
    with pytest.raises(UnknownMemberIdError, match="at most 255 characters"):
        check_member_id("m" * 10_000)
    with pytest.raises(UnknownMemberIdError, match="control"):
        check_member_id("m\n")
    with pytest.raises(InvalidRequestError):
        check_member_id(None)


def test_instance_ids():
    assert check_instance_id(None) is None
    with pytest.raises(InvalidRequestError, match="at most 255 characters"):
        check_instance_id("i" * 256)
    with pytest.raises(InvalidRequestError):
        check_instance_id("")


def test_new_member_ids_are_valid_whatever_the_client_id():
    for prefix in (None, "", "app", "x" * 10_000, "tab\there\x00"):
        member_id = new_member_id(prefix)
        assert check_member_id(member_id) == member_id
    assert new_member_id("app").startswith("app-")
