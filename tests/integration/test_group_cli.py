"""``logctl group`` and ``logctl consume --group`` against a real standalone broker process.

The whole path: ``logctl`` in a subprocess, the admin client, the broker's
group coordinator and its offset store. One broker serves the module; each
test has topics and groups of its own. A member that must stay in a group is
``logctl consume --group`` running in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from client.producer import Producer
from tests.client.cli.conftest import cli_env, lines, run_logctl
from tests.support.broker_process import REPO_ROOT, BrokerProcess

HOUR_MS = 3_600_000
JOIN_TIMEOUT_S = 30  # the first rebalance waits group.initial.rebalance.delay.ms (3 s)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("group-broker"))
    process.start()
    try:
        yield process
    finally:
        process.close()
    assert process.tracebacks() == [], process.output(last=200)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    raw = request.node.name.replace("[", "-").replace("]", "")
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in raw)[:150]


def logctl(broker: BrokerProcess, *args: str, input: bytes = b"") -> subprocess.CompletedProcess:
    return run_logctl(["-b", broker.address, *args], input=input)


def ok(result: subprocess.CompletedProcess) -> list[list[str]]:
    """The stdout rows of a command that must have succeeded, split into words."""
    assert result.returncode == 0, result.stderr.decode()
    return [line.split() for line in lines(result.stdout)]


def make_topic(broker: BrokerProcess, topic: str, counts: list[int]) -> None:
    """A topic with ``counts[p]`` records ``p<P>-<i>`` in partition P."""
    ok(logctl(broker, "topic", "create", topic, "--partitions", str(len(counts))))
    for p, count in enumerate(counts):
        data = "".join(f"p{p}-{i}\n" for i in range(count)).encode()
        ok(logctl(broker, "produce", topic, "--partition", str(p), input=data))


def consume_group(broker: BrokerProcess, topic: str, group: str, *more: str) -> list[str]:
    """``logctl consume TOPIC --group GROUP -e``: the values it printed."""
    result = logctl(broker, "consume", topic, "--group", group, "-e", *more)
    assert result.returncode == 0, result.stderr.decode()
    return lines(result.stdout)


def describe(broker: BrokerProcess, group: str, *more: str) -> dict[tuple[str, int], list[str]]:
    """``group describe``'s rows by (topic, partition): CURRENT-OFFSET and the columns after."""
    rows = ok(logctl(broker, "group", "describe", group, *more))
    assert rows[0] == [
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
    return {(row[1], int(row[2])): row[3:] for row in rows[1:]}


@contextlib.contextmanager
def member(broker: BrokerProcess, topic: str, group: str) -> Iterator[subprocess.Popen[bytes]]:
    """``logctl consume --group`` in the background, once it is in a Stable group."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "client.cli",
            "-b",
            broker.address,
            "consume",
            topic,
            "--group",
            group,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=cli_env(),
    )
    try:
        wait_for_state(broker, group, "Stable", members=1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def wait_for_state(broker: BrokerProcess, group: str, state: str, members: int) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    seen: list[list[str]] = []
    while time.monotonic() < deadline:
        result = logctl(broker, "group", "describe", group, "--state")
        if result.returncode == 0:
            seen = [line.split() for line in lines(result.stdout)]
            if seen[1][-2:] == [state, str(members)]:
                return
        time.sleep(0.3)
    pytest.fail(f"group {group} never reached {state} with {members} member(s): {seen}")


def stop(process: subprocess.Popen[bytes]) -> str:
    """Ctrl-C, as an operator stops a console consumer; its stderr."""
    process.send_signal(signal.SIGINT)
    process.wait(20)
    assert process.stderr is not None
    return process.stderr.read().decode()


# -- consume --group, describe, list ---------------------------------------------------


def test_a_group_member_commits_and_the_next_one_resumes(broker, name):
    make_topic(broker, name, [3, 2])

    first = consume_group(broker, name, "g-" + name, "--from-beginning")
    after_first = describe(broker, "g-" + name)
    ok(logctl(broker, "produce", name, "--partition", "1", input=b"late-0\nlate-1\n"))
    lagging = describe(broker, "g-" + name)
    second = consume_group(broker, name, "g-" + name, "--from-beginning")

    assert sorted(first) == ["p0-0", "p0-1", "p0-2", "p1-0", "p1-1"]
    assert after_first == {
        (name, 0): ["3", "3", "0", "-", "-", "-"],
        (name, 1): ["2", "2", "0", "-", "-", "-"],
    }
    assert lagging[(name, 1)][:3] == ["2", "4", "2"]
    assert second == ["late-0", "late-1"]  # from the committed offsets, not the beginning
    listed = ok(logctl(broker, "group", "list"))
    assert ["g-" + name, "Empty"] in listed


def test_without_from_beginning_a_new_group_starts_at_the_end(broker, name):
    make_topic(broker, name, [2])

    assert consume_group(broker, name, "g-" + name) == []
    assert describe(broker, "g-" + name) == {(name, 0): ["2", "2", "0", "-", "-", "-"]}


def test_describe_members_and_state_of_a_live_member(broker, name):
    make_topic(broker, name, [1, 1, 1])
    with member(broker, name, "g-" + name) as process:
        offsets = describe(broker, "g-" + name)
        members = ok(logctl(broker, "group", "describe", "g-" + name, "--members", "--verbose"))
        state = ok(logctl(broker, "group", "describe", "g-" + name, "--state"))
        listed = ok(logctl(broker, "group", "list", "--state", "stable"))
        stop(process)

    assert {row[-1] for row in offsets.values()} == {"logctl-consumer"}
    assert members[0] == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]
    assert members[1][0] == "g-" + name
    assert members[1][3:] == ["logctl-consumer", "3", f"{name}:0,1,2"]
    assert state[1][-3:] == ["range", "Stable", "1"]
    assert ["g-" + name, "Stable"] in listed


def test_describe_and_delete_a_group_that_does_not_exist(broker, name):
    described = logctl(broker, "group", "describe", "nobody-" + name)
    deleted = logctl(broker, "group", "delete", "nobody-" + name)

    assert described.returncode == 1
    assert f"logctl: consumer group 'nobody-{name}' does not exist" in described.stderr.decode()
    assert deleted.returncode == 1
    assert "[GROUP_ID_NOT_FOUND]" in deleted.stderr.decode()


def test_delete_refuses_a_group_with_members_then_deletes_it_empty(broker, name):
    make_topic(broker, name, [1])
    group = "g-" + name
    with member(broker, name, group) as process:
        busy = logctl(broker, "group", "delete", group)
        err = stop(process)
    wait_for_state(broker, group, "Empty", members=0)
    deleted = logctl(broker, "group", "delete", group)

    assert busy.returncode == 1
    assert "[NON_EMPTY_GROUP]" in busy.stderr.decode()
    assert err == ""
    assert ok(deleted) == [["Deleted", "group", f"{group}."]]
    assert logctl(broker, "group", "describe", group).returncode == 1


# -- reset-offsets ---------------------------------------------------------------------


def test_reset_dry_run_changes_nothing_and_execute_replays(broker, name):
    make_topic(broker, name, [3, 2])
    group = "g-" + name
    consume_group(broker, name, group, "--from-beginning")

    dry = logctl(broker, "group", "reset-offsets", group, "--all-topics", "--to-earliest")
    unchanged = describe(broker, group)
    executed = logctl(
        broker, "group", "reset-offsets", group, "--topic", name, "--to-earliest", "--execute"
    )
    reset = describe(broker, group)
    replayed = consume_group(broker, name, group)

    assert ok(dry) == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        [group, name, "0", "0"],
        [group, name, "1", "0"],
    ]
    assert "Dry run: nothing was changed" in dry.stderr.decode()
    assert [row[0] for row in unchanged.values()] == ["3", "2"]
    assert ok(executed)[1:] == [[group, name, "0", "0"], [group, name, "1", "0"]]
    assert [row[:3] for row in reset.values()] == [["0", "3", "3"], ["0", "2", "2"]]
    assert sorted(replayed) == ["p0-0", "p0-1", "p0-2", "p1-0", "p1-1"]


def test_reset_shift_offset_and_clamping(broker, name):
    make_topic(broker, name, [5])
    group = "g-" + name
    consume_group(broker, name, group, "--from-beginning")

    def plan(*option: str) -> str:
        result = logctl(broker, "group", "reset-offsets", group, "--topic", f"{name}:0", *option)
        return ok(result)[1][3]

    assert plan("--shift-by", "-2") == "3"
    assert plan("--shift-by", "-100") == "0"
    assert plan("--to-offset", "4") == "4"
    assert plan("--to-offset", "99") == "5"
    assert plan("--to-latest") == "5"
    assert plan("--by-duration", "PT1H") == "0"  # every record is newer than an hour ago


def test_reset_to_a_datetime(broker, name):
    ok(logctl(broker, "topic", "create", name, "--partitions", "1"))
    now = int(time.time() * 1000)
    stamps = [now - (5 - i) * HOUR_MS for i in range(5)]  # 5 hours ago to 1 hour ago

    async def produce() -> None:
        async with Producer(broker.address, linger_ms=0) as producer:
            for ts in stamps:
                await (await producer.send(name, b"v", partition=0, timestamp_ms=ts))

    asyncio.run(produce())
    group = "g-" + name
    at = datetime.datetime.fromtimestamp((stamps[2] - 60_000) / 1000, tz=datetime.UTC)
    local = at.astimezone().replace(tzinfo=None)

    def plan(when: str) -> str:
        result = logctl(
            broker, "group", "reset-offsets", group, "--topic", name, "--to-datetime", when
        )
        return ok(result)[1][3]

    assert plan(at.isoformat(timespec="milliseconds")) == "2"
    assert plan(at.isoformat().replace("+00:00", "Z")) == "2"
    assert plan(local.isoformat(timespec="milliseconds")) == "2"  # no zone: local time
    assert plan("2000-01-01T00:00:00") == "0"
    assert plan(datetime.datetime.now(tz=datetime.UTC).isoformat()) == "5"  # after every record


def test_reset_is_refused_while_the_group_has_a_member(broker, name):
    make_topic(broker, name, [2])
    group = "g-" + name
    with member(broker, name, group) as process:
        refused = logctl(
            broker, "group", "reset-offsets", group, "--all-topics", "--to-earliest", "--execute"
        )
        dry = logctl(broker, "group", "reset-offsets", group, "--topic", name, "--to-earliest")
        stop(process)

    assert refused.returncode == 1
    assert refused.stdout == b""
    err = refused.stderr.decode()
    assert f"logctl: group '{group}' has 1 active member (state Stable)" in err
    assert "Stop its consumers" in err
    assert dry.returncode == 1  # a plan made while members move offsets would be stale at once


@pytest.mark.parametrize(
    ("option", "status", "complaint"),
    [
        (["--to-datetime", "2999-01-01T00:00:00Z"], 2, "is in the future"),
        (["--to-datetime", "22/11/2026"], 2, "is not an ISO 8601 date-time: expected"),
        (["--by-duration", "an hour"], 2, "is not an ISO 8601 duration: expected PnDTnHnMnS"),
        (["--to-offset", "-1"], 2, "must not be negative"),
    ],
)
def test_reset_bad_input_is_refused_saying_what_to_do(broker, name, option, status, complaint):
    make_topic(broker, name, [1])

    result = logctl(broker, "group", "reset-offsets", "g-" + name, "--topic", name, *option)

    assert result.returncode == status
    assert complaint in result.stderr.decode()
    assert result.stdout == b""


def test_reset_a_topic_or_partition_that_does_not_exist_is_refused_naming_it(broker, name):
    make_topic(broker, name, [1])
    group = "g-" + name

    topic = logctl(
        broker, "group", "reset-offsets", group, "--topic", "no-" + name, "--to-earliest",
        "--execute",
    )  # fmt: skip
    partition = logctl(
        broker, "group", "reset-offsets", group, "--topic", f"{name}:3", "--to-earliest"
    )

    assert topic.returncode == 1
    assert f"logctl: topic 'no-{name}' does not exist; nothing was reset" in topic.stderr.decode()
    assert partition.returncode == 1
    assert f"topic '{name}' has no partition 3" in partition.stderr.decode()
    assert logctl(broker, "group", "describe", group).returncode == 1  # nothing was committed


def test_all_groups(broker, name):
    make_topic(broker, name, [1])
    for suffix in "ab":
        consume_group(broker, name, f"{suffix}-{name}", "--from-beginning")

    rows = ok(logctl(broker, "group", "describe", "--all-groups"))

    groups = {row[0] for row in rows if row and row[0] != "GROUP"}
    assert {f"a-{name}", f"b-{name}"} <= groups
