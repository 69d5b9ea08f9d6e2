"""Bounds on what a group request may carry, each refused with the code docs/groups.md names.

Group ids follow the stores' rule (``coordination.offsets.validate_group_id``:
1 to 255 characters, no control characters), so the coordinator never accepts
a group whose offsets could not be stored. Member ids and group instance ids
get the same bounds.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

from client.errors import InvalidRequestError, UnknownMemberIdError
from coordination.offsets import MAX_GROUP_ID_LENGTH, validate_group_id

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_METADATA_LENGTH",
    "check_group_id",
    "check_instance_id",
    "check_member_id",
    "new_member_id",
]

MAX_ID_LENGTH = MAX_GROUP_ID_LENGTH  # 255, for group, member and instance ids alike
MAX_METADATA_LENGTH = 4096  # characters of offset-commit metadata (Kafka's default)


def check_group_id(group_id: Any) -> str:
    """``group_id`` if valid; ``InvalidGroupIdError`` (24) saying the limit otherwise."""
    return validate_group_id(group_id)


def _problem(value: str) -> str | None:
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long: at most {MAX_ID_LENGTH} characters"
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            return f"contains the character {char!r}: no control characters"
    return None


def check_member_id(member_id: Any) -> str:
    """A member id as sent ("" for a first join); ``UnknownMemberIdError`` (25) when it is
    longer than 255 characters or holds control characters: no member has such an id."""
    if type(member_id) is not str:
        raise InvalidRequestError(f"member_id must be a string, not {member_id!r:.60}")
    problem = _problem(member_id)
    if problem is not None:
        raise UnknownMemberIdError(
            f"member id {member_id[:40]!r}… {problem}; join with an empty member id to get one"
        )
    return member_id


def check_instance_id(instance_id: Any) -> str | None:
    """A ``group_instance_id``: null, or 1 to 255 characters without control characters."""
    if instance_id is None:
        return None
    if type(instance_id) is not str or not instance_id:
        raise InvalidRequestError(
            f"group_instance_id must be null or a non-empty string, not {instance_id!r:.60}"
        )
    problem = _problem(instance_id)
    if problem is not None:
        raise InvalidRequestError(f"group_instance_id {instance_id[:40]!r}… {problem}")
    return instance_id


def new_member_id(prefix: str | None) -> str:
    """``<prefix>-<uuid4>`` (Kafka's shape), the prefix cleaned and cut so the id is valid."""
    cleaned = "".join(c for c in (prefix or "") if unicodedata.category(c) not in ("Cc", "Cs"))
    suffix = str(uuid.uuid4())
    return f"{cleaned[: MAX_ID_LENGTH - len(suffix) - 1]}-{suffix}"
