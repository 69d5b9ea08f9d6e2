"""``logctl group`` run in-process (``main``) against the in-memory ``FakeGroupBroker``.

Output, exit statuses and refusals of every verb, and what reaches the
coordinator. The same commands against a real broker process are in
``tests/integration/test_group_cli.py``.
"""

from __future__ import annotations

import datetime

import pytest

from client.cli.main import main
from client.protocol import ApiKey
from tests.client.cli.fake_groups import FakeGroupBroker, FakeMember
from tests.support.batches import make_batch

HOUR_MS = 3_600_000
OFFSETS_HEADER = [
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGroupBroker:
    """Topic ``t``: partition 0 holds offsets 2-9 (0 and 1 deleted), partition 1 is empty.

    The records of partition 0 are an hour apart, the last one an hour ago.
    """
    broker = FakeGroupBroker({"t": 2, "u": 1}).install(monkeypatch)
    now = int(datetime.datetime.now(tz=datetime.UTC).timestamp() * 1000)
    times = [now - (10 - i) * HOUR_MS for i in range(10)]
    broker.append("t", 0, make_batch(10, timestamp_ms=times))
    broker.delete_before("t", 0, 2)
    broker.times = times  # type: ignore[attr-defined]
    return broker


def logctl(fake, capsys, *argv: str) -> tuple[int, list[str], str]:
    """Exit status, stdout lines split into words, and stderr."""
    status = main(["-b", fake.address, *argv])
    out, err = capsys.readouterr()
    return status, [line.split() for line in out.splitlines()], err


def commits(fake: FakeGroupBroker) -> list[dict]:
    return [body for key, body in fake.requests if key == ApiKey.OFFSET_COMMIT]


# -- usage errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["group"], "the following arguments are required: VERB"),
        (["group", "list", "--state", "Running"], "unknown state 'Running': expected Empty,"),
        (["group", "describe"], "group describe needs GROUP... or --all-groups"),
        (["group", "describe", "g", "--all-groups"], "name groups or give --all-groups, not both"),
        (["group", "describe", "g", "--verbose"], "--verbose goes with --members"),
        (["group", "describe", "g", "--members", "--state"], "not allowed with argument"),
        (["group", "delete"], "the following arguments are required: GROUP"),
        (["group", "reset-offsets", "g", "--to-earliest"], "one of the arguments --topic"),
        (["group", "reset-offsets", "g", "--topic", "t"], "one of the arguments --to-earliest"),
        (
            ["group", "reset-offsets", "g", "--all-topics", "--topic", "t", "--to-latest"],
            "not allowed with argument",
        ),
        (
            ["group", "reset-offsets", "g", "--all-topics", "--to-latest", "--to-offset", "1"],
            "not allowed with argument",
        ),
        (
            [
                "group",
                "reset-offsets",
                "g",
                "--all-topics",
                "--to-latest",
                "--dry-run",
                "--execute",
            ],
            "not allowed with argument",
        ),
        (["group", "reset-offsets", "g", "--topic", "t:x", "--to-latest"], "must be numbers"),
        (["group", "reset-offsets", "g", "--all-topics", "--to-offset", "-1"], "must not be neg"),
        (["group", "reset-offsets", "g", "--all-topics", "--to-offset", "x"], "a whole number"),
        (["group", "reset-offsets", "g", "--all-topics", "--shift-by", "1.5"], "a whole number"),
        (
            ["group", "reset-offsets", "g", "--all-topics", "--to-datetime", "2026-11-22 10h"],
            "is not an ISO 8601 date-time: expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM]",
        ),
        (
            ["group", "reset-offsets", "g", "--all-topics", "--to-datetime", "2999-01-01T00:00:00"],
            "is in the future",
        ),
        (
            ["group", "reset-offsets", "g", "--all-topics", "--by-duration", "1h"],
            "is not an ISO 8601 duration: expected PnDTnHnMnS, e.g. PT1H",
        ),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(argv, complaint, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert complaint in err
    assert "usage: logctl group" in err


def test_a_future_datetime_says_what_to_do_instead(capsys):
    argv = ["group", "reset-offsets", "g", "--all-topics", "--to-datetime", "2999-01-01T00:00Z"]
    with pytest.raises(SystemExit):
        main(argv)

    err = capsys.readouterr().err
    assert "'2999-01-01T00:00Z' (2999-01-01T" in err
    assert "give a time that has passed, or --to-latest" in err


def test_help_says_a_datetime_without_a_zone_is_local_time(capsys):
    with pytest.raises(SystemExit):
        main(["group", "reset-offsets", "--help"])

    out = " ".join(capsys.readouterr().out.split())
    assert "2026-11-22T10:00:00.000" in out
    assert "without one the time is local time" in out
    assert "PT1H" in out


# -- list ------------------------------------------------------------------------------


def test_list_prints_each_group_and_its_state(fake, capsys):
    fake.add_group("orders-app", "Stable", [FakeMember("m1")])
    fake.add_group("audit", "Empty", offsets={("t", 0): 3})

    status, out, err = logctl(fake, capsys, "group", "list")
    _, stable, _ = logctl(fake, capsys, "group", "list", "--state", "stable,preparingrebalance")

    assert (status, err) == (0, "")
    assert out == [["GROUP", "STATE"], ["audit", "Empty"], ["orders-app", "Stable"]]
    assert stable == [["GROUP", "STATE"], ["orders-app", "Stable"]]


def test_list_without_groups_prints_nothing(fake, capsys):
    assert logctl(fake, capsys, "group", "list") == (0, [], "")


# -- describe --------------------------------------------------------------------------


def test_describe_shows_offsets_lag_and_owners(fake, capsys):
    fake.add_group(
        "g",
        "Stable",
        [FakeMember("m1", {"t": [0]}, client_id="c1", host="/10.1.1.1"), FakeMember("m2")],
        offsets={("t", 0): 4, ("u", 0): 0},
    )

    status, out, err = logctl(fake, capsys, "group", "describe", "g")

    assert (status, err) == (0, "")
    assert out == [
        OFFSETS_HEADER,
        ["g", "t", "0", "4", "10", "6", "m1", "/10.1.1.1", "c1"],
        ["g", "u", "0", "0", "0", "0", "-", "-", "-"],
    ]


def test_describe_an_empty_group_notes_it_has_no_active_members(fake, capsys):
    fake.add_group("g", "Empty", offsets={("t", 1): 0})

    status, out, err = logctl(fake, capsys, "group", "describe", "g")

    assert status == 0
    assert out[1] == ["g", "t", "1", "0", "0", "0", "-", "-", "-"]
    assert err == "Consumer group 'g' has no active members.\n"


def test_describe_a_rebalancing_group_warns(fake, capsys):
    fake.add_group("g", "PreparingRebalance", [FakeMember("m1")])

    status, out, err = logctl(fake, capsys, "group", "describe", "g")

    assert (status, out) == (0, [])
    assert "Warning: consumer group 'g' is rebalancing." in err


def test_describe_committed_offsets_of_a_deleted_topic_show_dashes(fake, capsys):
    fake.add_group("g", "Empty", offsets={("gone", 0): 7})

    _, out, _ = logctl(fake, capsys, "group", "describe", "g")

    assert out[1] == ["g", "gone", "0", "7", "-", "-", "-", "-", "-"]


@pytest.mark.parametrize("view", ["--offsets", "--members", "--state"])
def test_a_group_known_only_by_its_offsets_exists_even_if_described_dead(fake, capsys, view):
    fake.add_group("g", "Dead", offsets={("t", 1): 0})

    status, out, err = logctl(fake, capsys, "group", "describe", "g", view)

    assert status == 0
    assert err == "Consumer group 'g' has no active members.\n"
    assert bool(out) == (view != "--members")


def test_describe_an_unknown_group_exits_1(fake, capsys):
    fake.add_group("g", "Empty", offsets={("t", 1): 0})

    status, out, err = logctl(fake, capsys, "group", "describe", "g", "nobody")

    assert status == 1
    assert out[0][0] == "GROUP"
    assert "logctl: consumer group 'nobody' does not exist" in err


def test_describe_several_groups_separated_by_a_blank_line(fake, capsys):
    fake.add_group("a", "Empty", offsets={("t", 0): 2})
    fake.add_group("b", "Empty", offsets={("t", 1): 0})

    named = logctl(fake, capsys, "group", "describe", "b", "a")
    every = logctl(fake, capsys, "group", "describe", "--all-groups")

    assert named[1] == [named[1][0], named[1][1], [], named[1][0], named[1][4]]
    assert [row[0] for row in named[1] if row and row[0] != "GROUP"] == ["b", "a"]
    assert [row[0] for row in every[1] if row and row[0] != "GROUP"] == ["a", "b"]
    assert every[0] == 0


def test_describe_members_and_verbose(fake, capsys):
    fake.add_group(
        "g",
        "Stable",
        [FakeMember("m1", {"t": [1, 0]}, client_id="c1"), FakeMember("m2", {"u": [0]})],
    )

    _, plain, _ = logctl(fake, capsys, "group", "describe", "g", "--members")
    _, verbose, _ = logctl(fake, capsys, "group", "describe", "g", "--members", "--verbose")

    assert plain == [
        ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"],
        ["g", "m1", "/127.0.0.1", "c1", "2"],
        ["g", "m2", "/127.0.0.1", "app", "1"],
    ]
    assert [row[-1] for row in verbose] == ["ASSIGNMENT", "t:0,1", "u:0"]


def test_describe_state(fake, capsys):
    fake.add_group("g", "Stable", [FakeMember("m1"), FakeMember("m2")], protocol="sticky")

    status, out, _ = logctl(fake, capsys, "group", "describe", "g", "--state")

    assert status == 0
    assert out == [
        ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
        ["g", "fake:9092", "(0)", "sticky", "Stable", "2"],
    ]


# -- reset-offsets ---------------------------------------------------------------------


def test_reset_is_a_dry_run_by_default(fake, capsys):
    fake.add_group("g", "Empty", offsets={("t", 0): 9, ("t", 1): 0})

    status, out, err = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--topic", "t", "--to-earliest"
    )

    assert status == 0
    assert out == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        ["g", "t", "0", "2"],
        ["g", "t", "1", "0"],
    ]
    assert "Dry run: nothing was changed. Run again with --execute" in err
    assert commits(fake) == []
    assert fake.committed("g") == {("t", 0): 9, ("t", 1): 0}


def test_reset_execute_commits_the_plan(fake, capsys):
    fake.add_group("g", "Empty", offsets={("t", 0): 9})

    status, out, err = logctl(
        fake,
        capsys,
        "group",
        "reset-offsets",
        "g",
        "--topic",
        "t:0",
        "--to-offset",
        "5",
        "--execute",
    )

    assert (status, err) == (0, "")
    assert out[1:] == [["g", "t", "0", "5"]]
    assert fake.committed("g") == {("t", 0): 5}
    assert commits(fake)[0]["generation_id"] == -1


def test_explicit_dry_run(fake, capsys):
    fake.add_group("g", "Empty", offsets={("t", 0): 9})

    status, out, _ = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--all-topics", "--to-latest", "--dry-run"
    )

    assert (status, out[1:]) == (0, [["g", "t", "0", "10"]])
    assert commits(fake) == []


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--to-latest"], "10"),
        (["--to-offset", "0"], "2"),  # below the log start
        (["--to-offset", "1000"], "10"),  # past the end
        (["--shift-by", "-3"], "6"),
        (["--shift-by", "-100"], "2"),
        (["--shift-by", "+5"], "10"),
        (["--by-duration", "PT3H30M"], "7"),  # 3.5 hours ago: the record of 3 hours ago
        (["--by-duration", "PT10M"], "10"),  # every record is older: the end
        (["--by-duration", "P30D"], "2"),
    ],
)
def test_each_reset_option(fake, capsys, option, expected):
    fake.add_group("g", "Empty", offsets={("t", 0): 9})

    status, out, err = logctl(fake, capsys, "group", "reset-offsets", "g", "--all-topics", *option)

    assert status == 0, err
    assert out[1:] == [["g", "t", "0", expected]]


def test_reset_to_a_datetime(fake, capsys):
    fake.add_group("g", "Empty", offsets={("t", 0): 9})
    record_5 = datetime.datetime.fromtimestamp(fake.times[5] / 1000, tz=datetime.UTC)
    just_after_4 = (record_5 - datetime.timedelta(minutes=30)).isoformat()
    naive_local = record_5.astimezone().replace(tzinfo=None).isoformat(timespec="milliseconds")

    _, with_zone, _ = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--all-topics", "--to-datetime", just_after_4
    )
    _, local, _ = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--all-topics", "--to-datetime", naive_local
    )

    assert with_zone[1:] == [["g", "t", "0", "5"]]
    assert local[1:] == [["g", "t", "0", "5"]]


def test_reset_refused_while_the_group_has_members(fake, capsys):
    fake.add_group("g", "Stable", [FakeMember("m1", {"t": [0]}), FakeMember("m2")])

    status, out, err = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--all-topics", "--to-earliest", "--execute"
    )

    assert (status, out) == (1, [])
    assert err.startswith("logctl: group 'g' has 2 active members (state Stable)")
    assert "Stop its consumers" in err
    assert "logctl group describe g --members" in err
    assert commits(fake) == []


def test_reset_a_topic_that_does_not_exist_is_refused_naming_it(fake, capsys):
    fake.add_group("g", "Empty", offsets={("t", 0): 9})

    one = logctl(fake, capsys, "group", "reset-offsets", "g", "--topic", "nope", "--to-latest")
    two = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--topic", "nope", "--topic", "t",
        "--topic", "gone:1", "--to-latest", "--execute",
    )  # fmt: skip

    assert one == (1, [], "logctl: topic 'nope' does not exist; nothing was reset\n")
    assert two[:2] == (1, [])
    assert "topics 'nope', 'gone' do not exist" in two[2]
    assert commits(fake) == []


def test_reset_a_partition_that_does_not_exist_is_refused_naming_it(fake, capsys):
    status, out, err = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--topic", "t:1,5,7", "--to-latest"
    )

    assert (status, out) == (1, [])
    assert "topic 't' has no partition 5, 7 (it has 2: 0 to 1)" in err


def test_all_topics_without_committed_offsets_is_refused(fake, capsys):
    status, _, err = logctl(
        fake, capsys, "group", "reset-offsets", "new", "--all-topics", "--to-latest"
    )

    assert status == 1
    assert "group 'new' has no committed offsets" in err
    assert "name the topics with --topic" in err


def test_shift_without_a_committed_offset_is_refused(fake, capsys):
    fake.add_group("g", "Empty", offsets={("t", 0): 9})

    status, _, err = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--topic", "t", "--shift-by", "1"
    )

    assert status == 1
    assert "cannot shift t-1: the group has no committed offset there" in err


def test_a_group_that_does_not_exist_yet_gets_offsets(fake, capsys):
    status, out, _ = logctl(
        fake, capsys, "group", "reset-offsets", "new", "--topic", "u", "--to-earliest", "--execute"
    )

    assert (status, out[1:]) == (0, [["new", "u", "0", "0"]])
    assert fake.committed("new") == {("u", 0): 0}


def test_members_joining_before_execute_fail_the_commit(fake, capsys, monkeypatch):
    group = fake.add_group("g", "Empty", offsets={("t", 0): 9})
    original = fake._offset_fetch

    def join_then_fetch(body, error):
        group.members.append(FakeMember("late"))
        return original(body, error)

    monkeypatch.setattr(fake, "_offset_fetch", join_then_fetch)

    status, out, err = logctl(
        fake, capsys, "group", "reset-offsets", "g", "--all-topics", "--to-earliest", "--execute"
    )

    assert (status, out) == (1, [])
    assert "logctl: the offsets of group 'g' were not reset: [UNKNOWN_MEMBER_ID]" in err
    assert "a member joined since the check" in err
    assert fake.committed("g") == {("t", 0): 9}


# -- delete ----------------------------------------------------------------------------


def test_delete_reports_each_group_and_exits_1_if_any_failed(fake, capsys):
    fake.add_group("old", "Empty", offsets={("t", 0): 1})
    fake.add_group("busy", "Stable", [FakeMember("m1")])

    status, out, err = logctl(fake, capsys, "group", "delete", "old", "busy", "ghost")

    assert status == 1
    assert out == [["Deleted", "group", "old."]]
    assert "logctl: group 'busy' was not deleted: [NON_EMPTY_GROUP]" in err
    assert "(its members: 'logctl group describe busy --members')" in err
    assert "logctl: group 'ghost' was not deleted: [GROUP_ID_NOT_FOUND]" in err


def test_delete_success_exits_0(fake, capsys):
    fake.add_group("a", "Empty")
    fake.add_group("b", "Empty")

    assert logctl(fake, capsys, "group", "delete", "a", "b") == (
        0,
        [["Deleted", "group", "a."], ["Deleted", "group", "b."]],
        "",
    )
