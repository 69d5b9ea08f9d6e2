"""What ``logctl group`` prints, from admin values made by hand (no broker)."""

from __future__ import annotations

import re

from client.admin_types import BrokerDescription, GroupDescription, GroupListing, MemberDescription
from client.cli.group_tables import (
    assignment_text,
    group_list_lines,
    members_table,
    offsets_table,
    plan_table,
    state_table,
)
from client.topic_partition import OffsetAndMetadata, TopicPartition

A0, A1, A2, B0 = (
    TopicPartition("a", 0),
    TopicPartition("a", 1),
    TopicPartition("a", 2),
    TopicPartition("b", 0),
)


def group(state="Stable", members=(), protocol="range") -> GroupDescription:
    return GroupDescription("g", state, "consumer", protocol, tuple(members), 0)


M1 = MemberDescription("m1-uuid", None, "client-1", "/10.0.0.1", frozenset({A0, B0}))
M2 = MemberDescription("m2-uuid", None, "client-2", "/10.0.0.2", frozenset({A1}))


def test_the_offsets_table_has_kafkas_columns_and_dashes_for_unknowns():
    committed = {A0: OffsetAndMetadata(5), A1: OffsetAndMetadata(9), A2: OffsetAndMetadata(1)}
    log_end = {A0: 8, A1: 9, B0: 4}

    lines = offsets_table(group(members=[M1, M2]), committed, log_end)

    assert [line.split() for line in lines] == [
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        ["g", "a", "0", "5", "8", "3", "m1-uuid", "/10.0.0.1", "client-1"],
        ["g", "a", "1", "9", "9", "0", "m2-uuid", "/10.0.0.2", "client-2"],
        ["g", "a", "2", "1", "-", "-", "-", "-", "-"],  # committed, owned by nobody, no leader
        ["g", "b", "0", "-", "4", "-", "m1-uuid", "/10.0.0.1", "client-1"],  # nothing committed
    ]


def test_the_offsets_table_columns_line_up():
    lines = offsets_table(group(members=[M1]), {A0: OffsetAndMetadata(123456)}, {A0: 123457})

    starts = [[m.start() for m in re.finditer(r"\S+", line)] for line in lines]
    assert starts[0] == starts[1]


def test_a_group_without_partitions_prints_no_offsets_table():
    assert offsets_table(group("Empty"), {}, {}) == []


def test_the_members_table_and_its_verbose_assignment_column():
    plain = members_table(group(members=[M2, M1]))
    verbose = members_table(group(members=[M2, M1]), verbose=True)

    assert [line.split() for line in plain] == [
        ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"],
        ["g", "m1-uuid", "/10.0.0.1", "client-1", "2"],
        ["g", "m2-uuid", "/10.0.0.2", "client-2", "1"],
    ]
    assert [line.split() for line in verbose] == [
        ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"],
        ["g", "m1-uuid", "/10.0.0.1", "client-1", "2", "a:0;b:0"],
        ["g", "m2-uuid", "/10.0.0.2", "client-2", "1", "a:1"],
    ]


def test_static_members_add_the_instance_id_column():
    static = MemberDescription("m3", "pod-3", "c3", "/h", frozenset())

    lines = members_table(group(members=[M1, static]))

    assert lines[0].split() == [
        "GROUP",
        "CONSUMER-ID",
        "GROUP-INSTANCE-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
    ]
    assert lines[1].split()[2] == "-"
    assert lines[2].split() == ["g", "m3", "pod-3", "/h", "c3", "0"]


def test_no_members_no_members_table():
    assert members_table(group("Empty")) == []


def test_assignment_text_is_kafkas():
    assert assignment_text([A2, B0, A0]) == "a:0,2;b:0"
    assert assignment_text([]) == "-"


def test_the_state_table():
    broker = BrokerDescription(0, "127.0.0.1", 9092)

    lines = state_table(group(members=[M1, M2], protocol="sticky"), broker)
    unknown = state_table(group("Empty", protocol=""), None)

    assert lines[0].split() == [
        "GROUP",
        "COORDINATOR",
        "(ID)",
        "ASSIGNMENT-STRATEGY",
        "STATE",
        "#MEMBERS",
    ]
    assert lines[1].split() == ["g", "127.0.0.1:9092", "(0)", "sticky", "Stable", "2"]
    assert unknown[1].split() == ["g", "-", "(0)", "-", "Empty", "0"]


def test_the_plan_table_is_sorted():
    lines = plan_table("g", {B0: 4, A1: 0, A0: 7})

    assert [line.split() for line in lines] == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        ["g", "a", "0", "7"],
        ["g", "a", "1", "0"],
        ["g", "b", "0", "4"],
    ]


def test_the_group_list():
    listings = [
        GroupListing("orders-app", "consumer", "Stable", 0),
        GroupListing("x", "", "Empty", 1),
    ]

    assert group_list_lines(listings) == [
        "GROUP       STATE",
        "orders-app  Stable",
        "x           Empty",
    ]
    assert group_list_lines([]) == []
