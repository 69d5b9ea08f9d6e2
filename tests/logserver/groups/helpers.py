"""Building blocks for the group state-machine tests: requests, and a group with members."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from logserver.groups.group import Answer, Group, GroupLimits, JoinRequest, JoinResult, Wait
from logserver.groups.member import Protocols

T0 = 1_000_000
SESSION_MS = 10_000
REBALANCE_MS = 30_000
NO_DELAY = GroupLimits(initial_rebalance_delay_ms=0)


def counter_ids() -> Callable[[str | None], str]:
    """Member ids ``<prefix>-1``, ``<prefix>-2``, … (predictable, unlike uuid4)."""
    numbers = itertools.count(1)
    return lambda prefix: f"{prefix or 'member'}-{next(numbers)}"


def make_group(limits: GroupLimits = NO_DELAY, group_id: str = "g") -> Group:
    return Group(group_id, limits, make_member_id=counter_ids())


def request(
    member_id: str = "",
    *,
    instance_id: str | None = None,
    protocols: Protocols = (("range", b"meta"),),
    session_ms: int = SESSION_MS,
    rebalance_ms: int = REBALANCE_MS,
    client_id: str = "client",
    protocol_type: str = "consumer",
) -> JoinRequest:
    return JoinRequest(
        member_id=member_id,
        group_instance_id=instance_id,
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=rebalance_ms,
        protocol_type=protocol_type,
        protocols=protocols,
        client_id=client_id,
        client_host="127.0.0.1",
    )


def first_join(group: Group, now: int = T0, **kw: object) -> str:
    """A dynamic member's first JoinGroup (MEMBER_ID_REQUIRED), then its second: its id."""
    result = group.join(request(**kw), now)  # type: ignore[arg-type]
    assert isinstance(result, JoinResult), result
    assert result.error is not None, result
    assert result.error.code == 79, result
    second = group.join(request(result.member_id, **kw), now)  # type: ignore[arg-type]
    assert isinstance(second, Wait), second
    return result.member_id


def joins(answers: list[Answer]) -> dict[str, JoinResult]:
    out = {}
    for answer in answers:
        if answer.kind == "join":
            assert isinstance(answer.result, JoinResult)
            out[answer.member_id] = answer.result
    return out


def stable_group(n: int, now: int = T0, limits: GroupLimits = NO_DELAY) -> tuple[Group, list[str]]:
    """A Stable group of ``n`` dynamic members, each assigned ``b"assigned:<id>"``."""
    group = make_group(limits)
    ids = [first_join(group, now)]
    group.take_answers()
    for _ in range(n - 1):
        ids.append(first_join(group, now))
        for member_id in ids[:-1]:
            group.join(request(member_id), now)
        group.take_answers()
    leader = group.leader_id
    assert leader is not None
    assignments = {m: f"assigned:{m}".encode() for m in ids}
    for member_id in ids:
        if member_id != leader:
            group.sync(member_id, None, group.generation, {}, now)
    group.sync(leader, None, group.generation, assignments, now)
    group.take_answers()
    assert group.state.value == "Stable"
    return group, ids
