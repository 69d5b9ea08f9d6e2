"""Per-log settings, named after Kafka's topic configs.

``LogConfig.from_properties({"segment.bytes": "1048576"})`` is how topic
overrides (AlterConfigs, the config file) reach a log; attribute names are the
same keys with dots turned into underscores.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from client.errors import InvalidConfigurationError

__all__ = ["LogConfig"]

_DAY_MS = 24 * 60 * 60 * 1000
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAX_SEGMENT_BYTES = 2**31 - 1  # positions in the offset index are uint32, Kafka caps at int32


@dataclasses.dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * _DAY_MS
    segment_index_bytes: int = 10 * 1024 * 1024
    index_interval_bytes: int = 4096
    retention_ms: int = 7 * _DAY_MS  # -1: keep forever
    retention_bytes: int = -1  # -1: no size limit
    flush_messages: int | None = None  # None: leave it to the OS (Kafka's default)
    flush_ms: int | None = None
    max_message_bytes: int = 1024 * 1024 + 12
    file_delete_delay_ms: int = 60_000

    def __post_init__(self) -> None:
        def require(ok: bool, key: str, rule: str) -> None:
            if not ok:
                value = getattr(self, key.replace(".", "_"))
                raise InvalidConfigurationError(f"{key}={value!r}: {rule}")

        require(
            14 <= self.segment_bytes <= _MAX_SEGMENT_BYTES,
            "segment.bytes",
            f"must be between 14 and {_MAX_SEGMENT_BYTES}",
        )
        require(self.segment_ms >= 1, "segment.ms", "must be at least 1")
        require(self.segment_index_bytes >= 12, "segment.index.bytes", "must be at least 12")
        require(self.index_interval_bytes >= 0, "index.interval.bytes", "must be >= 0")
        require(self.retention_ms >= -1, "retention.ms", "must be -1 (forever) or >= 0")
        require(self.retention_bytes >= -1, "retention.bytes", "must be -1 (no limit) or >= 0")
        require(
            self.flush_messages is None or self.flush_messages >= 1,
            "flush.messages",
            "must be at least 1 (or unset)",
        )
        require(self.flush_ms is None or self.flush_ms >= 0, "flush.ms", "must be >= 0 (or unset)")
        require(self.max_message_bytes >= 0, "max.message.bytes", "must be >= 0")
        require(self.file_delete_delay_ms >= 0, "file.delete.delay.ms", "must be >= 0")

    @classmethod
    def property_names(cls) -> list[str]:
        return [f.name.replace("_", ".") for f in dataclasses.fields(cls)]

    @classmethod
    def from_properties(
        cls, props: Mapping[str, Any], *, base: LogConfig | None = None
    ) -> LogConfig:
        """Overlay Kafka-style ``key=value`` properties on ``base`` (default: the defaults).

        Unknown keys and unparsable values raise ``InvalidConfigurationError``.
        """
        known = {f.name.replace("_", "."): f.name for f in dataclasses.fields(cls)}
        changes: dict[str, int | None] = {}
        for key, raw in props.items():
            attr = known.get(key)
            if attr is None:
                raise InvalidConfigurationError(f"unknown log config {key!r}")
            changes[attr] = _parse_int(key, raw, optional=attr in ("flush_messages", "flush_ms"))
        return dataclasses.replace(base or cls(), **changes)

    def to_properties(self) -> dict[str, str]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name.replace("_", ".")] = "" if value is None else str(value)
        return out


def _parse_int(key: str, raw: Any, *, optional: bool) -> int | None:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if optional:
            return None
        raise InvalidConfigurationError(f"{key} needs a value")
    if type(raw) is int:
        return raw
    text = raw.strip() if isinstance(raw, str) else None
    if text is None or not _INTEGER.fullmatch(text):
        raise InvalidConfigurationError(f"{key}={raw!r}: not an integer")
    return int(text)
