"""OffsetCommit and OffsetFetch (docs/groups.md).

OffsetCommit ``{"group_id", "generation_id" (-1: simple), "member_id" (""
: simple), "group_instance_id", "topics": [[topic, [[partition, offset,
metadata], …]], …]}`` answers ``{"error": 0, "topics": [[topic, [[partition,
error, error_message], …]], …]}`` with a row for every partition asked, in
order; ``NOT_COORDINATOR`` and ``COORDINATOR_LOAD_IN_PROGRESS`` come as a
top-level ``error`` (with no rows), and the group's answer to the member
(``UNKNOWN_MEMBER_ID``, ``ILLEGAL_GENERATION``, …) in every row (nothing is
committed then). Each partition is checked here first (known topic and partition, offset >= 0 and
within the log when this broker leads the partition, metadata size); the
others are committed together.

OffsetFetch ``{"group_id", "topics": null | [[topic, [partition, …]], …]}``
answers ``{"error", "error_message", "topics": [[topic, [[partition, offset,
metadata, error], …]], …]}``: offset -1 where nothing was committed; with
``topics`` null, every committed partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    InvalidRequestError,
    LogServerError,
    NotCoordinatorError,
    OffsetMetadataTooLargeError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
)
from coordination import CommittedOffset
from logserver.api.checks import int_field, list_field
from logserver.groups.validation import (
    MAX_METADATA_LENGTH,
    check_group_id,
    check_instance_id,
    check_member_id,
)
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_offset_commit", "handle_offset_fetch"]

TopicPartition = tuple[str, int]
_WHOLE_REQUEST = (NotCoordinatorError, CoordinatorLoadInProgressError, CoordinatorNotAvailableError)


# -- OffsetCommit ------------------------------------------------------------------------


def handle_offset_commit(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    asked = _commit_rows(body)
    return _commit(broker, body, asked)


def _commit_rows(body: dict[str, Any]) -> list[tuple[str, list[tuple[int, int, str]]]]:
    topics = []
    for entry in list_field(body, "topics"):
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list):
            raise InvalidRequestError(
                "each topic must be [topic, [[partition, offset, metadata]…]]"
            )
        topic, rows = entry
        if type(topic) is not str:
            raise InvalidRequestError(f"topic {topic!r:.60} is not a string")
        partitions = []
        for row in rows:
            if not isinstance(row, list) or len(row) != 3:
                raise InvalidRequestError(
                    f"{topic}: each row must be [partition, offset, metadata]"
                )
            partition, offset, metadata = row
            if type(partition) is not int or type(offset) is not int:
                raise InvalidRequestError(f"{topic}: partition and offset must be integers")
            if metadata is not None and type(metadata) is not str:
                raise InvalidRequestError(f"{topic}-{partition}: metadata must be a string or null")
            partitions.append((partition, offset, metadata or ""))
        topics.append((topic, partitions))
    return topics


def _check_partition(
    broker: Broker, topic: str, partition: int, offset: int, metadata: str
) -> None:
    assignment = broker.topics.get(topic)
    if assignment is None or partition not in assignment.replicas:
        raise UnknownTopicOrPartitionError(f"{topic}-{partition} does not exist")
    if offset < 0:
        raise OffsetOutOfRangeError(f"offset {offset} is negative")
    if len(metadata) > MAX_METADATA_LENGTH:
        raise OffsetMetadataTooLargeError(
            f"metadata of {len(metadata)} characters for {topic}-{partition}: at most "
            f"{MAX_METADATA_LENGTH}; store less"
        )
    partition_log = broker.logs.get(topic, partition)
    if partition_log is not None and (topic, partition) in broker.replicas.leaders:
        end = partition_log.log_end_offset
        if offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is beyond the log end {end} of {topic}-{partition}"
            )


async def _commit(
    broker: Broker, body: dict[str, Any], asked: list[tuple[str, list[tuple[int, int, str]]]]
) -> Response:
    errors: dict[TopicPartition, LogServerError] = {}
    offsets: dict[TopicPartition, CommittedOffset] = {}
    for topic, rows in asked:
        for partition, offset, metadata in rows:
            try:
                _check_partition(broker, topic, partition, offset, metadata)
            except LogServerError as exc:
                errors[(topic, partition)] = exc
            else:
                offsets[(topic, partition)] = CommittedOffset(offset, metadata)
    group_error: LogServerError | None = None
    try:
        group_id = check_group_id(body.get("group_id"))
        member_id = check_member_id(body.get("member_id", ""))
        instance_id = check_instance_id(body.get("group_instance_id"))
        generation_id = int_field(body, "generation_id", -1)
        refused = await broker.groups.commit_offsets(
            group_id, member_id, instance_id, generation_id, offsets
        )
        errors.update(refused)
    except _WHOLE_REQUEST as exc:
        return Response({"error": exc.code, "error_message": exc.message, "topics": []})
    except LogServerError as exc:
        group_error = exc
    topics = []
    for topic, rows in asked:
        out = []
        for partition, _, _ in rows:
            error = group_error or errors.get((topic, partition))
            if error is None:
                out.append([partition, 0, None])
            else:
                out.append([partition, error.code, error.message])
        topics.append([topic, out])
    return Response({"error": 0, "error_message": None, "topics": topics})


# -- OffsetFetch -------------------------------------------------------------------------


def handle_offset_fetch(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    group_id = body.get("group_id")
    topics = body.get("topics")
    wanted: list[tuple[str, list[int]]] | None = None
    if topics is not None:
        wanted = []
        for entry in list_field(body, "topics"):
            if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list):
                raise InvalidRequestError("each topic must be [topic, [partition…]]")
            topic, partitions = entry
            if type(topic) is not str or not all(type(p) is int for p in partitions):
                raise InvalidRequestError(f"{topic!r:.60}: a string and integer partitions")
            wanted.append((topic, partitions))
    return _fetch(broker, group_id, wanted)


async def _fetch(
    broker: Broker, group_id: Any, wanted: list[tuple[str, list[int]]] | None
) -> Response:
    try:
        group = check_group_id(group_id)
        asked = None if wanted is None else [(t, p) for t, ps in wanted for p in ps]
        found = await broker.groups.fetch_offsets(group, asked)
    except LogServerError as exc:
        return Response({"error": exc.code, "error_message": exc.message, "topics": []})
    if wanted is None:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(found):
            by_topic.setdefault(topic, []).append(partition)
        wanted = list(by_topic.items())
    topics = []
    for topic, partitions in wanted:
        rows = []
        for partition in partitions:
            committed = found.get((topic, partition))
            if committed is None:
                rows.append([partition, -1, "", 0])
            else:
                rows.append([partition, committed.offset, committed.metadata, 0])
        topics.append([topic, rows])
    return Response({"error": 0, "error_message": None, "topics": topics})
