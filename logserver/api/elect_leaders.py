"""ElectLeaders: give partitions back to their preferred leader, their first replica.

Request: ``{"topics": null | [[topic, null | [partition, …]], …]}``. A null
``topics`` means every partition of every topic; a null partition list means
every partition of that topic. Response: ``{"error", "error_message",
"results": [[topic, partition, error, error_message], …]}``, sorted by topic
and partition. Per partition, ``error`` is 0 (elected: the preferred replica
leads now, at leader epoch + 1), ``ELECTION_NOT_NEEDED`` (it led already),
``PREFERRED_LEADER_NOT_AVAILABLE`` (it is dead or out of the ISR),
``UNKNOWN_TOPIC_OR_PARTITION`` (a topic asked for whole that does not exist
gets one row with partition -1), ``INVALID_TOPIC_EXCEPTION``,
``STALE_CONTROLLER_EPOCH`` or ``FENCED_LEADER_EPOCH`` (the controller lost its
place or the state kept changing: ask again).

Only the controller elects. Any other broker of a cluster answers the top-level
``NOT_CONTROLLER``, with no results: the client asks the broker that Metadata
names as controller. A standalone broker leads every partition it has, each
its only replica, so every partition it knows is answered ``ELECTION_NOT_NEEDED``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client.errors import (
    ElectionNotNeededError,
    InvalidRequestError,
    InvalidTopicError,
    LogServerError,
    NotControllerError,
    PreferredLeaderNotAvailableError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
    all_error_classes,
)
from client.topics import validate_topic_name
from logserver.controller import ELECTED, NOT_NEEDED
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_elect_leaders"]

_BY_NAME = {cls.name: cls for cls in all_error_classes().values()}

Wanted = dict[str, tuple[int, ...] | None]  # topic → partitions (None: all of them)
Row = list[Any]  # [topic, partition, error, error_message]


def handle_elect_leaders(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    wanted = _wanted(body)
    if broker.coordinator.mode == "standalone":
        return _answer(_standalone(broker, wanted))
    controller = broker.controller
    if controller is None or not broker.coordinator.is_controller:
        raise NotControllerError(f"broker {broker.broker_id} is not the controller")
    return _elect(broker, wanted)


def _wanted(body: dict[str, Any]) -> Wanted | None:
    topics = body.get("topics")
    if topics is None:
        return None
    if not isinstance(topics, list):
        raise InvalidRequestError("field 'topics' must be an array or null")
    wanted: Wanted = {}
    for entry in topics:
        if not isinstance(entry, list) or len(entry) != 2 or type(entry[0]) is not str:
            raise InvalidRequestError(
                f"each entry of 'topics' must be [topic, partitions], not {entry!r}"
            )
        name, partitions = entry
        if partitions is None:
            wanted[name] = None
            continue
        if not isinstance(partitions, list) or not all(type(p) is int for p in partitions):
            raise InvalidRequestError(
                f"the partitions of {name!r} must be an array of integers or null"
            )
        if name in wanted and wanted[name] is None:
            continue  # all of them already
        wanted[name] = tuple(sorted({*(wanted.get(name) or ()), *partitions}))
    return wanted


def _standalone(broker: Broker, wanted: Wanted | None) -> list[Row]:
    if wanted is None:
        wanted = dict.fromkeys(broker.topics)
    rows: list[Row] = []
    for name, partitions in wanted.items():
        known = _known_partitions(broker, name, partitions, rows)
        if known is None:
            continue
        for partition in known:
            rows.append(
                _row(name, partition, ElectionNotNeededError("the only replica leads already"))
            )
    return rows


async def _elect(broker: Broker, wanted: Wanted | None) -> Response:
    rows: list[Row] = []
    if wanted is None:
        outcome = await broker.controller.elect_preferred_leaders(None)
        for (name, partition), verdict in outcome.items():
            rows.append(_row(name, partition, _error(broker, name, partition, verdict)))
        return _answer(rows)
    legal = [name for name in wanted if _legal(name)]
    outcome = await broker.controller.elect_preferred_leaders(legal) if legal else {}
    for name, partitions in wanted.items():
        if name not in legal or (name, -1) in outcome:  # illegal, or no such topic
            _unknown_topic(name, partitions, rows)
            continue
        if partitions is None:
            partitions = tuple(sorted(p for t, p in outcome if t == name))
        for partition in partitions:
            verdict = outcome.get((name, partition))
            if verdict is None:
                rows.append(_row(name, partition, _no_partition(name, partition)))
            else:
                rows.append(_row(name, partition, _error(broker, name, partition, verdict)))
    return _answer(rows)


def _known_partitions(
    broker: Broker, name: str, partitions: tuple[int, ...] | None, rows: list[Row]
) -> tuple[int, ...] | None:
    """The partitions asked for that exist; rows for the rest. None: the topic is unknown."""
    assignment = broker.topics.get(name)
    if assignment is None:
        _unknown_topic(name, partitions, rows)
        return None
    if partitions is None:
        return tuple(sorted(assignment.replicas))
    known = []
    for partition in partitions:
        if partition in assignment.replicas:
            known.append(partition)
        else:
            rows.append(_row(name, partition, _no_partition(name, partition)))
    return tuple(known)


def _unknown_topic(name: str, partitions: tuple[int, ...] | None, rows: list[Row]) -> None:
    try:
        validate_topic_name(name)
    except InvalidTopicError as exc:
        error: LogServerError = exc
    else:
        error = UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
    for partition in partitions if partitions is not None else (-1,):
        rows.append(_row(name, partition, error))


def _no_partition(name: str, partition: int) -> LogServerError:
    return UnknownTopicOrPartitionError(f"topic {name!r} has no partition {partition}")


def _legal(name: str) -> bool:
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return False
    return True


def _error(broker: Broker, name: str, partition: int, verdict: str) -> LogServerError | None:
    """The controller's verdict for one partition as the error to answer (None: elected)."""
    if verdict == ELECTED:
        return None
    if verdict == NOT_NEEDED:
        return ElectionNotNeededError("the preferred replica leads already")
    cls = _BY_NAME.get(verdict)
    if cls is None:
        return UnknownServerError(f"the controller answered {verdict!r}")
    if cls is PreferredLeaderNotAvailableError:
        assignment = broker.topics.get(name)
        replicas = assignment.replicas.get(partition, ()) if assignment else ()
        if replicas:
            return cls(f"preferred replica {replicas[0]} is not live or not in the ISR")
    if cls is UnknownTopicOrPartitionError:
        return _no_partition(name, partition)  # deleted meanwhile
    return cls()


def _row(name: str, partition: int, error: LogServerError | None) -> Row:
    if error is None:
        return [name, partition, 0, None]
    return [name, partition, error.code, error.message]


def _answer(rows: list[Row]) -> Response:
    rows.sort(key=lambda row: (row[0], row[1]))
    return Response({"error": 0, "error_message": None, "results": rows})
