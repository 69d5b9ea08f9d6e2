"""Replica assignment (``coordination.assignment``), shared by both coordinators.

Kafka's own expected outputs first (``AdminTest.testReplicaAssignment`` and
``AdminRackAwareTest.testGetRackAlternatedBrokerListAndAssignReplicasToBrokers``),
then the properties both flavours promise, then the choice between them and the
refusal of a cluster where only some brokers have a rack.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.errors import (
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    error_for_code,
)
from coordination import BrokerInfo, interface
from coordination.assignment import (
    IncompleteRackInformationError,
    assign_replicas,
    assign_replicas_rack_aware,
    assign_replicas_to_brokers,
    rack_alternated_brokers,
)

KAFKA_RACKS = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}


def brokers_of(racks: dict[int, str | None]) -> list[BrokerInfo]:
    return [BrokerInfo(b, "localhost", 9090 + b, rack) for b, rack in racks.items()]


# -- Kafka's examples -----------------------------------------------------------------------


def test_rack_unaware_matches_kafkas_admin_test():
    assert assign_replicas("t", range(5), 10, 3) == {
        0: (0, 1, 2),
        1: (1, 2, 3),
        2: (2, 3, 4),
        3: (3, 4, 0),
        4: (4, 0, 1),
        5: (0, 2, 3),  # after n partitions the followers shift by one
        6: (1, 3, 4),
        7: (2, 4, 0),
        8: (3, 0, 1),
        9: (4, 1, 2),
    }


def test_assignment_is_kafkas_round_robin():
    assignment = assign_replicas("t", [3, 1, 2], 6, 3)

    assert assignment == {
        0: (1, 2, 3),
        1: (2, 3, 1),
        2: (3, 1, 2),
        3: (1, 3, 2),  # after n partitions the followers shift by one
        4: (2, 1, 3),
        5: (3, 2, 1),
    }


def test_the_rack_alternated_list_matches_kafkas():
    assert rack_alternated_brokers(KAFKA_RACKS) == [0, 3, 1, 5, 4, 2]
    without_5 = {b: r for b, r in KAFKA_RACKS.items() if b != 5}
    assert rack_alternated_brokers(without_5) == [0, 3, 1, 4, 2]  # rack1 runs out first


def test_rack_aware_matches_kafkas_admin_rack_aware_test():
    assert assign_replicas_rack_aware("t", KAFKA_RACKS, 7, 3) == {
        0: (0, 3, 1),
        1: (3, 1, 5),
        2: (1, 5, 4),
        3: (5, 4, 2),
        4: (4, 2, 0),
        5: (2, 0, 3),
        6: (0, 4, 2),  # not 0, 3, 1 again: the followers shift after a round
    }


def test_a_follower_already_chosen_is_skipped_once_every_rack_has_one():
    # Kafka's testSkipBrokerWithReplicaAlreadyAssigned: 3 racks, replication factor 4.
    racks = {0: "a", 1: "b", 2: "c", 3: "a", 4: "a"}

    assignment = assign_replicas_rack_aware("t", racks, 6, 4, start_index=2)

    for replicas in assignment.values():
        assert len(set(replicas)) == 4
        assert {racks[b] for b in replicas} == {"a", "b", "c"}


def test_the_spread_is_even_in_kafkas_larger_example():
    # Kafka's testLargeNumberPartitionsAssignment: 12 brokers in 3 racks of 4.
    racks = dict(enumerate("122331122313"))  # broker i is in rack racks[i]

    assignment = assign_replicas_rack_aware("t", racks, 96, 3, start_index=5)

    leaders = Counter(replicas[0] for replicas in assignment.values())
    held = Counter(b for replicas in assignment.values() for b in replicas)
    assert set(leaders.values()) == {8}
    assert set(held.values()) == {24}
    assert all(len({racks[b] for b in r}) == 3 for r in assignment.values())


# -- properties -----------------------------------------------------------------------------


@st.composite
def rack_layouts(draw) -> dict[int, str]:
    """Broker id → rack: 1 to 12 brokers with distinct, not necessarily contiguous ids."""
    ids = draw(st.lists(st.integers(0, 40), min_size=1, max_size=12, unique=True))
    racks = draw(st.lists(st.sampled_from("abcde"), min_size=len(ids), max_size=len(ids)))
    return dict(zip(ids, racks, strict=True))


@st.composite
def requests(draw) -> tuple[dict[int, str], int, int, int]:
    """(racks, partitions, replication factor, start index), the factor at most the brokers."""
    racks = draw(rack_layouts())
    factor = draw(st.integers(1, len(racks)))
    partitions = draw(st.integers(1, 60))
    start = draw(st.integers(0, 30))
    return racks, partitions, factor, start


@given(requests())
def test_every_partition_gets_distinct_brokers_over_as_many_racks_as_it_can(case):
    racks, partitions, factor, start = case

    assignment = assign_replicas_rack_aware("t", racks, partitions, factor, start_index=start)

    assert sorted(assignment) == list(range(partitions))
    rack_count = len(set(racks.values()))
    for replicas in assignment.values():
        assert len(replicas) == factor
        assert len(set(replicas)) == factor
        assert set(replicas) <= set(racks)
        assert len({racks[b] for b in replicas}) == min(factor, rack_count)


@given(requests())
def test_leaders_spread_evenly(case):
    racks, partitions, factor, start = case

    aware = assign_replicas_rack_aware("t", racks, partitions, factor, start_index=start)
    unaware = assign_replicas("t", list(racks), partitions, factor, start_index=start)

    for assignment in (aware, unaware):
        leaders = Counter(replicas[0] for replicas in assignment.values())
        counts = [leaders[b] for b in racks]
        assert max(counts) - min(counts) <= 1
        if partitions % len(racks) == 0:
            assert set(counts) == {partitions // len(racks)}


@given(
    rack_count=st.integers(1, 5),
    per_rack=st.integers(1, 4),
    rounds=st.integers(1, 4),
    start=st.integers(0, 30),
    data=st.data(),
)
def test_equal_racks_and_no_more_replicas_than_racks_spread_replicas_evenly(
    rack_count, per_rack, rounds, start, data
):
    racks = {b: f"rack{b % rack_count}" for b in range(rack_count * per_rack)}
    factor = data.draw(st.integers(1, rack_count))
    partitions = rounds * len(racks)

    assignment = assign_replicas_rack_aware("t", racks, partitions, factor, start_index=start)

    held = Counter(b for replicas in assignment.values() for b in replicas)
    assert set(held) == set(racks)
    assert set(held.values()) == {partitions * factor // len(racks)}


@given(requests())
def test_the_same_casegives_the_same_assignment_whatever_the_broker_order(case):
    racks, partitions, factor, start = case
    shuffled = dict(reversed(racks.items()))

    first = assign_replicas_rack_aware("t", racks, partitions, factor, start_index=start)

    assert assign_replicas_rack_aware("t", shuffled, partitions, factor, start_index=start) == first
    assert (
        assign_replicas_to_brokers("t", brokers_of(shuffled), partitions, factor, start_index=start)
        == first
    )


@given(requests())
def test_one_rack_is_the_rack_unaware_assignment_over_the_same_brokers(case):
    racks, partitions, factor, start = case
    one_rack = dict.fromkeys(racks, "only")

    assert assign_replicas_rack_aware(
        "t", one_rack, partitions, factor, start_index=start
    ) == assign_replicas("t", list(racks), partitions, factor, start_index=start)


# -- choosing, and refusing -----------------------------------------------------------------


def test_brokers_without_racks_get_the_rack_unaware_assignment():
    brokers = brokers_of({3: None, 1: None, 2: None})

    assert assign_replicas_to_brokers("t", brokers, 6, 3, start_index=1) == assign_replicas(
        "t", [1, 2, 3], 6, 3, start_index=1
    )


def test_brokers_all_with_racks_get_the_rack_aware_assignment():
    assert assign_replicas_to_brokers("t", brokers_of(KAFKA_RACKS), 7, 3) == (
        assign_replicas_rack_aware("t", KAFKA_RACKS, 7, 3)
    )


def test_some_brokers_without_a_rack_is_refused_naming_them():
    brokers = brokers_of({1: "a", 2: None, 3: "b", 4: None})

    with pytest.raises(IncompleteRackInformationError) as caught:
        assign_replicas_to_brokers("orders", brokers, 3, 2)

    error = caught.value
    assert error.brokers_without_rack == (2, 4)
    assert "topic 'orders'" in error.message
    assert "without a rack: brokers [2, 4]" in error.message
    assert "with one: brokers [1, 3]" in error.message
    assert "set BROKER_RACK on all brokers or on none" in error.message
    # On the wire it is INVALID_REPLICATION_FACTOR, message and all.
    assert isinstance(error, InvalidReplicationFactorError)
    relayed = error_for_code(error.code, error.message)
    assert type(relayed) is InvalidReplicationFactorError
    assert "[2, 4]" in str(relayed)


def test_an_impossible_factor_is_reported_before_missing_racks():
    brokers = brokers_of({1: "a", 2: None})

    with pytest.raises(InvalidReplicationFactorError, match="3 is larger than the 2") as caught:
        assign_replicas_to_brokers("t", brokers, 1, 3)
    assert not isinstance(caught.value, IncompleteRackInformationError)


@pytest.mark.parametrize(
    ("brokers", "partitions", "factor", "error"),
    [
        ([1], 0, 1, InvalidPartitionsError),
        ([1], 1, 0, InvalidReplicationFactorError),
        ([1, 2], 1, 3, InvalidReplicationFactorError),
        ([], 1, 1, InvalidReplicationFactorError),
        ([1], 1.0, 1, InvalidPartitionsError),
        ([1], 1, True, InvalidReplicationFactorError),
    ],
)
def test_assignment_refuses_impossible_requests(brokers, partitions, factor, error):
    with pytest.raises(error, match="topic 't'"):
        assign_replicas("t", brokers, partitions, factor)
    with pytest.raises(error, match="topic 't'"):
        assign_replicas_rack_aware("t", dict.fromkeys(brokers, "r1"), partitions, factor)
    for rack in (None, "r1"):
        live = brokers_of(dict.fromkeys(brokers, rack))
        with pytest.raises(error, match="topic 't'"):
            assign_replicas_to_brokers("t", live, partitions, factor)


def test_the_interface_still_exports_the_rack_unaware_assignment():
    assert interface.assign_replicas is assign_replicas
    assert interface.IncompleteRackInformationError is IncompleteRackInformationError
