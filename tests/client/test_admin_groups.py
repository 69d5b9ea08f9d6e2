"""The admin client's group calls against the in-memory ``FakeGroupBroker`` (no sockets).

What the requests look like on the wire, how answers become typed values and
errors, and how a coordinator that moved is found again. The same calls
against a real broker are in ``tests/integration/test_group_cli.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from client.admin import Admin
from client.admin_types import GroupDescription, GroupListing, MemberDescription
from client.blocking_admin import BlockingAdmin
from client.errors import (
    CoordinatorLoadInProgressError,
    GroupIdNotFoundError,
    InvalidGroupIdError,
    NonEmptyGroupError,
    NotCoordinatorError,
    OffsetOutOfRangeError,
    UnknownMemberIdError,
    UnknownTopicOrPartitionError,
)
from client.protocol import ApiKey
from client.topic_partition import OffsetAndMetadata, TopicPartition
from tests.client.cli.fake_groups import FakeGroupBroker, FakeMember

T0, T1, U0 = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGroupBroker:
    return FakeGroupBroker({"t": 2, "u": 1}).install(monkeypatch)


@pytest.fixture
async def admin(fake: FakeGroupBroker) -> AsyncIterator[Admin]:
    async with Admin(fake.address, request_timeout_ms=5_000) as client:
        yield client


def requests_of(fake: FakeGroupBroker, key: ApiKey) -> list[dict]:
    return [body for k, body in fake.requests if k == key]


# -- list ------------------------------------------------------------------------------


async def test_list_groups_asks_every_broker_and_sorts(admin, fake):
    fake.add_group("b", "Stable", [FakeMember("m1")])
    fake.add_group("a", "Empty", offsets={("t", 0): 3}, protocol_type="")

    listed = await admin.list_groups()

    assert listed == [GroupListing("a", "", "Empty", 0), GroupListing("b", "consumer", "Stable", 0)]
    assert requests_of(fake, ApiKey.LIST_GROUPS) == [{"states_filter": []}]


async def test_list_groups_filters_by_state_in_any_case(admin, fake):
    fake.add_group("a", "Empty")
    fake.add_group("b", "Stable")
    fake.add_group("c", "PreparingRebalance")

    listed = await admin.list_groups(["stable", "PREPARINGREBALANCE"])

    assert [g.group_id for g in listed] == ["b", "c"]
    assert requests_of(fake, ApiKey.LIST_GROUPS)[-1] == {
        "states_filter": ["PreparingRebalance", "Stable"]
    }


async def test_list_groups_refuses_an_unknown_state(admin, fake):
    with pytest.raises(ValueError, match=r"unknown group state 'Running'.*Empty, Prep"):
        await admin.list_groups(["Running"])
    assert requests_of(fake, ApiKey.LIST_GROUPS) == []


async def test_list_groups_retries_a_coordinator_still_loading(admin, fake):
    fake.add_group("a")
    fake.fail_next(ApiKey.LIST_GROUPS, CoordinatorLoadInProgressError.code)

    assert [g.group_id for g in await admin.list_groups()] == ["a"]
    assert len(requests_of(fake, ApiKey.LIST_GROUPS)) == 2


# -- describe --------------------------------------------------------------------------


async def test_describe_decodes_members_and_their_assignments(admin, fake):
    fake.add_group(
        "g",
        "Stable",
        [
            FakeMember("m1", {"t": [0, 1]}, client_id="c1", host="/10.0.0.1"),
            FakeMember("m2", {"u": [0]}, client_id="c2", group_instance_id="static-2"),
        ],
        protocol="roundrobin",
    )

    described = await admin.describe_groups(["g"])

    assert described == {
        "g": GroupDescription(
            group_id="g",
            state="Stable",
            protocol_type="consumer",
            protocol="roundrobin",
            members=(
                MemberDescription("m1", None, "c1", "/10.0.0.1", frozenset({T0, T1})),
                MemberDescription("m2", "static-2", "c2", "/127.0.0.1", frozenset({U0})),
            ),
            coordinator_id=0,
        )
    }
    assert described["g"].is_active


async def test_an_unknown_group_is_described_dead(admin):
    described = await admin.describe_groups(["nobody"])

    assert described["nobody"].state == "Dead"
    assert described["nobody"].members == ()
    assert not described["nobody"].is_active


@pytest.mark.parametrize("raw", [b"\xc1not msgpack", b"\x93\x01\x02\x03", b"\x81\xa1x\x01"])
async def test_an_undecodable_assignment_is_empty_not_an_error(admin, fake, raw):
    fake.add_group("g", "Stable", [FakeMember("m1", raw_assignment=raw)])

    described = await admin.describe_groups(["g"])

    assert described["g"].members[0].assignment == frozenset()


async def test_describe_several_groups_keeps_the_order_asked(admin, fake):
    for g in "cab":
        fake.add_group(g)

    assert list(await admin.describe_groups(["c", "a", "b", "a"])) == ["c", "a", "b"]


@pytest.mark.parametrize("where", ["top", "group"])
async def test_a_coordinator_that_moved_is_found_again(admin, fake, where):
    fake.add_group("g")
    await admin.describe_groups(["g"])
    finds = len(requests_of(fake, ApiKey.FIND_COORDINATOR))
    fake.fail_next(ApiKey.DESCRIBE_GROUPS, NotCoordinatorError.code, where)

    described = await admin.describe_groups(["g"])

    assert described["g"].state == "Stable"
    assert len(requests_of(fake, ApiKey.FIND_COORDINATOR)) == finds + 1


async def test_a_group_error_is_raised_as_its_class(admin, fake):
    fake.fail_next(ApiKey.DESCRIBE_GROUPS, InvalidGroupIdError.code, "group")

    with pytest.raises(InvalidGroupIdError, match="'g'"):
        await admin.describe_groups(["g"])


# -- delete ----------------------------------------------------------------------------


async def test_delete_groups_reports_each_group(admin, fake):
    fake.add_group("empty", "Empty", offsets={("t", 0): 1})
    fake.add_group("busy", "Stable", [FakeMember("m1")])

    results = await admin.delete_groups(["empty", "busy", "ghost"])

    assert results["empty"] is None
    assert isinstance(results["busy"], NonEmptyGroupError)
    assert isinstance(results["ghost"], GroupIdNotFoundError)
    assert "ghost" in str(results["ghost"])
    assert "empty" not in fake.groups


async def test_delete_retries_a_group_whose_coordinator_moved(admin, fake):
    fake.add_group("g", "Empty")
    fake.fail_next(ApiKey.DELETE_GROUPS, NotCoordinatorError.code, "group")

    assert await admin.delete_groups(["g"]) == {"g": None}


# -- offsets ---------------------------------------------------------------------------


async def test_list_group_offsets_all_or_some(admin, fake):
    fake.add_group("g", "Empty", offsets={("t", 0): 5, ("t", 1): 7, ("u", 0): 1})

    everything = await admin.list_group_offsets("g")
    some = await admin.list_group_offsets("g", [T1, TopicPartition("u", 9)])

    assert everything == {T0: OffsetAndMetadata(5), T1: OffsetAndMetadata(7), U0: (1, "")}
    assert some == {T1: OffsetAndMetadata(7, "")}
    assert requests_of(fake, ApiKey.OFFSET_FETCH) == [
        {"group_id": "g", "topics": None},
        {"group_id": "g", "topics": [["t", [1]], ["u", [9]]]},
    ]


async def test_an_unknown_group_has_no_offsets(admin):
    assert await admin.list_group_offsets("nobody") == {}
    assert await admin.list_group_offsets("nobody", []) == {}


async def test_alter_group_offsets_is_a_simple_commit(admin, fake):
    fake.add_group("g", "Empty")
    for p in (0, 1):
        fake.log_start[("t", p)] = 10  # an empty log whose end is 10

    await admin.alter_group_offsets("g", {T1: 4, T0: OffsetAndMetadata(2, "replay")})

    assert requests_of(fake, ApiKey.OFFSET_COMMIT) == [
        {
            "group_id": "g",
            "generation_id": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [["t", [[0, 2, "replay"], [1, 4, ""]]]],
        }
    ]
    assert fake.committed("g") == {("t", 0): 2, ("t", 1): 4}


async def test_alter_group_offsets_refused_while_the_group_has_members(admin, fake):
    fake.add_group("g", "Stable", [FakeMember("m1", {"t": [0]})])

    with pytest.raises(UnknownMemberIdError):
        await admin.alter_group_offsets("g", {T0: 0})


async def test_alter_group_offsets_raises_the_first_error_counting_the_others(admin, fake):
    fake.add_group("g", "Empty")

    with pytest.raises(OffsetOutOfRangeError, match=r"offset -1 is negative \(and 1 more"):
        await admin.alter_group_offsets("g", {T0: -1, T1: 99})
    with pytest.raises(UnknownTopicOrPartitionError, match="t-5"):
        await admin.alter_group_offsets("g", {TopicPartition("t", 5): 0})


@pytest.mark.parametrize("bad", ["3", 1.5, True, None, (1, "x")])
async def test_alter_group_offsets_refuses_offsets_that_are_not_ints(admin, fake, bad):
    with pytest.raises(ValueError, match="offset must be an int"):
        await admin.alter_group_offsets("g", {T0: bad})
    assert requests_of(fake, ApiKey.OFFSET_COMMIT) == []


async def test_nothing_to_alter_sends_nothing(admin, fake):
    await admin.alter_group_offsets("g", {})

    assert requests_of(fake, ApiKey.OFFSET_COMMIT) == []


# -- blocking --------------------------------------------------------------------------


def test_blocking_admin_has_the_same_group_calls(fake):
    fake.add_group("g", "Empty", offsets={("t", 0): 1})

    with BlockingAdmin(fake.address, request_timeout_ms=5_000) as admin:
        assert [g.group_id for g in admin.list_groups(states=["Empty"])] == ["g"]
        assert admin.describe_groups(iter(["g"]))["g"].state == "Empty"
        assert admin.list_group_offsets("g", iter([T0])) == {T0: OffsetAndMetadata(1)}
        admin.alter_group_offsets("g", {T0: 0})
        assert admin.list_group_offsets("g") == {T0: OffsetAndMetadata(0)}
        assert admin.delete_groups(iter(["g"])) == {"g": None}
