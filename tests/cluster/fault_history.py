"""What a fault run recorded, and the checks run on it afterwards: pure functions, no I/O.

A run (``tests/cluster/test_faults.py``) records every send as a ``Send``: the
value (unique: producer id + sequence), where it was acknowledged, or the error
it finally failed with, and the error of every failed attempt before that (the
producer retries internally). After the cluster has healed it reads every
partition back (``Reads``: partition → ``(offset, value)`` in log order) and,
with the brokers stopped, every replica's log (``ReplicaLogs``). The checks:

- ``lost``: an acknowledged value that is not read back.
- ``misplaced``: an acknowledged ``(partition, offset)`` that holds another
  value (or nothing).
- ``duplicates``: a value at two offsets. A retried send may legitimately be
  appended twice (an attempt that timed out after the append, then the retry),
  so those are counted, not failed; a value twice that was never retried, or
  in two *different* partitions (a value is keyed by itself, so its partition
  never changes), is a bug.
- ``unknown``: a value read that no producer sent.
- ``visible_refused``: a send refused before anything was appended (every one
  of its attempts was answered ``NOT_ENOUGH_REPLICAS`` or never left the
  client) that is read back anyway. A send that timed out, or lost its
  connection, is indeterminate (Kafka's semantics) and is not checked.
- ``divergence``: replicas that differ below the high watermark the consumer
  read to, or that end before it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "REFUSED_BEFORE_APPEND",
    "Position",
    "Reads",
    "ReplicaLogs",
    "Report",
    "Send",
    "check",
    "divergence",
    "duplicates",
    "lost",
    "misplaced",
    "unknown",
    "visible_refused",
]

REFUSED_BEFORE_APPEND = frozenset(
    {
        "NOT_ENOUGH_REPLICAS",  # checked by the leader before it appends
        "LEADER_NOT_AVAILABLE",  # the client knew no leader: nothing was sent
        "UNKNOWN_TOPIC_OR_PARTITION",
    }
)
"""Attempt errors that prove nothing was appended. NOT_LEADER_OR_FOLLOWER is not
one: a leader that loses its leadership with an acks=all request waiting
answers it so, after the append."""

Position = tuple[int, int]  # (partition, offset)
Reads = Mapping[int, Sequence[tuple[int, bytes]]]
"""partition → (offset, value) in log order."""
ReplicaLogs = Mapping[int, Reads]
"""broker id → that broker's replica of each partition."""


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """One send and how it ended: acknowledged at ``position``, or failed with ``error``."""

    value: bytes
    position: Position | None = None
    error: str | None = None
    attempt_errors: tuple[str, ...] = ()
    """The error of every failed attempt, the final one included."""

    @property
    def acknowledged(self) -> bool:
        return self.position is not None

    @property
    def attempts(self) -> int:
        """Failed attempts plus the successful one (an upper bound on appends)."""
        return len(self.attempt_errors) + self.acknowledged

    @property
    def retried(self) -> bool:
        """Sent more than once: the value may have been appended more than once."""
        return self.attempts > 1

    @property
    def refused(self) -> bool:
        """Failed, and no attempt can have appended it."""
        return (
            not self.acknowledged
            and bool(self.attempt_errors)
            and all(e in REFUSED_BEFORE_APPEND for e in self.attempt_errors)
        )


def _positions(reads: Reads) -> dict[bytes, list[Position]]:
    found: dict[bytes, list[Position]] = defaultdict(list)
    for partition, records in reads.items():
        for offset, value in records:
            found[value].append((partition, offset))
    return found


def lost(sends: Iterable[Send], reads: Reads) -> list[bytes]:
    """Acknowledged values not read back at all."""
    seen = _positions(reads)
    return [s.value for s in sends if s.acknowledged and s.value not in seen]


def misplaced(sends: Iterable[Send], reads: Reads) -> list[tuple[bytes, Position, bytes | None]]:
    """(value, acknowledged position, what that position holds) where the two differ."""
    at = {(p, o): v for p, records in reads.items() for o, v in records}
    wrong = []
    for send in sends:
        if send.position is not None and at.get(send.position) != send.value:
            wrong.append((send.value, send.position, at.get(send.position)))
    return wrong


def duplicates(reads: Reads) -> dict[bytes, list[Position]]:
    """Values read at more than one position, with every position."""
    return {v: ps for v, ps in _positions(reads).items() if len(ps) > 1}


def unknown(sends: Iterable[Send], reads: Reads) -> list[tuple[bytes, Position]]:
    """Values read that were never sent."""
    sent = {s.value for s in sends}
    return [(v, ps[0]) for v, ps in _positions(reads).items() if v not in sent]


def visible_refused(sends: Iterable[Send], reads: Reads) -> list[tuple[bytes, Position]]:
    """Sends refused before any append that are read back anyway."""
    seen = _positions(reads)
    return [(s.value, seen[s.value][0]) for s in sends if s.refused and s.value in seen]


def divergence(replicas: ReplicaLogs, high_watermarks: Mapping[int, int]) -> list[str]:
    """How replicas differ; [] when they agree.

    Below each partition's high watermark every replica must hold the same
    records as the lowest-numbered broker's replica, and none may end before
    it. Past it, the replicas of a quiet, healed cluster must end at the same
    offset (a follower never keeps a suffix its leader lacks).
    """
    problems = []
    for partition, hw in sorted(high_watermarks.items()):
        logs = {
            broker: list(reads.get(partition, ())) for broker, reads in sorted(replicas.items())
        }
        if not logs:
            continue
        first, reference = next(iter(logs.items()))
        committed = [r for r in reference if r[0] < hw]
        for broker, records in logs.items():
            mine = [r for r in records if r[0] < hw]
            end = records[-1][0] + 1 if records else 0
            if end < hw:
                problems.append(
                    f"partition {partition}: broker {broker} ends at {end}, "
                    f"below the high watermark {hw}"
                )
            if mine != committed:
                at = next(
                    (i for i, (a, b) in enumerate(zip(mine, committed, strict=False)) if a != b),
                    min(len(mine), len(committed)),
                )
                problems.append(
                    f"partition {partition}: below the high watermark {hw}, broker {broker} "
                    f"differs from broker {first} at record #{at}: "
                    f"{_at(mine, at)!r} vs {_at(committed, at)!r}"
                )
        ends = {b: (records[-1][0] + 1 if records else 0) for b, records in logs.items()}
        if len(set(ends.values())) > 1:
            problems.append(f"partition {partition}: replica log ends differ: {ends} (hw {hw})")
    return problems


def _at(records: Sequence[tuple[int, bytes]], i: int) -> tuple[int, bytes] | None:
    return records[i] if i < len(records) else None


@dataclasses.dataclass(frozen=True)
class Report:
    """Every check's findings; ``problems`` lists the violations (none is a pass)."""

    sends: int
    acknowledged: int
    failed: int
    refused: int
    retried: int
    read: int
    lost: list[bytes]
    misplaced: list[tuple[bytes, Position, bytes | None]]
    duplicates: dict[bytes, list[Position]]
    unknown: list[tuple[bytes, Position]]
    visible_refused: list[tuple[bytes, Position]]
    divergence: list[str]
    unexplained_duplicates: dict[bytes, list[Position]]
    cross_partition_duplicates: dict[bytes, list[Position]]

    @property
    def problems(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} acknowledged values lost, e.g. {self.lost[:5]}")
        if self.misplaced:
            found.append(
                f"{len(self.misplaced)} acknowledged positions hold another value "
                f"(value, acked at, found): {self.misplaced[:5]}"
            )
        if self.cross_partition_duplicates:
            sample = list(self.cross_partition_duplicates.items())[:5]
            found.append(
                f"{len(self.cross_partition_duplicates)} values in two partitions: {sample}"
            )
        if self.unexplained_duplicates:
            sample = list(self.unexplained_duplicates.items())[:5]
            found.append(
                f"{len(self.unexplained_duplicates)} values appended twice though never "
                f"retried: {sample}"
            )
        if self.unknown:
            found.append(
                f"{len(self.unknown)} values read that were never sent: {self.unknown[:5]}"
            )
        if self.visible_refused:
            found.append(
                f"{len(self.visible_refused)} refused sends are visible: {self.visible_refused[:5]}"
            )
        found += self.divergence
        return found

    def summary(self) -> str:
        return (
            f"{self.sends} sends: {self.acknowledged} acknowledged, {self.failed} failed "
            f"({self.refused} refused before append), {self.retried} retried; "
            f"{self.read} records read; lost {len(self.lost)}, "
            f"duplicated {len(self.duplicates)} "
            f"(unexplained {len(self.unexplained_duplicates)}), "
            f"misplaced {len(self.misplaced)}, phantom {len(self.visible_refused)}, "
            f"unknown {len(self.unknown)}, diverged {len(self.divergence)}"
        )


def check(
    sends: Sequence[Send],
    reads: Reads,
    replicas: ReplicaLogs | None = None,
    high_watermarks: Mapping[int, int] | None = None,
) -> Report:
    """Run every check; ``replicas`` and ``high_watermarks`` are optional (no divergence check)."""
    dups = duplicates(reads)
    by_value = {s.value: s for s in sends}
    unexplained = {v: ps for v, ps in dups.items() if v in by_value and not by_value[v].retried}
    cross = {v: ps for v, ps in dups.items() if len({p for p, _ in ps}) > 1}
    return Report(
        sends=len(sends),
        acknowledged=sum(s.acknowledged for s in sends),
        failed=sum(not s.acknowledged for s in sends),
        refused=sum(s.refused for s in sends),
        retried=sum(s.retried for s in sends),
        read=sum(len(records) for records in reads.values()),
        lost=lost(sends, reads),
        misplaced=misplaced(sends, reads),
        duplicates=dups,
        unknown=unknown(sends, reads),
        visible_refused=visible_refused(sends, reads),
        divergence=divergence(replicas or {}, high_watermarks or {}),
        unexplained_duplicates=unexplained,
        cross_partition_duplicates=cross,
    )
