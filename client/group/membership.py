"""A consumer's membership of its group: join, sync and heartbeat, in one background task.

Kafka's classic, eager protocol (docs/groups.md). The task is a state machine::

    UNJOINED ──subscribe──▶ JOINING ──JoinGroup, SyncGroup──▶ STABLE ──heartbeats──┐
        ▲                     ▲                                  │                  │
        │                     └───── REVOKING ◀─ rebalance ──────┘◀─────────────────┘
        │                             (the consumer gives its partitions up in poll)
        └── LEFT (max_poll_interval_ms passed without poll) ── rejoins on a later poll
    FAILED: a fatal error (FENCED_INSTANCE_ID, INCONSISTENT_GROUP_PROTOCOL, ...), raised by poll

The partitions themselves belong to the consumer, and everything the
application sees happens inside its ``poll``: when a rebalance starts, the
membership asks for its partitions back (``revoke_requested``) and waits —
heartbeating, so the session lives — until ``poll`` has called ``on_revoke``
and committed, then joins; the new assignment waits in ``take_assignment``
for the next ``poll``, which calls ``on_assign`` before returning a record of
it. So the application always commits what it finished processing, and the
broker's rebalance waits for it at most ``rebalance_timeout_ms`` (the
consumer's ``max_poll_interval_ms``, as in Kafka).

``max_poll_interval_ms`` is also enforced here: when the application has not
called ``poll`` for that long (time spent waiting inside ``poll`` does not
count), the member leaves the group (LeaveGroup; a static member just stops,
Kafka's way), the next ``poll`` raises ``MaxPollIntervalExceededError``, and
the one after rejoins.

A heartbeat answered ``REBALANCE_IN_PROGRESS`` starts a rebalance with the
generation kept (the member may still commit); ``ILLEGAL_GENERATION`` or
``UNKNOWN_MEMBER_ID`` means the group moved on without it: the generation is
dropped (and the member id, unless the member is static), its partitions are
lost rather than revoked, and it rejoins. A lost coordinator is found again
(``CoordinatorLookup``); a new coordinator that does not know the member
answers ``UNKNOWN_MEMBER_ID``, and the member rejoins.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from client.cluster import Cluster
from client.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    LogServerError,
    MemberIdRequiredError,
    NetworkError,
    NotCoordinatorError,
    RebalanceInProgressError,
    RequestTimedOutError,
    UnknownMemberIdError,
    error_for_code,
)
from client.group.assignor import PartitionAssignor
from client.group.coordinator_lookup import CoordinatorLookup
from client.group.member_metadata import Assignment, MemberMetadataError, Subscription
from client.protocol import ApiKey
from client.topic_partition import TopicPartition

__all__ = ["MaxPollIntervalExceededError", "MemberState", "Membership"]

log = logging.getLogger(__name__)

_COORDINATOR_LOST = (
    NotCoordinatorError,
    CoordinatorNotAvailableError,
    CoordinatorLoadInProgressError,
    NetworkError,
    RequestTimedOutError,
)
_GENERATION_LOST = (IllegalGenerationError, UnknownMemberIdError)
_JOIN_MARGIN_MS = 5_000  # a JoinGroup may wait a whole join phase; give its answer time to come


class MaxPollIntervalExceededError(LogServerError):
    """The application did not call ``poll`` within ``max_poll_interval_ms``: the member left.

    Its partitions went to other members, and what it did not commit will be
    read again by them. Raised once, by the next ``poll``; the ``poll`` after
    that rejoins the group.
    """

    name = "MAX_POLL_INTERVAL_EXCEEDED"


class MemberState(enum.Enum):
    UNJOINED = "unjoined"
    REVOKING = "revoking"
    JOINING = "joining"
    STABLE = "stable"
    LEFT = "left"
    FAILED = "failed"
    CLOSED = "closed"


class Membership:
    """One member of ``group_id``; the consumer drives the hand-off of partitions (module doc)."""

    def __init__(
        self,
        cluster: Cluster,
        lookup: CoordinatorLookup,
        *,
        group_id: str,
        group_instance_id: str | None = None,
        assignors: Sequence[PartitionAssignor],
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        max_poll_interval_ms: int = 300_000,
        request_timeout_ms: int = 30_000,
        retry_backoff_ms: int = 100,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        if not assignors:
            raise ValueError("a group member needs at least one partition assignor")
        self._cluster = cluster
        self._lookup = lookup
        self.group_id = group_id
        self.group_instance_id = group_instance_id
        self._assignors = list(assignors)
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_s = heartbeat_interval_ms / 1000
        self._max_poll_interval_ms = max_poll_interval_ms
        self._request_timeout_ms = request_timeout_ms
        self._backoff_s = retry_backoff_ms / 1000
        self._on_change = on_change

        self.state = MemberState.UNJOINED
        self.member_id = ""
        self.generation_id = -1
        self.protocol: str | None = None
        self.leader_id = ""
        self.error: LogServerError | None = None
        self.subscription: frozenset[str] | None = None
        self.owned: frozenset[TopicPartition] = frozenset()
        """The partitions the consumer holds (taken with ``take_assignment``, not yet revoked)."""
        self.poll_timeout_error: MaxPollIntervalExceededError | None = None
        self.rebalances = 0
        self.assigned_partition_counts: dict[str, int] = {}
        """What the leader assigned from, to notice a topic that appears or grows."""

        self._rejoin_needed = True
        self._pending: frozenset[TopicPartition] | None = None
        self._group_topics: frozenset[str] = frozenset()
        self._last_assignment: tuple[TopicPartition, ...] = ()
        self._changed = asyncio.Event()
        self._revoked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_poll = 0.0
        self._waiting_in_poll = 0
        self._next_heartbeat = 0.0

    def __repr__(self) -> str:
        return (
            f"member {self.member_id or '(no id yet)'} of group {self.group_id!r} "
            f"({self.state.value}, generation {self.generation_id})"
        )

    # -- what the consumer asks ------------------------------------------------------

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_leader(self) -> bool:
        return bool(self.member_id) and self.member_id == self.leader_id

    @property
    def revoke_requested(self) -> bool:
        """A rebalance waits for the consumer to give up ``owned`` (then call ``revoked``)."""
        return self.state is MemberState.REVOKING and not self._revoked.is_set()

    @property
    def rebalancing(self) -> bool:
        return self.state in (MemberState.REVOKING, MemberState.JOINING) or (
            self.state is MemberState.UNJOINED and self.subscription is not None
        )

    def commit_generation(self) -> tuple[int, str] | None:
        """(generation id, member id) to commit with, or None when the member has no generation.

        A member that is giving its partitions back still has its generation: the
        coordinator accepts its commits until the next generation starts.
        """
        if self.generation_id < 0 or self.state not in (MemberState.STABLE, MemberState.REVOKING):
            return None
        return self.generation_id, self.member_id

    def take_assignment(self) -> frozenset[TopicPartition] | None:
        """The assignment of the generation just joined, once; the consumer now owns it."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.owned = pending
        return pending

    def revoked(self) -> None:
        """The consumer gave up ``owned`` (called ``on_revoke`` or ``on_lost``, dropped records)."""
        self.owned = frozenset()
        self._revoked.set()
        self._changed.set()

    def take_poll_timeout(self) -> MaxPollIntervalExceededError | None:
        error, self.poll_timeout_error = self.poll_timeout_error, None
        return error

    # -- the application's poll clock ------------------------------------------------

    def poll_started(self) -> None:
        """``poll`` was called: the poll clock restarts, and a member that left rejoins."""
        self._last_poll = _now()
        if self.state is MemberState.LEFT and self.poll_timeout_error is None:
            log.info("%r: polled again after leaving; rejoining", self)
            self.state = MemberState.UNJOINED
            self._rejoin_needed = True
            self._changed.set()

    def waiting_in_poll(self, waiting: bool) -> None:
        """Time spent waiting inside ``poll`` for records is not application time."""
        self._waiting_in_poll += 1 if waiting else -1
        self._last_poll = _now()

    def _poll_deadline(self) -> float | None:
        if self._waiting_in_poll:
            return None
        return self._last_poll + self._max_poll_interval_ms / 1000

    # -- subscription and lifecycle --------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        """Join with these topics (a change rejoins); starts the task the first time."""
        wanted = frozenset(topics)
        if wanted == self.subscription:
            return
        first = self.subscription is None
        self.subscription = wanted
        if first:
            self._last_poll = _now()
            self._start()
        else:
            self.request_rejoin(f"subscription changed to {sorted(wanted)}")

    def request_rejoin(self, reason: str) -> None:
        if self.state in (MemberState.FAILED, MemberState.CLOSED):
            return
        if not self._rejoin_needed:
            log.info("%r: rejoining: %s", self, reason)
        self._rejoin_needed = True
        self._changed.set()

    def check_partition_counts(self, counts: dict[str, int]) -> None:
        """The leader rejoins when a topic of the group appeared or gained partitions."""
        if not self.is_leader or self.state is not MemberState.STABLE:
            return
        for topic, count in counts.items():
            known = topic in self.assigned_partition_counts or topic in self._group_topics
            if known and self.assigned_partition_counts.get(topic) != count:
                self.request_rejoin(f"topic {topic!r} now has {count} partition(s)")
                return

    def _start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"group-{self.group_id}-membership")
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if not isinstance(exc, LogServerError):
            exc = LogServerError(f"group {self.group_id!r}: membership task died: {exc!r}")
        log.error("%r: %s", self, exc)
        self.error = exc
        self.state = MemberState.FAILED
        self._on_change()

    async def close(self, *, leave: bool = True) -> None:
        """Stop the task; a dynamic member with an id sends LeaveGroup (bounded, errors logged)."""
        task, self._task = self._task, None
        if task is not None:
            for _ in range(50):  # a cancel can be lost in a race with a reply
                task.cancel()
                done, _ = await asyncio.wait((task,), timeout=0.1)
                if done:
                    break
        if leave and self.state is not MemberState.FAILED:
            await self._leave("the consumer is closing")
        self.state = MemberState.CLOSED

    # -- the task ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            if self.state is MemberState.LEFT:
                await self._changed.wait()  # for poll_started
            elif self._rejoin_needed:
                await self._rebalance()
            else:
                await self._heartbeat_when_due()

    async def _wait_changed(self, until: float | None) -> None:
        await _wait(self._changed, until)

    def _poll_expired(self) -> bool:
        deadline = self._poll_deadline()
        return deadline is not None and _now() >= deadline

    async def _heartbeat_when_due(self) -> None:
        until = _earliest(self._next_heartbeat, self._poll_deadline())
        await self._wait_changed(until)
        if self._rejoin_needed or self.state is not MemberState.STABLE:
            return
        if self._poll_expired():
            await self._leave_after_poll_timeout()
        elif _now() >= self._next_heartbeat:
            await self._heartbeat()

    async def _heartbeat(self) -> None:
        body = {
            "group_id": self.group_id,
            "generation_id": self.generation_id,
            "member_id": self.member_id,
            "group_instance_id": self.group_instance_id,
        }
        self._next_heartbeat = _now() + self._heartbeat_s
        try:
            await self._lookup.request(
                self.group_id,
                ApiKey.HEARTBEAT,
                body,
                timeout_ms=min(self._request_timeout_ms, self._session_timeout_ms),
                retry=False,
            )
        except RebalanceInProgressError:
            self.request_rejoin("the group is rebalancing")
        except _GENERATION_LOST as exc:
            self._lose_generation(f"heartbeat: {exc}")
        except FencedInstanceIdError as exc:
            raise FencedInstanceIdError(
                f"group {self.group_id!r}: another consumer took group_instance_id "
                f"{self.group_instance_id!r} ({exc.message}); this one stops"
            ) from exc
        except _COORDINATOR_LOST as exc:
            log.info("%r: heartbeat failed (%s); finding the coordinator again", self, exc)
            self._lookup.forget(self.group_id)
            self._next_heartbeat = _now() + self._backoff_s
        except LogServerError as exc:
            if not exc.retriable:
                raise
            log.info("%r: heartbeat failed (%s); trying again", self, exc)
            self._next_heartbeat = _now() + self._backoff_s

    def _lose_generation(self, reason: str) -> None:
        log.info("%r: lost its generation (%s); rejoining", self, reason)
        self.generation_id = -1
        self._last_assignment = ()
        if not self.is_static:
            self.member_id = ""
        self.request_rejoin(reason)

    async def _leave_after_poll_timeout(self) -> None:
        elapsed_ms = int((_now() - self._last_poll) * 1000)
        message = (
            f"member {self.member_id!r} of group {self.group_id!r} left the group: "
            f"{elapsed_ms} ms passed between calls to poll(), more than "
            f"max_poll_interval_ms={self._max_poll_interval_ms}; its partitions go to other "
            "members. Process records faster, raise max_poll_interval_ms, or take fewer "
            "records per poll (max_records). The next poll() rejoins the group."
        )
        log.warning("%s", message)
        await self._leave("max_poll_interval_ms passed without a poll")
        self.generation_id = -1
        self.member_id = ""
        self._last_assignment = ()
        self._pending = None
        self._rejoin_needed = True
        self.state = MemberState.LEFT
        self.poll_timeout_error = MaxPollIntervalExceededError(message)
        self._on_change()

    async def _leave(self, reason: str) -> None:
        if self.is_static or not self.member_id:
            return  # a static member never leaves by request: its session expires (Kafka's way)
        body = {"group_id": self.group_id, "members": [[self.member_id, None]]}
        try:
            reply, _ = await self._lookup.request(
                self.group_id, ApiKey.LEAVE_GROUP, body, timeout_ms=self._request_timeout_ms
            )
        except LogServerError as exc:
            log.info("%r: LeaveGroup (%s) failed: %s", self, reason, exc)
            return
        for member_id, _instance, code in reply.get("members") or []:
            if code:
                log.info("%r: LeaveGroup for %s: %s", self, member_id, error_for_code(code))
        log.info("%r left the group: %s", self, reason)

    # -- a rebalance ------------------------------------------------------------------

    async def _rebalance(self) -> None:
        self._pending = None
        if self.owned:
            self.state = MemberState.REVOKING
            self._revoked.clear()
            self._on_change()
            if not await self._wait_for_revoke():
                return
        self.state = MemberState.JOINING
        self._rejoin_needed = False
        joined = await self._join()
        if joined is None:
            self._rejoin_needed = True
            await asyncio.sleep(self._backoff_s)
            return
        assignment = await self._sync(joined)
        if assignment is None:
            self._rejoin_needed = True
            return
        self.rebalances += 1
        self._last_assignment = assignment.partitions
        self.state = MemberState.STABLE
        self._next_heartbeat = _now() + self._heartbeat_s
        if self._rejoin_needed:  # asked again while joining: this assignment is already stale
            return
        self._pending = frozenset(assignment.partitions)
        log.info(
            "%r joined (protocol %s, leader %s): %d partition(s) %s",
            self,
            self.protocol,
            self.leader_id,
            len(self._pending),
            sorted(map(str, self._pending)),
        )
        self._on_change()

    async def _wait_for_revoke(self) -> bool:
        """Heartbeat until the consumer gave its partitions up; False if it never polled."""
        while not self._revoked.is_set():
            if await _wait(self._revoked, _earliest(self._next_heartbeat, self._poll_deadline())):
                break
            if self._poll_expired():
                await self._leave_after_poll_timeout()
                return False
            if _now() >= self._next_heartbeat and self.generation_id >= 0:
                await self._heartbeat()  # keeps the session alive while the group waits for us
        return True

    async def _join(self) -> dict[str, Any] | None:
        """JoinGroup until answered (a new member id is asked for first); None: try again."""
        for _ in range(3):
            body = {
                "group_id": self.group_id,
                "session_timeout_ms": self._session_timeout_ms,
                "rebalance_timeout_ms": self._max_poll_interval_ms,
                "member_id": self.member_id,
                "group_instance_id": self.group_instance_id,
                "protocol_type": "consumer",
                "protocols": [[a.name, self._metadata(a)] for a in self._assignors],
            }
            timeout_ms = max(self._request_timeout_ms, self._max_poll_interval_ms + _JOIN_MARGIN_MS)
            try:
                reply = await self._request_raw(ApiKey.JOIN_GROUP, body, timeout_ms)
            except _COORDINATOR_LOST as exc:
                log.info("%r: JoinGroup failed: %s; trying again", self, exc)
                return None
            code = reply.get("error", 0)
            if code == MemberIdRequiredError.code:
                self.member_id = str(reply["member_id"])
                continue  # KIP-394: join again, now with the id the coordinator made
            if code:
                error = error_for_code(code, reply.get("error_message"))
                if isinstance(error, UnknownMemberIdError):
                    self.member_id = ""
                    self.generation_id = -1
                    continue
                if error.retriable or isinstance(error, RebalanceInProgressError):
                    log.info("%r: JoinGroup: %s; trying again", self, error)
                    return None
                raise type(error)(f"group {self.group_id!r}: JoinGroup refused: {error.message}")
            self.member_id = str(reply["member_id"])
            self.generation_id = int(reply["generation_id"])
            self.protocol = reply.get("protocol_name")
            self.leader_id = str(reply.get("leader") or "")
            return reply
        return None

    def _metadata(self, assignor: PartitionAssignor) -> bytes:
        """The subscription, with what the member owned for the assignor that keeps it.

        Only ``sticky`` reads ``owned``, so only its metadata carries it. A static
        member never sends it: the coordinator hands a restarted static member its
        old assignment without a rebalance only if its metadata is unchanged, and
        a fresh process cannot know what the previous one owned (KIP-345).
        """
        owned: tuple[TopicPartition, ...] = ()
        if assignor.name == "sticky" and not self.is_static and self.generation_id >= 0:
            owned = self._last_assignment
        topics = tuple(sorted(self.subscription or ()))
        return Subscription(topics, owned=owned).encode()

    async def _request_raw(
        self, api_key: ApiKey, body: dict[str, Any], timeout_ms: int
    ) -> dict[str, Any]:
        """A group request whose error answers carry data (JoinGroup's new member id).

        ``CoordinatorLookup.request`` raises a top-level error as its class; this
        finds the coordinator the same way but hands back the whole answer,
        after trying again on the coordinator-moved codes.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        backoff = self._backoff_s
        while True:
            remaining_ms = int((deadline - loop.time()) * 1000)
            if remaining_ms <= 0:
                raise RequestTimedOutError(f"group {self.group_id!r}: no answer to {api_key.name}")
            try:
                connection = await self._lookup.connection(self.group_id, timeout_ms=remaining_ms)
                future = connection.send(api_key, body)
                assert future is not None
                reply, _ = await connection.wait(future, remaining_ms)
            except (NetworkError, RequestTimedOutError) as exc:
                self._lookup.forget(self.group_id)
                if loop.time() + backoff >= deadline:
                    raise
                log.debug("%r: %s failed: %s", self, api_key.name, exc)
            else:
                code = reply.get("error", 0)
                if code not in (
                    NotCoordinatorError.code,
                    CoordinatorNotAvailableError.code,
                    CoordinatorLoadInProgressError.code,
                ):
                    return reply
                if code != CoordinatorLoadInProgressError.code:
                    self._lookup.forget(self.group_id)
                if loop.time() + backoff >= deadline:
                    raise error_for_code(code, reply.get("error_message"))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _sync(self, joined: dict[str, Any]) -> Assignment | None:
        assignments: list[list[Any]] = []
        if self.is_leader:
            assignments = await self._assign(joined.get("members") or [])
        body = {
            "group_id": self.group_id,
            "generation_id": self.generation_id,
            "member_id": self.member_id,
            "group_instance_id": self.group_instance_id,
            "assignments": assignments,
        }
        timeout_ms = max(self._request_timeout_ms, self._max_poll_interval_ms + _JOIN_MARGIN_MS)
        try:
            reply, _ = await self._lookup.request(
                self.group_id, ApiKey.SYNC_GROUP, body, timeout_ms=timeout_ms
            )
        except RebalanceInProgressError:
            log.info("%r: the group rebalanced again before SyncGroup; rejoining", self)
            return None
        except _GENERATION_LOST as exc:
            self._lose_generation(f"SyncGroup: {exc}")
            return None
        except _COORDINATOR_LOST as exc:
            log.info("%r: SyncGroup failed: %s; rejoining", self, exc)
            return None
        except FencedInstanceIdError as exc:
            raise FencedInstanceIdError(
                f"group {self.group_id!r}: another consumer took group_instance_id "
                f"{self.group_instance_id!r} ({exc.message}); this one stops"
            ) from exc
        data = reply.get("assignment") or b""
        if not data:
            return Assignment(())
        try:
            return Assignment.decode(data)
        except MemberMetadataError as exc:
            raise InconsistentGroupProtocolError(
                f"group {self.group_id!r}: the leader's assignment cannot be read: {exc.message}"
            ) from exc

    async def _assign(self, members: list[list[Any]]) -> list[list[Any]]:
        """The leader's work: every member's share, from every member's subscription."""
        assignor = next((a for a in self._assignors if a.name == self.protocol), None)
        if assignor is None:
            raise InconsistentGroupProtocolError(
                f"group {self.group_id!r} chose assignor {self.protocol!r}, which this member "
                f"did not offer ({[a.name for a in self._assignors]})"
            )
        subscriptions: dict[str, Subscription] = {}
        for member_id, _instance_id, metadata in members:
            try:
                subscriptions[member_id] = Subscription.decode(metadata)
            except MemberMetadataError as exc:
                log.error("%r: member %s sent unreadable metadata (%s)", self, member_id, exc)
                subscriptions[member_id] = Subscription(())
        topics = {t for s in subscriptions.values() for t in s.topics}
        self._group_topics = frozenset(topics)
        counts: dict[str, int] = {}
        if topics:
            try:
                metadata = await self._cluster.refresh(topics)
            except LogServerError as exc:
                log.warning("%r: no metadata to assign from (%s)", self, exc)
            else:
                counts = {t: len(p) for t, p in metadata.topics.items() if t in topics and p}
        self.assigned_partition_counts = counts
        result = assignor.assign(counts, subscriptions)
        log.info(
            "%r leads generation %d: %s assigns %d member(s) over %s",
            self,
            self.generation_id,
            assignor.name,
            len(subscriptions),
            counts,
        )
        return [
            [member_id, result.get(member_id, Assignment(())).encode()]
            for member_id in subscriptions
        ]


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _wait(event: asyncio.Event, until: float | None) -> bool:
    """Wait for ``event`` until loop time ``until`` (None: no limit); whether it is set."""
    if until is None:
        await event.wait()
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, until - _now())):
            await event.wait()
    return event.is_set()


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
