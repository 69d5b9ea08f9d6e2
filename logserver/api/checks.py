"""Strict readers for request fields: a wrong type is a clear ``INVALID_REQUEST``."""

from __future__ import annotations

from typing import Any

from client.errors import InvalidRequestError

__all__ = ["int_field", "list_field", "str_field"]


def int_field(body: dict[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if type(value) is not int:
        raise InvalidRequestError(f"field {key!r} must be an integer, not {value!r}")
    return value


def str_field(value: Any, what: str) -> str:
    if type(value) is not str:
        raise InvalidRequestError(f"{what} must be a string, not {value!r}")
    return value


def list_field(body: dict[str, Any], key: str, default: list[Any] | None = None) -> list[Any]:
    value = body.get(key, default)
    if not isinstance(value, list):
        raise InvalidRequestError(f"field {key!r} must be an array, not {type(value).__name__}")
    return value
