"""Topic names: Kafka's rules, checked the same way by the broker and the client.

A name is 1 to 249 characters of ASCII letters, digits, ``.``, ``_`` and ``-``,
and is not ``.`` or ``..``. The limit leaves room in a 255-byte file name for
the partition directory ``<topic>-<partition>`` and its suffixes; the alphabet
keeps names safe as file names and in metric labels; ``.`` and ``..`` would be
directory references.
"""

from __future__ import annotations

import re

from client.errors import InvalidTopicError

__all__ = ["MAX_TOPIC_NAME_LENGTH", "validate_topic_name"]

MAX_TOPIC_NAME_LENGTH = 249

_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")


def validate_topic_name(name: object) -> str:
    """Return ``name`` if it is a legal topic name; raise ``InvalidTopicError`` naming it if not."""
    if not isinstance(name, str):
        raise InvalidTopicError(f"topic name must be a string, not {type(name).__name__}: {name!r}")
    if not name:
        raise InvalidTopicError("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"topic name {name!r} is {len(name)} characters long, "
            f"more than the maximum {MAX_TOPIC_NAME_LENGTH}"
        )
    if not _LEGAL_NAME.fullmatch(name):
        raise InvalidTopicError(
            f"topic name {name!r} is illegal: only ASCII letters, digits, '.', '_' and '-' "
            "are allowed"
        )
    return name
