"""A rebalance always completes: random joins, leaves, heartbeats, syncs and time, checked.

Hypothesis drives the pure state machine (logserver/groups/group.py) with a fake
clock moved in sweep-sized steps, ``tick`` after each (what the coordinator's
sweep does). Clients are modelled as well-behaved or not at random: they may
rejoin, leave, stop talking, or send a stale generation. Invariants:

- the generation never goes down;
- a Stable group's members each hold this generation's assignment from the leader;
- no JoinGroup waits longer than the largest rebalance timeout plus one sweep, and no
  SyncGroup longer than that either;
- every waiting request is answered once the clients fall silent: the group ends Empty.
"""

from __future__ import annotations

import contextlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from client.errors import LogServerError
from logserver.groups.group import GroupLimits, GroupState, JoinResult, SyncResult, Wait
from tests.logserver.groups.helpers import T0, make_group, request

SWEEP_MS = 100
REBALANCE_CHOICES = (6_000, 15_000)
SESSION_CHOICES = (6_000, 10_000)
MAX_REBALANCE_MS = max(REBALANCE_CHOICES)
PROTOCOLS = (
    (("range", b"r"),),
    (("range", b"r2"),),
    (("roundrobin", b"rr"), ("range", b"r")),
)


class RebalanceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.group = make_group(GroupLimits(initial_rebalance_delay_ms=0))
        self.last_generation = 0
        self.pending_ids: list[str] = []  # MEMBER_ID_REQUIRED handed out, not claimed yet
        self.known: dict[str, int] = {}  # member id -> the generation the client last learned
        self.instances: dict[str, str | None] = {}  # member id -> its group_instance_id
        self.leader_view: dict[str, list[str]] = {}  # member id -> members, when told it leads
        self.join_waits: dict[str, int] = {}  # member id -> since when its JoinGroup waits
        self.sync_waits: dict[str, int] = {}

    @initialize(delay_ms=st.sampled_from([0, 3_000]))
    def limits(self, delay_ms: int) -> None:
        """With and without group.initial.rebalance.delay.ms."""
        self.group = make_group(GroupLimits(initial_rebalance_delay_ms=delay_ms))

    # -- plumbing ----------------------------------------------------------------------

    def deliver(self) -> None:
        for answer in self.group.take_answers():
            waits = self.join_waits if answer.kind == "join" else self.sync_waits
            assert answer.member_id in waits, f"an answer nobody waits for: {answer}"
            del waits[answer.member_id]
            if isinstance(answer.result, JoinResult) and answer.result.error is None:
                self.learn(answer.result)

    def learn(self, result: JoinResult) -> None:
        self.known[result.member_id] = result.generation_id
        if result.leader == result.member_id:
            self.leader_view[result.member_id] = [m[0] for m in result.members]
        else:
            self.leader_view.pop(result.member_id, None)

    def join(self, member_id: str, instance_id: str | None, data: st.DataObject) -> None:
        req = request(
            member_id,
            instance_id=instance_id,
            protocols=data.draw(st.sampled_from(PROTOCOLS)),
            session_ms=data.draw(st.sampled_from(SESSION_CHOICES)),
            rebalance_ms=data.draw(st.sampled_from(REBALANCE_CHOICES)),
        )
        try:
            result = self.group.join(req, self.now)
        except LogServerError:
            self.deliver()
            return
        if isinstance(result, Wait):
            joined = member_id or self.group.static[instance_id]  # type: ignore[index]
            self.join_waits.setdefault(joined, self.now)
            self.instances[joined] = instance_id
        else:
            assert isinstance(result, JoinResult)
            if result.error is not None and result.error.code == 79:
                self.pending_ids.append(result.member_id)
            elif result.error is None:
                self.instances[result.member_id] = instance_id
                self.learn(result)
        self.deliver()

    # -- rules -------------------------------------------------------------------------

    @rule(data=st.data(), instance=st.sampled_from([None, None, "i1", "i2"]))
    def new_member(self, data: st.DataObject, instance: str | None) -> None:
        self.join("", instance, data)

    @precondition(lambda self: self.pending_ids)
    @rule(data=st.data())
    def claim_member_id(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from(self.pending_ids))
        self.pending_ids.remove(member_id)
        self.join(member_id, None, data)

    @precondition(lambda self: self.known or self.group.members)
    @rule(data=st.data())
    def rejoin(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from(sorted(set(self.known) | set(self.group.members))))
        self.join(member_id, self.instances.get(member_id), data)

    @precondition(lambda self: self.group.members)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.group.members)))
        self.group.leave([(member_id, self.instances.get(member_id))], self.now)
        self.deliver()

    @precondition(lambda self: self.known)
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.known)))
        with contextlib.suppress(LogServerError):
            self.group.heartbeat(
                member_id, self.instances.get(member_id), self.known[member_id], self.now
            )
        self.deliver()

    @precondition(lambda self: self.group.members)
    @rule(data=st.data())
    def everyone_rejoins(self, data: st.DataObject) -> None:
        """Well-behaved clients: every member rejoins (as the eager protocol asks)."""
        for member_id in sorted(self.group.members):
            if member_id in self.group.members and member_id not in self.join_waits:
                self.join(member_id, self.instances.get(member_id), data)

    @precondition(lambda self: self.known)
    @rule(data=st.data())
    def sync(self, data: st.DataObject) -> None:
        self.sync_as(data.draw(st.sampled_from(sorted(self.known))))

    @precondition(lambda self: self.leader_view)
    @rule(data=st.data())
    def leader_syncs(self, data: st.DataObject) -> None:
        self.sync_as(data.draw(st.sampled_from(sorted(self.leader_view))))

    def sync_as(self, member_id: str) -> None:
        generation = self.known[member_id]
        assignments = {m: f"{generation}:{m}".encode() for m in self.leader_view.get(member_id, [])}
        try:
            result = self.group.sync(
                member_id, self.instances.get(member_id), generation, assignments, self.now
            )
        except LogServerError:
            self.deliver()
            return
        if isinstance(result, Wait):
            self.sync_waits.setdefault(member_id, self.now)
        else:
            assert isinstance(result, SyncResult)
        self.deliver()

    @rule(ms=st.one_of(st.integers(SWEEP_MS, 2_000), st.integers(2_000, 20_000)))
    def advance(self, ms: int) -> None:
        end = self.now + ms
        while self.now < end:
            self.now = min(self.now + SWEEP_MS, end)
            self.group.tick(self.now)
            self.deliver()
            self.check_waits()

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def generation_only_grows(self) -> None:
        assert self.group.generation >= self.last_generation
        self.last_generation = self.group.generation

    @invariant()
    def stable_assignment_covers_exactly_the_members(self) -> None:
        group = self.group
        if group.state is GroupState.STABLE:
            prefix = f"{group.generation}:".encode()
            for member in group.members.values():
                assert member.assignment.startswith(prefix), (member, group.generation)
            assert group.leader_id in group.members

    @invariant()
    def waiting_matches_state(self) -> None:
        group = self.group
        for member in group.members.values():
            if member.join_waiting_since_ms is not None:
                assert group.state is GroupState.PREPARING_REBALANCE
            if member.sync_waiting:
                assert group.state is GroupState.COMPLETING_REBALANCE
        assert set(self.join_waits) <= set(group.members)
        assert set(self.sync_waits) <= set(group.members)

    @invariant()
    def check_waits(self) -> None:
        bound = MAX_REBALANCE_MS + SWEEP_MS
        for waits in (self.join_waits, self.sync_waits):
            for member_id, since in waits.items():
                assert self.now - since <= bound, (member_id, since, self.now)

    def teardown(self) -> None:
        """Everybody falls silent: every waiting request is answered and the group empties."""
        quiet_until = self.now + 3 * (MAX_REBALANCE_MS + max(SESSION_CHOICES)) + SWEEP_MS
        while self.now < quiet_until:
            self.now += SWEEP_MS
            self.group.tick(self.now)
            self.deliver()
            self.check_waits()
        assert not self.join_waits
        assert not self.sync_waits
        assert self.group.state is GroupState.EMPTY, self.group
        assert not self.group.members
        assert not self.group.pending


RebalanceMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None
)
TestRebalance = RebalanceMachine.TestCase
