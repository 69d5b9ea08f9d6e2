"""The one error table shared by the broker and the client.

Every error that can cross the wire has Kafka's numeric code and name, so a
Kafka user reading a log line or a response recognises it. Retry logic asks
the error (``retriable``, ``invalid_metadata``), never a list of codes.

    LogServerError                       UNKNOWN_SERVER_ERROR (-1)
    ├── OffsetOutOfRangeError            OFFSET_OUT_OF_RANGE (1)
    ├── CorruptRecordError               CORRUPT_MESSAGE (2), retriable
    ├── UnknownTopicOrPartitionError     UNKNOWN_TOPIC_OR_PARTITION (3), retriable, metadata
    ├── NotLeaderOrFollowerError         NOT_LEADER_OR_FOLLOWER (6), retriable, metadata
    ├── RecordTooLargeError              MESSAGE_TOO_LARGE (10)
    ├── RecordBatchTooLargeError         RECORD_LIST_TOO_LARGE (18)
    ├── StorageError                     KAFKA_STORAGE_ERROR (56), retriable
    ├── InvalidRecordError               INVALID_RECORD (87)
    └── … one class per code below, registered in ``_BY_CODE``

``error_for_code`` turns a code from a response into an instance; unknown codes
become ``UnknownServerError`` carrying the code, so nothing is silently dropped.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

__all__ = [
    "ErrorCode",
    "LogServerError",
    "error_class_for_code",
    "error_for_code",
]


class LogServerError(Exception):
    """Root of every error this project raises on purpose."""

    code: ClassVar[int] = -1
    name: ClassVar[str] = "UNKNOWN_SERVER_ERROR"
    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.name)
        self.message = message or self.name

    def __str__(self) -> str:
        if self.message == self.name:
            return self.name
        return f"[{self.name}] {self.message}"


ErrorCode = int
_BY_CODE: dict[int, type[LogServerError]] = {}
_E = TypeVar("_E", bound=type[LogServerError])


def _register(cls: _E) -> _E:
    if cls.code in _BY_CODE:
        raise RuntimeError(f"error code {cls.code} registered twice")
    _BY_CODE[cls.code] = cls
    return cls


def error_class_for_code(code: int) -> type[LogServerError]:
    """The class registered for ``code``; ``UnknownServerError`` for codes we do not know."""
    return _BY_CODE.get(code, UnknownServerError)


def error_for_code(code: int, message: str | None = None) -> LogServerError:
    """An instance for a non-zero response code (the code is kept even when unknown)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return UnknownServerError(
            f"unknown error code {code}" + (f": {message}" if message else "")
        )
    return cls(message)


@_register
class UnknownServerError(LogServerError):
    code = -1
    name = "UNKNOWN_SERVER_ERROR"


@_register
class OffsetOutOfRangeError(LogServerError):
    code = 1
    name = "OFFSET_OUT_OF_RANGE"


@_register
class CorruptRecordError(LogServerError):
    """A batch failed its length, magic or CRC32C check, or its body does not decode."""

    code = 2
    name = "CORRUPT_MESSAGE"
    retriable = True


@_register
class UnknownTopicOrPartitionError(LogServerError):
    code = 3
    name = "UNKNOWN_TOPIC_OR_PARTITION"
    retriable = True
    invalid_metadata = True


@_register
class InvalidFetchSizeError(LogServerError):
    code = 4
    name = "INVALID_FETCH_SIZE"


@_register
class LeaderNotAvailableError(LogServerError):
    code = 5
    name = "LEADER_NOT_AVAILABLE"
    retriable = True
    invalid_metadata = True


@_register
class NotLeaderOrFollowerError(LogServerError):
    code = 6
    name = "NOT_LEADER_OR_FOLLOWER"
    retriable = True
    invalid_metadata = True


@_register
class RequestTimedOutError(LogServerError):
    code = 7
    name = "REQUEST_TIMED_OUT"
    retriable = True


@_register
class BrokerNotAvailableError(LogServerError):
    code = 8
    name = "BROKER_NOT_AVAILABLE"


@_register
class ReplicaNotAvailableError(LogServerError):
    code = 9
    name = "REPLICA_NOT_AVAILABLE"
    retriable = True
    invalid_metadata = True


@_register
class RecordTooLargeError(LogServerError):
    """A batch is larger than ``max.message.bytes``."""

    code = 10
    name = "MESSAGE_TOO_LARGE"


@_register
class StaleControllerEpochError(LogServerError):
    code = 11
    name = "STALE_CONTROLLER_EPOCH"


@_register
class OffsetMetadataTooLargeError(LogServerError):
    code = 12
    name = "OFFSET_METADATA_TOO_LARGE"


@_register
class NetworkError(LogServerError):
    code = 13
    name = "NETWORK_EXCEPTION"
    retriable = True
    invalid_metadata = True


@_register
class CoordinatorLoadInProgressError(LogServerError):
    code = 14
    name = "COORDINATOR_LOAD_IN_PROGRESS"
    retriable = True


@_register
class CoordinatorNotAvailableError(LogServerError):
    code = 15
    name = "COORDINATOR_NOT_AVAILABLE"
    retriable = True


@_register
class NotCoordinatorError(LogServerError):
    code = 16
    name = "NOT_COORDINATOR"
    retriable = True


@_register
class InvalidTopicError(LogServerError):
    code = 17
    name = "INVALID_TOPIC_EXCEPTION"


@_register
class RecordBatchTooLargeError(LogServerError):
    """A batch is larger than the partition's ``segment.bytes``."""

    code = 18
    name = "RECORD_LIST_TOO_LARGE"


@_register
class NotEnoughReplicasError(LogServerError):
    code = 19
    name = "NOT_ENOUGH_REPLICAS"
    retriable = True


@_register
class NotEnoughReplicasAfterAppendError(LogServerError):
    code = 20
    name = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
    retriable = True


@_register
class InvalidRequiredAcksError(LogServerError):
    code = 21
    name = "INVALID_REQUIRED_ACKS"


@_register
class IllegalGenerationError(LogServerError):
    code = 22
    name = "ILLEGAL_GENERATION"


@_register
class InconsistentGroupProtocolError(LogServerError):
    code = 23
    name = "INCONSISTENT_GROUP_PROTOCOL"


@_register
class InvalidGroupIdError(LogServerError):
    code = 24
    name = "INVALID_GROUP_ID"


@_register
class UnknownMemberIdError(LogServerError):
    code = 25
    name = "UNKNOWN_MEMBER_ID"


@_register
class InvalidSessionTimeoutError(LogServerError):
    code = 26
    name = "INVALID_SESSION_TIMEOUT"


@_register
class RebalanceInProgressError(LogServerError):
    code = 27
    name = "REBALANCE_IN_PROGRESS"


@_register
class InvalidCommitOffsetSizeError(LogServerError):
    code = 28
    name = "INVALID_COMMIT_OFFSET_SIZE"


@_register
class InvalidTimestampError(LogServerError):
    code = 32
    name = "INVALID_TIMESTAMP"


@_register
class UnsupportedVersionError(LogServerError):
    code = 35
    name = "UNSUPPORTED_VERSION"


@_register
class TopicAlreadyExistsError(LogServerError):
    code = 36
    name = "TOPIC_ALREADY_EXISTS"


@_register
class InvalidPartitionsError(LogServerError):
    code = 37
    name = "INVALID_PARTITIONS"


@_register
class InvalidReplicationFactorError(LogServerError):
    code = 38
    name = "INVALID_REPLICATION_FACTOR"


@_register
class InvalidReplicaAssignmentError(LogServerError):
    code = 39
    name = "INVALID_REPLICA_ASSIGNMENT"


@_register
class InvalidConfigurationError(LogServerError):
    code = 40
    name = "INVALID_CONFIG"


@_register
class NotControllerError(LogServerError):
    code = 41
    name = "NOT_CONTROLLER"
    retriable = True


@_register
class InvalidRequestError(LogServerError):
    code = 42
    name = "INVALID_REQUEST"


@_register
class PolicyViolationError(LogServerError):
    code = 44
    name = "POLICY_VIOLATION"


@_register
class StorageError(LogServerError):
    """The disk failed us: ENOSPC, EIO, a file that cannot be opened. Nothing was appended."""

    code = 56
    name = "KAFKA_STORAGE_ERROR"
    retriable = True


@_register
class NonEmptyGroupError(LogServerError):
    code = 68
    name = "NON_EMPTY_GROUP"


@_register
class GroupIdNotFoundError(LogServerError):
    code = 69
    name = "GROUP_ID_NOT_FOUND"


@_register
class FencedLeaderEpochError(LogServerError):
    code = 74
    name = "FENCED_LEADER_EPOCH"
    retriable = True
    invalid_metadata = True


@_register
class UnknownLeaderEpochError(LogServerError):
    code = 75
    name = "UNKNOWN_LEADER_EPOCH"
    retriable = True


@_register
class UnsupportedCompressionTypeError(LogServerError):
    code = 76
    name = "UNSUPPORTED_COMPRESSION_TYPE"


@_register
class OffsetNotAvailableError(LogServerError):
    code = 78
    name = "OFFSET_NOT_AVAILABLE"
    retriable = True


@_register
class MemberIdRequiredError(LogServerError):
    code = 79
    name = "MEMBER_ID_REQUIRED"


@_register
class PreferredLeaderNotAvailableError(LogServerError):
    code = 80
    name = "PREFERRED_LEADER_NOT_AVAILABLE"
    retriable = True


@_register
class GroupMaxSizeReachedError(LogServerError):
    code = 81
    name = "GROUP_MAX_SIZE_REACHED"


@_register
class FencedInstanceIdError(LogServerError):
    code = 82
    name = "FENCED_INSTANCE_ID"


@_register
class EligibleLeadersNotAvailableError(LogServerError):
    code = 83
    name = "ELIGIBLE_LEADERS_NOT_AVAILABLE"
    retriable = True


@_register
class ElectionNotNeededError(LogServerError):
    code = 84
    name = "ELECTION_NOT_NEEDED"


@_register
class InvalidRecordError(LogServerError):
    """A batch is well formed but its contents break a rule (count, offsets)."""

    code = 87
    name = "INVALID_RECORD"


def all_error_classes() -> dict[int, type[LogServerError]]:
    """The registry, for the protocol layer and for tests."""
    return dict(_BY_CODE)
