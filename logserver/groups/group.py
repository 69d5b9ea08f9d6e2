"""One consumer group's state machine: members, generations, rebalances. No I/O, no clock.

Kafka's classic (eager) protocol, as docs/groups.md sets it out::

    Empty ──join──▶ PreparingRebalance ──join phase ends──▶ CompletingRebalance
      ▲                  ▲     │ (no member left)              │ leader's SyncGroup
      │                  │     ▼                               ▼
      └──────────────────┼── Empty                           Stable
                         └── a join, leave, expiry or sync timeout in Completing/Stable

Every call takes the time (``now_ms``) and returns at once. A JoinGroup or
SyncGroup that must wait returns ``Wait``; its answer appears later in
``take_answers()``, after whichever call (another member's join, the
leader's sync, ``tick``) completed it. The I/O layer
(``group_coordinator.py``) keeps the waiting requests and calls ``tick`` from
its periodic sweep, which ends join phases at their deadline, removes members
that did not sync in time, and expires silent members and unclaimed member
ids. Deadlines are fixed when a phase starts, so a rebalance always ends: a
join phase lasts at most the largest rebalance timeout of the members at its
start (for an ``Empty`` group, ``group.initial.rebalance.delay.ms`` extended
by new joins, and never past the first joiner's rebalance timeout); members
that come and go during it do not move the deadline.

Errors that need no member id in the answer are raised (``LogServerError``
subclasses with Kafka's codes); the rest are results.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping

from client.errors import (
    FencedInstanceIdError,
    GroupMaxSizeReachedError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidSessionTimeoutError,
    LogServerError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from logserver.groups.member import Member, common_protocols, select_protocol
from logserver.groups.messages import (
    Answer,
    GroupLimits,
    GroupState,
    JoinRequest,
    JoinResult,
    SyncResult,
    Wait,
)
from logserver.groups.ownership import owned_partitions
from logserver.groups.validation import new_member_id

log = logging.getLogger(__name__)

__all__ = [
    "Answer",
    "Group",
    "GroupLimits",
    "GroupState",
    "JoinRequest",
    "JoinResult",
    "SyncResult",
    "Wait",
]


class Group:
    def __init__(
        self,
        group_id: str,
        limits: GroupLimits,
        *,
        make_member_id: Callable[[str | None], str] = new_member_id,
    ) -> None:
        self.group_id = group_id
        self.limits = limits
        self._make_member_id = make_member_id
        self.state = GroupState.EMPTY
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}
        self.pending: dict[str, int] = {}
        """Member ids handed out with MEMBER_ID_REQUIRED, not joined yet: id -> expiry (ms)."""
        self.static: dict[str, str] = {}
        """group_instance_id -> member id."""
        self.join_deadline_ms: int | None = None
        self.sync_deadline_ms: int | None = None
        # An Empty group's first join phase: group.initial.rebalance.delay.ms, extended while
        # new members keep joining, by at most the time left of the rebalance timeout.
        self._in_initial_delay = False
        self._initial_delay_left_ms = 0
        self._initial_delay_joined = False
        self._join_counter = 0
        self._answers: list[Answer] = []

    # -- questions -------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Group({self.group_id!r}, {self.state.value}, generation {self.generation}, "
            f"{len(self.members)} member(s))"
        )

    @property
    def idle(self) -> bool:
        """Nothing to keep in memory but what was stored: no member, no member id handed out."""
        return self.state in (GroupState.EMPTY, GroupState.DEAD) and not self.pending

    def take_answers(self) -> list[Answer]:
        """The answers to waiting requests produced since the last call."""
        answers, self._answers = self._answers, []
        return answers

    # -- JoinGroup -------------------------------------------------------------------

    def join(self, request: JoinRequest, now_ms: int) -> JoinResult | Wait:
        """Handle a JoinGroup; raises for the errors listed in docs/groups.md."""
        self._check_alive()
        limits = self.limits
        low, high = limits.min_session_timeout_ms, limits.max_session_timeout_ms
        if not low <= request.session_timeout_ms <= high:
            raise InvalidSessionTimeoutError(
                f"session_timeout_ms {request.session_timeout_ms} is outside the broker's "
                f"bounds [{low}, {high}] "
                "(group.min/max.session.timeout.ms): choose one within them"
            )
        member_id = request.member_id
        instance_id = request.group_instance_id
        if member_id:
            if instance_id is not None:
                self._check_static(member_id, instance_id)
            if member_id in self.pending:
                self._check_protocols(request, None)
                del self.pending[member_id]
                return self._add_member(member_id, request, now_ms)
            member = self.members.get(member_id)
            if member is None:
                raise UnknownMemberIdError(
                    f"member {member_id!r} is not in group {self.group_id!r}: "
                    "join again with an empty member id"
                )
            self._check_protocols(request, member_id)
            return self._rejoin(member, request, now_ms)
        if instance_id is not None and instance_id in self.static:
            self._check_protocols(request, self.static[instance_id])
            return self._replace_static(self.static[instance_id], request, now_ms)
        self._check_protocols(request, None)
        new_id = self._make_member_id(instance_id or request.client_id)
        if instance_id is not None:
            return self._add_member(new_id, request, now_ms)
        self._check_size()
        self.pending[new_id] = now_ms + request.session_timeout_ms
        return JoinResult(
            member_id=new_id,
            error=MemberIdRequiredError(
                f"join group {self.group_id!r} again with member id {new_id!r}"
            ),
        )

    def _check_alive(self) -> None:
        if self.state is GroupState.DEAD:
            raise UnknownMemberIdError(f"group {self.group_id!r} was deleted: join it again")

    def _check_static(self, member_id: str, instance_id: str) -> None:
        current = self.static.get(instance_id)
        if current is not None and current != member_id:
            raise FencedInstanceIdError(
                f"group instance id {instance_id!r} now belongs to member {current!r}: "
                f"member {member_id!r} was replaced by a newer instance with the same id"
            )

    def _check_protocols(self, request: JoinRequest, member_id: str | None) -> None:
        """Refuse a member that could not share a protocol with the others."""
        names = [name for name, _ in request.protocols]
        if not request.protocol_type or not names:
            raise InconsistentGroupProtocolError(
                f"group {self.group_id!r}: a member needs a protocol type and at least one "
                "protocol (assignor)"
            )
        others = [m for m in self.members.values() if m.member_id != member_id]
        if not others:
            return
        supported = common_protocols(others) or set()
        group_type = others[0].protocol_type
        if request.protocol_type != group_type or not supported.intersection(names):
            raise InconsistentGroupProtocolError(
                f"group {self.group_id!r} uses protocol type {group_type!r} with the "
                f"protocols {sorted(supported)}; this member offers {request.protocol_type!r} "
                f"with {names}: configure an assignor the group's members all support"
            )

    def _check_size(self) -> None:
        limit = self.limits.max_size
        if limit is not None and len(self.members) + len(self.pending) >= limit:
            raise GroupMaxSizeReachedError(
                f"group {self.group_id!r} has {limit} member(s), its maximum "
                "(group.max.size): use another group or raise the limit"
            )

    def _add_member(self, member_id: str, request: JoinRequest, now_ms: int) -> Wait:
        self._check_size()
        member = Member(
            member_id=member_id,
            group_instance_id=request.group_instance_id,
            client_id=request.client_id,
            client_host=request.client_host,
            session_timeout_ms=request.session_timeout_ms,
            rebalance_timeout_ms=request.rebalance_timeout_ms,
            protocol_type=request.protocol_type,
            protocols=request.protocols,
            last_seen_ms=now_ms,
        )
        self.members[member_id] = member
        if request.group_instance_id is not None:
            self.static[request.group_instance_id] = member_id
        self._initial_delay_joined = True
        return self._join_and_rebalance(member, now_ms)

    def _update(self, member: Member, request: JoinRequest, now_ms: int) -> None:
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.protocol_type = request.protocol_type
        member.protocols = request.protocols
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.last_seen_ms = now_ms

    def _rejoin(self, member: Member, request: JoinRequest, now_ms: int) -> JoinResult | Wait:
        unchanged = member.protocols == request.protocols
        state = self.state
        if state is GroupState.COMPLETING_REBALANCE and unchanged:
            # It lost our answer: give it again, for this generation.
            member.last_seen_ms = now_ms
            return self._join_result(member.member_id)
        if state is GroupState.STABLE and unchanged and member.member_id != self.leader_id:
            member.last_seen_ms = now_ms
            return self._join_result(member.member_id)
        self._update(member, request, now_ms)
        return self._join_and_rebalance(member, now_ms)

    def _replace_static(self, old_id: str, request: JoinRequest, now_ms: int) -> JoinResult | Wait:
        """A known instance id joins with a new member id: the old member is fenced (KIP-345)."""
        old = self.members.pop(old_id)
        self._answer_waiting(
            old,
            FencedInstanceIdError(
                f"member {old_id!r} was replaced by a new instance with group instance id "
                f"{request.group_instance_id!r}"
            ),
        )
        new_id = self._make_member_id(request.group_instance_id)
        member = dataclasses.replace(old, member_id=new_id, join_waiting_since_ms=None)
        member.sync_waiting = False
        self.members[new_id] = member
        assert request.group_instance_id is not None
        self.static[request.group_instance_id] = new_id
        previous_leader = self.leader_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        if self.state is GroupState.STABLE and old.protocols == request.protocols:
            self._update(member, request, now_ms)
            # No rebalance. The leader named is the one before the replacement, so a static
            # leader coming back does not think it must assign (Kafka does the same).
            return JoinResult(
                member_id=new_id,
                generation_id=self.generation,
                protocol_name=self.protocol_name,
                leader=previous_leader or "",
            )
        self._update(member, request, now_ms)
        return self._join_and_rebalance(member, now_ms)

    def _join_and_rebalance(self, member: Member, now_ms: int) -> Wait:
        self._join_counter += 1
        member.join_order = self._join_counter
        member.join_waiting_since_ms = now_ms
        member.last_seen_ms = now_ms
        if self.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(now_ms)
        self._try_complete_join(now_ms)
        return Wait(member.member_id)

    # -- rebalancing ------------------------------------------------------------------

    def _max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def _prepare_rebalance(self, now_ms: int) -> None:
        was_empty = self.state is GroupState.EMPTY
        if self.state is GroupState.COMPLETING_REBALANCE:
            error = RebalanceInProgressError(
                f"group {self.group_id!r} is rebalancing again: join it again"
            )
            for member in self.members.values():
                member.assignment, member.owned = b"", None
                if member.sync_waiting:
                    member.sync_waiting = False
                    self._answers.append(Answer("sync", member.member_id, SyncResult(error=error)))
        log.info(
            "group %r: preparing to rebalance (generation %d, %d member(s))",
            self.group_id,
            self.generation,
            len(self.members),
        )
        self.state = GroupState.PREPARING_REBALANCE
        self.sync_deadline_ms = None
        timeout = self._max_rebalance_timeout_ms()
        delay = self.limits.initial_rebalance_delay_ms
        if was_empty and delay > 0:
            first = min(delay, timeout)
            self._in_initial_delay = True
            self._initial_delay_left_ms = timeout - first
            self._initial_delay_joined = False
            self.join_deadline_ms = now_ms + first
        else:
            self._in_initial_delay = False
            self.join_deadline_ms = now_ms + timeout

    def _all_joined(self) -> bool:
        return not self.pending and all(
            m.join_waiting_since_ms is not None for m in self.members.values()
        )

    def _try_complete_join(self, now_ms: int) -> None:
        if self.state is not GroupState.PREPARING_REBALANCE or self._in_initial_delay:
            return
        if self._all_joined():
            self._complete_join(now_ms)

    def _complete_join(self, now_ms: int) -> None:
        """End the join phase: drop who did not rejoin, start the next generation."""
        for member in [m for m in self.members.values() if m.join_waiting_since_ms is None]:
            self._remove(member, None)
        self.join_deadline_ms = None
        self._in_initial_delay = False
        self.generation += 1
        if not self.members:
            log.info("group %r: empty at generation %d", self.group_id, self.generation)
            self.state = GroupState.EMPTY
            self.protocol_name = None
            self.leader_id = None
            return
        members = sorted(self.members.values(), key=lambda m: m.join_order)
        protocol = select_protocol(members)
        if protocol is None:  # cannot happen: every join checks it shares one with the rest
            error = InconsistentGroupProtocolError(
                f"group {self.group_id!r}: its members share no protocol"
            )
            for member in members:
                self._remove(member, error)
            self.state = GroupState.EMPTY
            self.protocol_name = self.leader_id = None
            return
        self.protocol_type = members[0].protocol_type
        self.protocol_name = protocol
        if self.leader_id not in self.members:
            self.leader_id = members[0].member_id
        log.info(
            "group %r: generation %d with %d member(s), protocol %s, leader %s",
            self.group_id,
            self.generation,
            len(members),
            protocol,
            self.leader_id,
        )
        self.state = GroupState.COMPLETING_REBALANCE
        self.sync_deadline_ms = now_ms + self._max_rebalance_timeout_ms()
        for member in members:
            member.join_waiting_since_ms = None
            member.last_seen_ms = now_ms
            member.synced = False
            result = self._join_result(member.member_id)
            self._answers.append(Answer("join", member.member_id, result))

    def _join_result(self, member_id: str) -> JoinResult:
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if member_id == self.leader_id:
            members = tuple(
                (m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                for m in self.members.values()
            )
        return JoinResult(
            member_id=member_id,
            generation_id=self.generation,
            protocol_name=self.protocol_name,
            leader=self.leader_id or "",
            members=members,
        )

    # -- SyncGroup -------------------------------------------------------------------

    def sync(
        self,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
        assignments: Mapping[str, bytes],
        now_ms: int,
    ) -> SyncResult | Wait:
        """Handle a SyncGroup: the leader's ``assignments`` make the group Stable."""
        member = self._current_member(member_id, instance_id)
        self._check_generation(generation_id)
        member.last_seen_ms = now_ms
        if self.state is GroupState.PREPARING_REBALANCE:
            raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing: join it again")
        if self.state is GroupState.STABLE:
            member.synced = True
            return SyncResult(member.assignment)
        member.synced = True
        member.sync_waiting = True
        if member_id == self.leader_id:
            for each in self.members.values():
                each.assignment = bytes(assignments.get(each.member_id, b""))
                each.owned = owned_partitions(each.assignment)
            self.state = GroupState.STABLE
            for each in self.members.values():
                if each.sync_waiting:
                    each.sync_waiting = False
                    each.last_seen_ms = now_ms
                    self._answers.append(
                        Answer("sync", each.member_id, SyncResult(each.assignment))
                    )
            if all(m.synced for m in self.members.values()):
                self.sync_deadline_ms = None
        return Wait(member_id)

    def _current_member(self, member_id: str, instance_id: str | None) -> Member:
        self._check_alive()
        if instance_id is not None:
            self._check_static(member_id, instance_id)
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberIdError(
                f"member {member_id!r} is not in group {self.group_id!r} (it left, expired or "
                "never joined): join again"
            )
        return member

    def _check_generation(self, generation_id: int) -> None:
        if generation_id != self.generation:
            raise IllegalGenerationError(
                f"generation {generation_id} is not the group's current one "
                f"({self.generation}): rejoin"
            )

    # -- Heartbeat, LeaveGroup, OffsetCommit checks ----------------------------------------

    def heartbeat(
        self, member_id: str, instance_id: str | None, generation_id: int, now_ms: int
    ) -> None:
        """Refresh the member's session; raises what the member must do about the group."""
        member = self._current_member(member_id, instance_id)
        member.last_seen_ms = now_ms
        if self.state is GroupState.PREPARING_REBALANCE:
            raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing: join it again")
        self._check_generation(generation_id)

    def leave(
        self, leaving: Iterable[tuple[str, str | None]], now_ms: int
    ) -> list[tuple[str, str | None, int]]:
        """Remove the members named; ``(member_id, instance_id, error code)`` for each."""
        results: list[tuple[str, str | None, int]] = []
        removed = False
        for member_id, instance_id in leaving:
            try:
                if instance_id is not None:
                    current = self.static.get(instance_id)
                    if current is None:
                        raise UnknownMemberIdError(f"no member has instance id {instance_id!r}")
                    if member_id and member_id != current:
                        self._check_static(member_id, instance_id)
                    member_id = current
                if member_id in self.pending:
                    del self.pending[member_id]
                    self._try_complete_join(now_ms)
                else:
                    member = self.members.get(member_id)
                    if member is None:
                        raise UnknownMemberIdError(f"{member_id!r} is not a member")
                    self._remove(member, UnknownMemberIdError(f"member {member_id!r} left"))
                    removed = True
            except LogServerError as exc:
                results.append((member_id, instance_id, exc.code))
            else:
                results.append((member_id, instance_id, 0))
        if removed:
            self._after_removal(now_ms)
        return results

    def check_commit(
        self, member_id: str, instance_id: str | None, generation_id: int, now_ms: int
    ) -> Member | None:
        """May this member commit now? The member (None for a simple commit), or raises.

        As in Kafka, a commit while PreparingRebalance is accepted (a member commits what
        it processed before it rejoins); while CompletingRebalance it is not (the member
        does not know its new assignment yet).
        """
        self._check_alive()
        if generation_id < 0 and not member_id:
            if self.members:
                raise UnknownMemberIdError(
                    f"group {self.group_id!r} has {len(self.members)} active member(s): "
                    "commit as a member (with its generation), or stop the members first"
                )
            return None
        member = self._current_member(member_id, instance_id)
        self._check_generation(generation_id)
        if self.state is GroupState.COMPLETING_REBALANCE:
            raise RebalanceInProgressError(
                f"group {self.group_id!r} is completing a rebalance: sync, then commit"
            )
        member.last_seen_ms = now_ms
        return member

    # -- time ------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """The sweep: deadlines that passed, silent members, unclaimed member ids."""
        for member_id, expiry in list(self.pending.items()):
            if now_ms >= expiry:
                del self.pending[member_id]
        expired = [
            m
            for m in self.members.values()
            if not m.waiting and now_ms - m.last_seen_ms >= m.session_timeout_ms
        ]
        for member in expired:
            log.info(
                "group %r: member %s expired (silent for %d ms)",
                self.group_id,
                member.member_id,
                now_ms - member.last_seen_ms,
            )
            self._remove(member, None)
        if self.state is GroupState.PREPARING_REBALANCE:
            deadline = self.join_deadline_ms
            if deadline is not None and now_ms >= deadline:
                if (
                    self._in_initial_delay
                    and self._initial_delay_joined
                    and (self._initial_delay_left_ms > 0)
                ):
                    step = min(self.limits.initial_rebalance_delay_ms, self._initial_delay_left_ms)
                    self._initial_delay_left_ms -= step
                    self._initial_delay_joined = False
                    self.join_deadline_ms = now_ms + step
                else:
                    self._complete_join(now_ms)
                    return
        if expired:
            self._after_removal(now_ms)
            return
        if self.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(now_ms)
        elif (
            self.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)
            and self.sync_deadline_ms is not None
            and now_ms >= self.sync_deadline_ms
        ):
            self.sync_deadline_ms = None
            late = [m for m in self.members.values() if not m.synced]
            error = RebalanceInProgressError(
                f"group {self.group_id!r}: members did not sync in time; join it again"
            )
            for member in late:
                self._remove(member, error)
            if late:
                self._after_removal(now_ms)

    def next_deadline_ms(self) -> int | None:
        """The earliest time ``tick`` has something to do (for tests and sweeps)."""
        times = [*self.pending.values()]
        times += [m.last_seen_ms + m.session_timeout_ms for m in self.members.values()]
        times += [t for t in (self.join_deadline_ms, self.sync_deadline_ms) if t is not None]
        return min(times, default=None)

    # -- removal ---------------------------------------------------------------------

    def _answer_waiting(self, member: Member, error: LogServerError) -> None:
        if member.join_waiting_since_ms is not None:
            member.join_waiting_since_ms = None
            self._answers.append(
                Answer("join", member.member_id, JoinResult(member.member_id, error=error))
            )
        if member.sync_waiting:
            member.sync_waiting = False
            self._answers.append(Answer("sync", member.member_id, SyncResult(error=error)))

    def _remove(self, member: Member, error: LogServerError | None) -> None:
        self._answer_waiting(
            member,
            error or UnknownMemberIdError(f"member {member.member_id!r} was removed"),
        )
        del self.members[member.member_id]
        instance_id = member.group_instance_id
        if instance_id is not None and self.static.get(instance_id) == member.member_id:
            del self.static[instance_id]
        if self.leader_id == member.member_id:
            self.leader_id = None

    def _after_removal(self, now_ms: int) -> None:
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(now_ms)
        self._try_complete_join(now_ms)

    def close(self, error: LogServerError) -> None:
        """This broker no longer coordinates the group: answer every waiting request
        with ``error`` and forget the members (state ``Dead``)."""
        for member in list(self.members.values()):
            self._answer_waiting(member, error)
        self.members.clear()
        self.pending.clear()
        self.static.clear()
        self.state = GroupState.DEAD
        self.join_deadline_ms = self.sync_deadline_ms = None
