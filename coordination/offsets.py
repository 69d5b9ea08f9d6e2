"""Committed consumer-group offsets: the rules both coordinators share.

A group id is any string of 1 to 255 characters without control characters
(nor lone surrogates, which have no UTF-8 form). That includes ``/``, ``.``,
``..`` and a 255-character id, none of which is a valid znode name or file
name; ``encode_group`` turns an id into one path segment that is::

    quote(group, safe="")          percent-encode every byte of its UTF-8 form but
                                   A-Z a-z 0-9 _ . - ~
    a leading "." becomes "%2E"    so never "." nor "..", and never a hidden file

``decode_group`` inverts it, and refuses (None) every segment that
``encode_group`` would not have produced: a znode or file name found in the
store is either exactly one group's, or not ours.

An offset is stored as ``{"offset": N, "metadata": "…", "commit_timestamp": ms}``
(``offset_fields``); ZooKeeper adds ``"version": 1`` to each znode, the
standalone file has one version for all.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from client.errors import InvalidGroupIdError, InvalidRequestError, InvalidTopicError
from client.topics import validate_topic_name
from coordination.model import CommittedOffset, OffsetFence

__all__ = [
    "MAX_GROUP_ID_LENGTH",
    "check_fence",
    "check_offsets",
    "decode_group",
    "encode_group",
    "is_partition_key",
    "is_partition_name",
    "offset_fields",
    "parse_offset_fields",
    "validate_group_id",
]

MAX_GROUP_ID_LENGTH = 255


def validate_group_id(group: object) -> str:
    """Return ``group`` if it is a legal group id; raise ``InvalidGroupIdError`` saying why."""
    if not isinstance(group, str):
        raise InvalidGroupIdError(f"group id must be a string, not {type(group).__name__}")
    if not group:
        raise InvalidGroupIdError("group id is empty: it must be 1 to 255 characters")
    if len(group) > MAX_GROUP_ID_LENGTH:
        raise InvalidGroupIdError(
            f"group id {group[:40]!r}… is {len(group)} characters long: "
            f"at most {MAX_GROUP_ID_LENGTH} characters"
        )
    for char in group:
        category = unicodedata.category(char)
        if category == "Cc":
            raise InvalidGroupIdError(
                f"group id {group!r} contains the control character {char!r}: not allowed"
            )
        if category == "Cs":
            raise InvalidGroupIdError(
                f"group id {group!r} contains a lone surrogate {char!r}: not valid unicode"
            )
    return group


def encode_group(group: str) -> str:
    """``group`` (a valid id) as one znode or file name segment (see the module doc)."""
    encoded = quote(group, safe="")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded


def decode_group(segment: str) -> str | None:
    """The group whose ``encode_group`` is ``segment``; None if there is none."""
    try:
        group = unquote(segment, errors="strict")
        validate_group_id(group)
    except (UnicodeDecodeError, InvalidGroupIdError):
        return None
    return group if encode_group(group) == segment else None


def is_partition_key(key: object) -> bool:
    """Whether ``key`` is a ``(topic, partition)`` that could have a committed offset."""
    if not isinstance(key, tuple) or len(key) != 2:
        return False
    topic, partition = key
    if type(partition) is not int or partition < 0:
        return False
    try:
        validate_topic_name(topic)
    except InvalidTopicError:
        return False
    return True


def is_partition_name(name: str) -> bool:
    """Whether ``name`` is a partition number as stored: decimal digits, no leading zero."""
    return name.isascii() and name.isdigit() and str(int(name)) == name


def check_offsets(
    group: str, offsets: Mapping[tuple[str, int], CommittedOffset]
) -> dict[tuple[str, int], CommittedOffset]:
    """A plain copy of ``offsets``, keys as ``(topic, partition)`` tuples, after refusing
    anything that cannot be stored: ``InvalidTopicError`` for a bad topic name,
    ``InvalidRequestError`` for the rest, naming the partition."""
    if not isinstance(offsets, Mapping):
        raise InvalidRequestError(f"group {group!r}: offsets must be a mapping, not {offsets!r}")
    checked: dict[tuple[str, int], CommittedOffset] = {}
    for key, value in offsets.items():
        if not isinstance(key, tuple) or len(key) != 2:
            raise InvalidRequestError(f"group {group!r}: {key!r} is not a (topic, partition)")
        topic, partition = key
        validate_topic_name(topic)
        where = f"group {group!r}, {topic}-{partition}"
        if type(partition) is not int or partition < 0:
            raise InvalidRequestError(f"{where}: partition {partition!r} is not an integer >= 0")
        if not isinstance(value, CommittedOffset):
            raise InvalidRequestError(f"{where}: {value!r} is not a CommittedOffset")
        if type(value.offset) is not int or value.offset < 0:
            raise InvalidRequestError(f"{where}: offset {value.offset!r} is not an integer >= 0")
        if not isinstance(value.metadata, str):
            raise InvalidRequestError(f"{where}: metadata {value.metadata!r} is not a string")
        if type(value.commit_timestamp) is not int or value.commit_timestamp < 0:
            raise InvalidRequestError(
                f"{where}: commit_timestamp {value.commit_timestamp!r} is not an integer >= 0"
            )
        checked[(topic, partition)] = value
    return checked


def check_fence(group: str, fence: object) -> OffsetFence | None:
    """``fence`` if it is None or a well-formed ``OffsetFence``; ``InvalidRequestError``
    otherwise. (A fence naming a partition that does not exist is well-formed: a commit
    with it fails with ``NotCoordinatorError``.)"""
    if fence is None:
        return None
    if (
        not isinstance(fence, OffsetFence)
        or not isinstance(fence.topic, str)
        or type(fence.partition) is not int
        or type(fence.version) is not int
        or fence.version < 0
    ):
        raise InvalidRequestError(f"group {group!r}: fence {fence!r} is not an OffsetFence")
    return fence


def offset_fields(offset: CommittedOffset) -> dict[str, Any]:
    return {
        "offset": offset.offset,
        "metadata": offset.metadata,
        "commit_timestamp": offset.commit_timestamp,
    }


def parse_offset_fields(data: Any) -> CommittedOffset:
    """The inverse of ``offset_fields``; ``ValueError`` (or a lookup error) for anything off."""
    if not isinstance(data, dict):
        raise ValueError("an offset is not a JSON object")
    offset, metadata, timestamp = data["offset"], data["metadata"], data["commit_timestamp"]
    if type(offset) is not int or offset < 0:
        raise ValueError(f"offset {offset!r} is not an integer >= 0")
    if not isinstance(metadata, str):
        raise ValueError(f"metadata {metadata!r} is not a string")
    if type(timestamp) is not int or timestamp < 0:
        raise ValueError(f"commit_timestamp {timestamp!r} is not an integer >= 0")
    return CommittedOffset(offset, metadata, timestamp)
