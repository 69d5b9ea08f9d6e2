"""Committed offsets, client side: OffsetCommit and OffsetFetch to the group's coordinator.

A committed offset is the next offset the group reads (the last processed
record's offset + 1), with free-text metadata (Kafka's ``OffsetAndMetadata``).
A member commits with its generation; a consumer with a ``group_id`` but no
subscription (manual ``assign``) makes a "simple" commit (generation -1, no
member id), which the coordinator accepts only while the group has no
members. Errors map to classes the application can act on:

- ``CommitFailedError``: the group rebalanced past this member's generation
  (``ILLEGAL_GENERATION``/``UNKNOWN_MEMBER_ID``), or a partition is not this
  member's. Its records will be read again by whoever owns it now.
- ``RebalanceInProgressError``: the group is completing a rebalance; ``poll``
  finishes it.
- the partition's own error otherwise (``OffsetOutOfRangeError`` for a
  negative offset or one past the log end, ``OffsetMetadataTooLargeError``, …).

Coordinator moves are retried (``CoordinatorLookup``), and so are retriable
per-partition errors, within ``timeout_ms``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from client.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    LogServerError,
    NotCoordinatorError,
    RebalanceInProgressError,
    RequestTimedOutError,
    UnknownMemberIdError,
    error_for_code,
)
from client.group.coordinator_lookup import CoordinatorLookup
from client.protocol import ApiKey
from client.topic_partition import OffsetAndMetadata, TopicPartition

__all__ = ["CommitFailedError", "commit_offsets", "fetch_committed", "to_offset_and_metadata"]

log = logging.getLogger(__name__)

_MAX_METADATA_CHARS = 4096


class CommitFailedError(LogServerError):
    """The coordinator refused a member's commit: the group moved on without it.

    Raised for ``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID`` and
    ``FENCED_INSTANCE_ID`` answers (the wire error is the ``__cause__``). The
    partitions may belong to another member now, which reads them from the
    group's last commit.
    """

    name = "COMMIT_FAILED"


def to_offset_and_metadata(value: int | OffsetAndMetadata | tuple[int, str]) -> OffsetAndMetadata:
    """An ``OffsetAndMetadata`` from an int offset or an (offset, metadata) pair; checks both."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = OffsetAndMetadata(value, "")
    elif isinstance(value, tuple) and len(value) == 2:
        value = OffsetAndMetadata(*value)
    else:
        raise TypeError(f"an offset to commit is an int or OffsetAndMetadata, not {value!r}")
    offset, metadata = value
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"a committed offset is an int >= 0, not {offset!r}")
    if not isinstance(metadata, str):
        raise TypeError(f"commit metadata is a str, not {type(metadata).__name__}")
    if len(metadata) > _MAX_METADATA_CHARS:
        raise ValueError(
            f"commit metadata is {len(metadata)} characters, more than {_MAX_METADATA_CHARS}"
        )
    return OffsetAndMetadata(offset, metadata)


async def commit_offsets(
    lookup: CoordinatorLookup,
    group_id: str,
    offsets: Mapping[TopicPartition, OffsetAndMetadata],
    *,
    generation_id: int = -1,
    member_id: str = "",
    group_instance_id: str | None = None,
    timeout_ms: int = 30_000,
    retry_backoff_ms: int = 100,
) -> None:
    """Commit ``offsets`` for ``group_id``, all or raise (see the module doc for the errors)."""
    if not offsets:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    backoff = retry_backoff_ms / 1000
    pending = dict(offsets)
    while True:
        by_topic: dict[str, list[list[Any]]] = defaultdict(list)
        for tp, (offset, metadata) in sorted(pending.items()):
            by_topic[tp.topic].append([tp.partition, offset, metadata])
        body = {
            "group_id": group_id,
            "generation_id": generation_id,
            "member_id": member_id,
            "group_instance_id": group_instance_id,
            "topics": [[topic, rows] for topic, rows in by_topic.items()],
        }
        remaining_ms = int((deadline - loop.time()) * 1000)
        if remaining_ms <= 0:
            raise RequestTimedOutError(
                f"group {group_id!r}: the commit of {_names(pending)} was not answered in time"
            )
        try:
            reply, _ = await lookup.request(
                group_id, ApiKey.OFFSET_COMMIT, body, timeout_ms=remaining_ms
            )
        except LogServerError as exc:
            raise _commit_error(group_id, generation_id, list(pending), exc) from exc
        failed: dict[TopicPartition, LogServerError] = {}
        for topic, rows in reply.get("topics") or []:
            for partition, code, message in rows:
                if code:
                    failed[TopicPartition(topic, partition)] = error_for_code(code, message)
        fatal = {tp: e for tp, e in failed.items() if not e.retriable}
        if fatal:
            tp, error = next(iter(sorted(fatal.items())))
            raise _commit_error(group_id, generation_id, sorted(fatal), error) from error
        if not failed:
            return
        if any(isinstance(e, NotCoordinatorError) for e in failed.values()):
            lookup.forget(group_id)
        if loop.time() + backoff >= deadline:
            error = next(iter(failed.values()))
            raise _commit_error(group_id, generation_id, sorted(failed), error) from error
        log.debug("group %s: commit of %s failed (%s); retrying", group_id, _names(failed), failed)
        pending = {tp: pending[tp] for tp in failed if tp in pending}
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 1.0)


def _commit_error(
    group_id: str, generation_id: int, partitions: Iterable[TopicPartition], error: LogServerError
) -> LogServerError:
    names = _names(partitions)
    if isinstance(error, IllegalGenerationError | UnknownMemberIdError | FencedInstanceIdError):
        return CommitFailedError(
            f"group {group_id!r} refused the commit of {names} ({error}). The group has "
            f"rebalanced since this member's generation {generation_id}, or these partitions "
            "are not this member's: another member may own them now. If poll() calls were "
            "further apart than max_poll_interval_ms, raise it or take fewer records per poll "
            "(max_records); commit in on_revoke to commit before partitions move."
        )
    if isinstance(error, RebalanceInProgressError):
        return RebalanceInProgressError(
            f"group {group_id!r} is completing a rebalance, so the commit of {names} was "
            "refused: poll() to finish the rebalance, then commit (commit in on_revoke to "
            "commit before partitions move)"
        )
    return type(error)(f"group {group_id!r}: commit of {names}: {error.message}")


async def fetch_committed(
    lookup: CoordinatorLookup,
    group_id: str,
    partitions: Iterable[TopicPartition],
    *,
    timeout_ms: int = 30_000,
) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offsets for ``partitions``; those with none are absent."""
    wanted = sorted(set(partitions))
    if not wanted:
        return {}
    by_topic: dict[str, list[int]] = defaultdict(list)
    for tp in wanted:
        by_topic[tp.topic].append(tp.partition)
    body = {"group_id": group_id, "topics": [[t, ps] for t, ps in by_topic.items()]}
    reply, _ = await lookup.request(group_id, ApiKey.OFFSET_FETCH, body, timeout_ms=timeout_ms)
    found: dict[TopicPartition, OffsetAndMetadata] = {}
    for topic, rows in reply.get("topics") or []:
        for partition, offset, metadata, code in rows:
            tp = TopicPartition(topic, partition)
            if code:
                error = error_for_code(code)
                raise type(error)(f"group {group_id!r}: committed offset of {tp}: {error.message}")
            if offset is not None and offset >= 0:
                found[tp] = OffsetAndMetadata(offset, metadata or "")
    return found


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(str(tp) for tp in sorted(partitions))
