"""What ``logctl group reset-offsets`` computes, as pure functions: its arguments and the plan.

The plan is made from facts gathered beforehand (the group's committed
offsets, each partition's log start and end, and for a time the first offset
at or after it), so every rule here is testable without a broker. The rules
are ``kafka-consumer-groups.sh``'s:

- ``--to-earliest``: the log start; ``--to-latest``: the log end;
- ``--to-offset N``: N;
- ``--shift-by N``: the committed offset plus N (negative goes back); a
  partition without a committed offset cannot be shifted (``PlanError``);
- ``--to-datetime`` / ``--by-duration``: the first offset whose record is at
  or after that time; the log end when every record is older.

Every new offset is then clamped to ``[log start, log end]``.

Dates are ISO 8601, with an optional zone (``Z``, ``+01:00``); without one
they are local time. Durations are ISO 8601 ``PnDTnHnMnS`` (Java's
``Duration.parse``, which Kafka uses): ``PT1H``, ``P1DT12H``, ``PT0.5S``.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping
from typing import Literal

from client.topic_partition import TopicPartition

__all__ = [
    "PlanError",
    "ResetSpec",
    "TopicSelection",
    "parse_datetime",
    "parse_duration",
    "parse_topic",
    "plan_offsets",
]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MS = datetime.timedelta(milliseconds=1)

DATETIME_FORMAT = "YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM], e.g. 2026-11-22T10:00:00.000"
DURATION_FORMAT = "PnDTnHnMnS, e.g. PT1H, PT30M, P1DT12H"

_DURATION = re.compile(
    r"P(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)(?:[.,](?P<fraction>\d{0,9}))?S)?)?",
    re.IGNORECASE,
)

Kind = Literal["earliest", "latest", "offset", "shift", "datetime", "duration"]


@dataclasses.dataclass(frozen=True, slots=True)
class ResetSpec:
    """Where to move the offsets: ``value`` is the offset, the shift, the time in ms since
    the epoch (``datetime``) or the duration in ms (``duration``, back from now)."""

    kind: Kind
    value: int = 0

    def timestamp_ms(self, now_ms: int) -> int | None:
        """The time to look offsets up by (never before the epoch); None for other kinds."""
        if self.kind == "datetime":
            return max(0, self.value)
        if self.kind == "duration":
            return max(0, now_ms - self.value)
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class TopicSelection:
    """``--topic T`` (every partition: ``partitions`` None) or ``--topic T:P,P…``."""

    topic: str
    partitions: tuple[int, ...] | None = None


class PlanError(ValueError):
    """The plan cannot be made as asked; the message names the partitions and what to do."""


def parse_topic(text: str) -> TopicSelection:
    """``TOPIC`` or ``TOPIC:P[,P…]``; ``ValueError`` naming the expected form."""
    topic, sep, rest = text.partition(":")
    topic = topic.strip()
    if not topic:
        raise ValueError(f"{text!r} names no topic: expected TOPIC or TOPIC:P[,P...]")
    if not sep:
        return TopicSelection(topic)
    numbers = [p.strip() for p in rest.split(",")]
    if not all(n.isascii() and n.isdigit() for n in numbers):
        raise ValueError(
            f"{text!r}: partitions must be numbers separated by commas, as in {topic}:0,2"
        )
    return TopicSelection(topic, tuple(sorted({int(n) for n in numbers})))


def parse_datetime(text: str) -> int:
    """ISO 8601 to ms since the epoch (no zone: local time); ``ValueError`` saying the format."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date-time: expected {DATETIME_FORMAT} "
            "(without a zone it is local time)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the local zone, as it was on that date
    return (moment - _EPOCH) // _MS


def parse_duration(text: str) -> int:
    """ISO 8601 ``PnDTnHnMnS`` to ms; ``ValueError`` saying the format."""
    body = text.strip()
    found = _DURATION.fullmatch(body)
    if (
        found is None
        or not any(found.group(k) is not None for k in ("days", "hours", "minutes", "seconds"))
        or body.upper().endswith("T")
    ):
        raise ValueError(f"{text!r} is not an ISO 8601 duration: expected {DURATION_FORMAT}")
    fraction = (found.group("fraction") or "").ljust(3, "0")[:3]
    return (
        int(found.group("days") or 0) * 86_400_000
        + int(found.group("hours") or 0) * 3_600_000
        + int(found.group("minutes") or 0) * 60_000
        + int(found.group("seconds") or 0) * 1000
        + int(fraction)
    )


def plan_offsets(
    partitions: Iterable[TopicPartition],
    spec: ResetSpec,
    *,
    committed: Mapping[TopicPartition, int],
    log_start: Mapping[TopicPartition, int],
    log_end: Mapping[TopicPartition, int],
    by_time: Mapping[TopicPartition, int | None] | None = None,
) -> dict[TopicPartition, int]:
    """The new offset of each partition, in topic and partition order.

    ``by_time`` (for ``datetime`` and ``duration``) holds the first offset at or
    after the time, None when every record is older. Raises ``PlanError`` for
    ``shift`` when a partition has no committed offset.
    """
    wanted = sorted(set(partitions))
    if spec.kind == "shift":
        unknown = [tp for tp in wanted if tp not in committed]
        if unknown:
            raise PlanError(
                f"cannot shift {_names(unknown)}: the group has no committed offset there; "
                "use --to-earliest, --to-latest, --to-offset or --to-datetime for them"
            )
    plan = {}
    for tp in wanted:
        start, end = log_start[tp], log_end[tp]
        if spec.kind == "earliest":
            target = start
        elif spec.kind == "latest":
            target = end
        elif spec.kind == "offset":
            target = spec.value
        elif spec.kind == "shift":
            target = committed[tp] + spec.value
        else:
            found = (by_time or {}).get(tp)
            target = end if found is None else found
        plan[tp] = min(max(target, start), end)
    return plan


def _names(tps: list[TopicPartition], most: int = 5) -> str:
    shown = ", ".join(str(tp) for tp in tps[:most])
    return shown + (f" and {len(tps) - most} more" if len(tps) > most else "")
