"""The group state machine (logserver/groups/group.py), one rule of docs/groups.md at a time."""

from __future__ import annotations

import pytest

from client.errors import (
    FencedInstanceIdError,
    GroupMaxSizeReachedError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidSessionTimeoutError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from logserver.groups.group import GroupLimits, GroupState, SyncResult, Wait
from tests.logserver.groups.helpers import (
    REBALANCE_MS,
    SESSION_MS,
    T0,
    first_join,
    joins,
    make_group,
    request,
    stable_group,
)


def test_first_join_gets_member_id_required_then_joins_alone():
    group = make_group()
    result = group.join(request(client_id="app"), T0)
    assert result.error is not None
    assert result.error.code == 79
    assert result.member_id == "app-1"
    assert group.pending == {"app-1": T0 + SESSION_MS}
    assert group.state is GroupState.EMPTY
    assert isinstance(group.join(request("app-1"), T0), Wait)
    answers = joins(group.take_answers())
    assert answers["app-1"].generation_id == 1
    assert answers["app-1"].leader == "app-1"
    assert answers["app-1"].protocol_name == "range"
    assert answers["app-1"].members == (("app-1", None, b"meta"),)
    assert group.state is GroupState.COMPLETING_REBALANCE


def test_two_members_join_sync_and_become_stable():
    group = make_group()
    a = first_join(group)
    group.take_answers()
    b = first_join(group)
    assert group.state is GroupState.PREPARING_REBALANCE
    with pytest.raises(RebalanceInProgressError):
        group.heartbeat(a, None, 1, T0)
    assert isinstance(group.join(request(a), T0), Wait)  # a rejoins: everyone is in
    answers = joins(group.take_answers())
    assert set(answers) == {a, b}
    assert answers[a].leader == answers[b].leader == a  # the leader rejoined: kept
    assert [m[0] for m in answers[a].members] == [a, b]
    assert answers[b].members == ()
    assert group.generation == 2
    # The follower syncs first and waits; the leader's sync answers both.
    assert isinstance(group.sync(b, None, 2, {}, T0), Wait)
    group.heartbeat(b, None, 2, T0)  # CompletingRebalance, right generation: NONE
    assert isinstance(group.sync(a, None, 2, {a: b"A", b: b"B"}, T0), Wait)
    synced = {x.member_id: x.result for x in group.take_answers()}
    assert synced == {a: SyncResult(b"A"), b: SyncResult(b"B")}
    assert group.state is GroupState.STABLE
    assert group.sync(b, None, 2, {}, T0) == SyncResult(b"B")  # Stable: answered at once


def test_heartbeat_answers():
    group, [a, b] = stable_group(2)
    group.heartbeat(a, None, group.generation, T0)
    with pytest.raises(IllegalGenerationError, match="rejoin"):
        group.heartbeat(a, None, group.generation - 1, T0)
    with pytest.raises(UnknownMemberIdError):
        group.heartbeat("nobody", None, group.generation, T0)
    group.leave([(b, None)], T0)
    with pytest.raises(RebalanceInProgressError):
        group.heartbeat(a, None, group.generation, T0)


def test_sync_while_preparing_is_refused():
    group, [a, b] = stable_group(2)
    group.join(request(a), T0)  # the leader rejoins: a rebalance
    with pytest.raises(RebalanceInProgressError):
        group.sync(b, None, group.generation, {}, T0)


def test_leave_rebalances_and_the_last_leave_empties_the_group():
    group, [a, b] = stable_group(2)
    generation = group.generation
    assert group.leave([(b, None), ("ghost", None)], T0) == [(b, None, 0), ("ghost", None, 25)]
    assert group.state is GroupState.PREPARING_REBALANCE
    group.join(request(a), T0)
    assert joins(group.take_answers())[a].generation_id == generation + 1
    group.leave([(a, None)], T0)
    assert group.state is GroupState.EMPTY
    assert group.generation == generation + 2
    assert group.idle


def test_a_silent_member_is_removed_after_its_session_timeout():
    group, [a, b] = stable_group(2)
    group.heartbeat(a, None, group.generation, T0 + SESSION_MS - 1)
    group.tick(T0 + SESSION_MS - 1)
    assert set(group.members) == {a, b}
    group.tick(T0 + SESSION_MS)  # b said nothing since T0
    assert set(group.members) == {a}
    assert group.state is GroupState.PREPARING_REBALANCE


def test_join_phase_ends_at_the_rebalance_timeout_without_the_laggards():
    group, [a, b] = stable_group(2)
    group.join(request(a), T0)
    for t in range(T0, T0 + REBALANCE_MS, SESSION_MS // 2):
        with pytest.raises(RebalanceInProgressError):
            group.heartbeat(b, None, group.generation, t)  # alive, but does not rejoin
        group.tick(t)
    assert group.state is GroupState.PREPARING_REBALANCE
    group.tick(T0 + REBALANCE_MS)
    answers = joins(group.take_answers())
    assert set(answers) == {a}
    assert set(group.members) == {a}
    assert group.state is GroupState.COMPLETING_REBALANCE


def test_a_leader_that_never_syncs_causes_another_rebalance():
    group = make_group()
    a = first_join(group)
    group.take_answers()
    b = first_join(group)
    group.join(request(a), T0)
    group.take_answers()
    assert isinstance(group.sync(b, None, group.generation, {}, T0), Wait)
    group.tick(T0 + REBALANCE_MS)  # a (the leader) never synced
    [answer] = group.take_answers()
    assert answer.member_id == b
    assert isinstance(answer.result.error, RebalanceInProgressError)
    assert set(group.members) == {b}
    assert group.state is GroupState.PREPARING_REBALANCE


def test_initial_delay_waits_and_is_extended_by_new_joins():
    limits = GroupLimits(initial_rebalance_delay_ms=3_000)
    group = make_group(limits)
    a = first_join(group, rebalance_ms=7_000)
    assert group.state is GroupState.PREPARING_REBALANCE
    group.tick(T0 + 2_000)
    b = first_join(group, T0 + 2_000, rebalance_ms=7_000)
    assert group.take_answers() == []
    group.tick(T0 + 3_000)  # b joined during the delay: wait another 3 s
    assert group.take_answers() == []
    group.tick(T0 + 6_000)  # nobody new: done
    assert set(joins(group.take_answers())) == {a, b}
    assert group.generation == 1


def test_initial_delay_never_passes_the_rebalance_timeout():
    group = make_group(GroupLimits(initial_rebalance_delay_ms=3_000))
    first_join(group, rebalance_ms=4_000)
    for t in range(T0 + 500, T0 + 4_000, 500):
        first_join(group, t, rebalance_ms=4_000)
        group.tick(t)
    group.tick(T0 + 4_000)
    assert group.state is GroupState.COMPLETING_REBALANCE


def test_an_unclaimed_member_id_holds_the_join_phase_until_it_expires():
    group, [a] = stable_group(1)
    group.join(request(), T0)  # MEMBER_ID_REQUIRED, never claimed
    group.join(request(a), T0)  # the leader rejoins (a rebalance): waits for the pending id
    assert group.state is GroupState.PREPARING_REBALANCE
    group.tick(T0 + SESSION_MS)
    assert set(joins(group.take_answers())) == {a}


def test_protocol_selection_by_votes():
    group = make_group()
    ab = (("a", b"1"), ("b", b"2"))
    ba = (("b", b"3"), ("a", b"4"))
    x = first_join(group, protocols=ab)
    group.take_answers()
    y = first_join(group, protocols=ba)
    z = first_join(group, protocols=ba)
    group.join(request(x, protocols=ab), T0)
    answers = joins(group.take_answers())
    assert {r.protocol_name for r in answers.values()} == {"b"}
    assert answers[x].members == ((x, None, b"2"), (y, None, b"3"), (z, None, b"3"))


def test_a_protocol_nobody_else_supports_is_inconsistent():
    group, _ = stable_group(1)
    with pytest.raises(InconsistentGroupProtocolError, match=r"\['range'\]"):
        group.join(request(protocols=(("sticky", b""),)), T0)
    with pytest.raises(InconsistentGroupProtocolError):
        group.join(request(protocol_type="connect"), T0)
    with pytest.raises(InconsistentGroupProtocolError):
        make_group().join(request(protocols=()), T0)


@pytest.mark.parametrize("session_ms", [5_999, 1_800_001])
def test_session_timeout_bounds(session_ms):
    with pytest.raises(InvalidSessionTimeoutError, match=r"\[6000, 1800000\]"):
        make_group().join(request(session_ms=session_ms), T0)


def test_group_max_size_counts_pending_ids():
    group = make_group(GroupLimits(initial_rebalance_delay_ms=0, max_size=2))
    first_join(group)
    group.join(request(), T0)
    with pytest.raises(GroupMaxSizeReachedError, match=r"group\.max\.size"):
        group.join(request(), T0)
    with pytest.raises(GroupMaxSizeReachedError):
        group.join(request(instance_id="static"), T0)


def test_static_member_rejoins_a_stable_group_without_a_rebalance():
    group = make_group()
    old = group.join(request(instance_id="i1"), T0)
    assert isinstance(old, Wait)  # static members get their id at once
    [old_id] = group.members
    group.take_answers()
    group.sync(old_id, "i1", 1, {old_id: b"mine"}, T0)
    assert group.state is GroupState.STABLE
    generation = group.generation
    result = group.join(request(instance_id="i1"), T0 + 1_000)
    assert result.error is None
    assert result.generation_id == generation
    assert result.leader == old_id  # the leader as before: the newcomer does not assign
    assert result.member_id != old_id
    assert group.state is GroupState.STABLE
    assert group.leader_id == result.member_id
    assert group.sync(result.member_id, "i1", generation, {}, T0) == SyncResult(b"mine")
    with pytest.raises(FencedInstanceIdError):
        group.heartbeat(old_id, "i1", generation, T0)


def test_static_member_with_new_protocols_rebalances():
    group = make_group()
    group.join(request(instance_id="i1"), T0)
    [old_id] = group.members
    group.take_answers()
    group.sync(old_id, "i1", 1, {old_id: b"mine"}, T0)
    result = group.join(request(instance_id="i1", protocols=(("range", b"new"),)), T0)
    assert isinstance(result, Wait)
    [(member_id, answer)] = joins(group.take_answers()).items()
    assert member_id != old_id
    assert answer.generation_id == 2


def test_replacing_a_waiting_static_member_fences_its_pending_join():
    group, [a] = stable_group(1)
    group.join(request(instance_id="i1"), T0)  # new static member: rebalance, waits for a
    [old_id] = [m for m in group.members if m != a]
    group.join(request(instance_id="i1"), T0)  # its replacement
    [answer] = group.take_answers()
    assert answer.member_id == old_id
    assert isinstance(answer.result.error, FencedInstanceIdError)


def test_commit_checks():
    group, [a, b] = stable_group(2)
    assert group.check_commit(a, None, group.generation, T0).owned is None
    with pytest.raises(IllegalGenerationError):
        group.check_commit(a, None, group.generation + 1, T0)
    with pytest.raises(UnknownMemberIdError, match="active member"):
        group.check_commit("", None, -1, T0)  # a simple commit while members are active
    group.leave([(b, None)], T0)  # PreparingRebalance: members may still commit
    assert group.check_commit(a, None, group.generation, T0) is not None
    group.join(request(a), T0)  # CompletingRebalance: not until it synced
    with pytest.raises(RebalanceInProgressError):
        group.check_commit(a, None, group.generation, T0)
    group.leave([(a, None)], T0)
    assert group.check_commit("", None, -1, T0) is None  # Empty: simple commits are fine


def test_close_answers_every_waiting_request():
    group, [a, _b] = stable_group(2)
    group.join(request(a), T0)
    group.close(UnknownMemberIdError("gone"))
    [answer] = group.take_answers()
    assert answer.member_id == a
    assert answer.result.error.message == "gone"
    assert group.state is GroupState.DEAD
    assert not group.members
