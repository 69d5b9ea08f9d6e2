"""``logctl cluster info|elect-leaders`` and ``logctl topic describe --under-replicated``.

Through the real entry point (``python -m client.cli`` in a subprocess), on a
real three-broker cluster (tests/cluster/conftest.py) and on a standalone
broker (tests/integration/conftest.py). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from client import Admin, Producer
from client.admin_types import TopicDescription
from client.errors import (
    ElectionNotNeededError,
    InvalidRequestError,
    NotControllerError,
    UnknownTopicOrPartitionError,
)
from client.protocol import ApiKey
from tests.client.cli.conftest import lines, run_logctl
from tests.cluster.conftest import Cluster
from tests.integration.conftest import broker, broker_factory  # noqa: F401 (fixtures)
from tests.support.broker_process import BrokerProcess, connect

TIMEOUT_S = 60.0
T = TypeVar("T")


# -- helpers -----------------------------------------------------------------------


async def logctl(bootstrap: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m client.cli -b BOOTSTRAP ARGS…`` in a subprocess, off the event loop."""
    return await asyncio.to_thread(run_logctl, ["-b", bootstrap, *args])


def ok(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    assert result.returncode == 0, (result.stdout.decode(), result.stderr.decode())
    assert result.stderr == b""
    return lines(result.stdout)


async def wait_for(
    predicate: Callable[[], Awaitable[T]], what: str, cluster: Cluster | None = None
) -> T:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = "" if cluster is None else "\n" + outputs(cluster)
            raise AssertionError(f"timed out after {TIMEOUT_S} s waiting for {what}{detail}")
        await asyncio.sleep(0.25)


def outputs(cluster: Cluster) -> str:
    return "\n".join(f"broker {i}:\n{b.output(last=80)}" for i, b in enumerate(cluster.brokers))


async def describe(bootstrap: str, topic: str) -> TopicDescription:
    async with Admin(bootstrap, request_timeout_ms=10_000) as admin:
        return (await admin.describe_topics([topic]))[topic]


def fields(line: str) -> dict[str, str]:
    """``Topic: t<tab>Partition: 0<tab>…`` as a dict."""
    return dict(item.split(": ", 1) for item in line.split("\t"))


def election_rows(output: list[str]) -> dict[tuple[str, str], str]:
    """(topic, partition) → result, from ``cluster elect-leaders``' table."""
    assert output[0].split() == ["TOPIC", "PARTITION", "RESULT"], output
    rows = {}
    for line in output[1:]:
        topic, partition, result = line.split(maxsplit=2)
        rows[(topic, partition)] = result
    return rows


async def probe_controller(processes: list[BrokerProcess]) -> list[int]:
    """The brokers (by index) that accept an ElectLeaders for no partition at all."""
    accepted = []
    for i, process in enumerate(processes):
        if not process.running:
            continue
        connection = await connect(process)
        try:
            reply, _ = await connection.request(
                ApiKey.ELECT_LEADERS, {"topics": []}, timeout_ms=5_000
            )
        except NotControllerError:
            continue
        finally:
            connection.close()
        assert reply["results"] == []
        accepted.append(i)
    return accepted


# -- a cluster ---------------------------------------------------------------------


async def test_cluster_info_lists_the_brokers_and_one_controller(cluster: Cluster) -> None:
    controllers = await probe_controller(cluster.brokers)
    assert len(controllers) == 1, f"brokers accepting ElectLeaders: {controllers}"
    (controller,) = controllers

    output = ok(await logctl(cluster.bootstrap, "cluster", "info"))

    assert output[0] == f"Controller: {controller}", output
    assert output[1].split() == ["ID", "HOST:PORT", "RACK", "CONTROLLER"]
    rows = [line.split() for line in output[2:]]
    assert rows == [
        [str(i), b.address, "-", "yes" if i == controller else "no"]
        for i, b in enumerate(cluster.brokers)
    ]


async def test_elect_leaders_reaches_the_controller_from_any_broker(cluster: Cluster) -> None:
    (controller,) = await probe_controller(cluster.brokers)
    other = cluster.brokers[(controller + 1) % len(cluster.brokers)]
    async with Admin(cluster.bootstrap) as admin:
        await admin.create_topic("anywhere", num_partitions=2)

    async with Admin(other.address, request_timeout_ms=10_000) as admin:  # not the controller
        results = await admin.elect_leaders(["anywhere", "missing"])

    assert set(results) == {("anywhere", 0), ("anywhere", 1), ("missing", -1)}
    assert all(isinstance(results[("anywhere", p)], ElectionNotNeededError) for p in (0, 1))
    assert isinstance(results[("missing", -1)], UnknownTopicOrPartitionError)


async def test_under_replicated_while_a_leader_is_down_then_preferred_leaders_come_back(
    cluster: Cluster,
) -> None:
    topic = "preferred"
    ok(await logctl(cluster.bootstrap, "topic", "create", topic))  # 3 partitions, 3 replicas

    async def settled() -> TopicDescription | None:
        found = await describe(cluster.bootstrap, topic)
        full = all(len(p.isr) == 3 and p.leader == p.replicas[0] for p in found.partitions)
        return found if full else None

    before = await wait_for(settled, "a full ISR led by the preferred replicas", cluster)
    preferred = {p.partition: p.replicas[0] for p in before.partitions}
    victim_id = preferred[0]
    victim = cluster.brokers[victim_id]
    victims_partitions = {str(p) for p, leader in preferred.items() if leader == victim_id}
    assert ok(await logctl(cluster.bootstrap, "topic", "describe", "--under-replicated")) == []

    await asyncio.to_thread(victim.kill9)
    survivors = cluster.bootstrap  # the running brokers only

    async def led_elsewhere() -> bool:
        found = await describe(survivors, topic)
        return all(p.leader not in (-1, victim_id) for p in found.partitions)

    await wait_for(led_elsewhere, "leadership to leave the killed broker", cluster)
    # A record in every partition moves each high watermark past the dead broker's log end.
    async with Producer(survivors, acks=1, request_timeout_ms=5_000) as producer:
        for future in [await producer.send(topic, b"v", partition=p) for p in preferred]:
            await future

    async def out_of_every_isr() -> bool:
        found = await describe(survivors, topic)
        return all(victim_id not in p.isr for p in found.partitions)

    await wait_for(out_of_every_isr, "the killed broker to leave every ISR", cluster)

    # Every partition has a replica on the dead broker: all are under-replicated.
    named = ok(await logctl(survivors, "topic", "describe", topic, "--under-replicated"))
    everywhere = ok(await logctl(survivors, "topic", "describe", "--under-replicated"))
    assert named == everywhere
    # What a rolling restart loops on: the same lines, and exit status 1.
    check = await logctl(survivors, "topic", "describe", "--under-replicated", "--fail-if-any")
    assert check.returncode == 1, (check.stdout, check.stderr)
    assert lines(check.stdout) == everywhere
    assert check.stderr.decode() == "logctl: 3 partition(s) under-replicated\n"
    rows = [fields(line) for line in named]
    assert [row["Partition"] for row in rows] == ["0", "1", "2"]
    for row in rows:
        assert row["Topic"] == topic
        assert row["Replicas"] == ",".join(
            map(str, before.partitions[int(row["Partition"])].replicas)
        )
        assert str(victim_id) not in row["Isr"].split(",")
        assert len(row["Isr"].split(",")) == 2
        assert row["Leader"] != str(victim_id)

    # The preferred replica is down: its partitions fail, the others need nothing.
    failed = await logctl(survivors, "cluster", "elect-leaders", "--topic", topic)
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert re.fullmatch(
        rf"logctl: {len(victims_partitions)} of 3 partition\(s\) failed leader election\n",
        failed.stderr.decode(),
    )
    results = election_rows(lines(failed.stdout))
    assert set(results) == {(topic, str(p)) for p in range(3)}
    for (_, partition), result in results.items():
        if partition in victims_partitions:
            assert result.startswith("error: [PREFERRED_LEADER_NOT_AVAILABLE]"), result
        else:
            assert result == "not needed"
    # The registration lasts until the session expires (the controller's liveness probe
    # moved leadership sooner): then `cluster info` no longer lists the killed broker.
    alive = [str(i) for i in range(3) if i != victim_id]

    async def unlisted() -> bool:
        info = ok(await logctl(survivors, "cluster", "info"))
        return [line.split()[0] for line in info[2:]] == alive

    await wait_for(unlisted, "the killed broker's registration to expire", cluster)

    await asyncio.to_thread(victim.restart)

    async def rejoined() -> bool:
        found = await describe(cluster.bootstrap, topic)
        return all(len(p.isr) == 3 and p.leader >= 0 for p in found.partitions)

    await wait_for(rejoined, "the restarted broker to rejoin every ISR", cluster)
    assert ok(await logctl(cluster.bootstrap, "topic", "describe", "--under-replicated")) == []
    in_sync = ["topic", "describe", "--under-replicated", "--fail-if-any"]
    assert ok(await logctl(cluster.bootstrap, *in_sync)) == []

    elected = ok(await logctl(cluster.bootstrap, "cluster", "elect-leaders"))

    results = election_rows(elected)
    assert set(results) == {(topic, str(p)) for p in range(3)}
    for (_, partition), result in results.items():
        if partition not in victims_partitions:
            assert result == "not needed"
        elif result != "elected":
            # The controller's own periodic preferred election may have come first.
            assert result == "not needed"
            assert any(
                "automatic preferred leader election" in line
                for b in cluster.brokers
                for line in b.lines
                if f"{topic}-{partition}:" in line
            ), outputs(cluster)

    async def preferred_lead() -> bool:
        found = await describe(cluster.bootstrap, topic)
        return all(p.leader == preferred[p.partition] for p in found.partitions)

    await wait_for(preferred_lead, "the preferred replicas to lead again", cluster)
    described = ok(await logctl(cluster.bootstrap, "topic", "describe", topic))
    leaders = {row.split()[0]: row.split()[1] for row in described[3:]}
    assert leaders == {str(p): str(leader) for p, leader in preferred.items()}
    for process in cluster.brokers:
        assert process.tracebacks() == [], process.output(last=200)


# -- standalone --------------------------------------------------------------------


async def test_standalone_broker_is_its_own_controller(broker: BrokerProcess) -> None:  # noqa: F811
    output = ok(await logctl(broker.address, "cluster", "info"))

    assert output[0] == "Controller: 0"
    assert [line.split() for line in output[1:]] == [
        ["ID", "HOST:PORT", "RACK", "CONTROLLER"],
        ["0", broker.address, "-", "yes"],
    ]


async def test_standalone_elections_are_never_needed(broker: BrokerProcess) -> None:  # noqa: F811
    ok(await logctl(broker.address, "topic", "create", "solo", "--partitions", "2"))
    ok(await logctl(broker.address, "topic", "create", "other", "--partitions", "1"))

    everything = election_rows(ok(await logctl(broker.address, "cluster", "elect-leaders")))
    one = ok(await logctl(broker.address, "cluster", "elect-leaders", "--topic", "solo"))
    missing = await logctl(
        broker.address, "cluster", "elect-leaders", "--topic", "solo", "--topic", "nope"
    )

    assert everything == {
        ("other", "0"): "not needed",
        ("solo", "0"): "not needed",
        ("solo", "1"): "not needed",
    }
    assert election_rows(one) == {("solo", "0"): "not needed", ("solo", "1"): "not needed"}
    assert missing.returncode == 1
    assert missing.stderr.decode() == "logctl: 1 of 3 partition(s) failed leader election\n"
    assert election_rows(lines(missing.stdout)) == {
        ("nope", "-"): "error: [UNKNOWN_TOPIC_OR_PARTITION] topic 'nope' does not exist",
        ("solo", "0"): "not needed",
        ("solo", "1"): "not needed",
    }


async def test_standalone_nothing_is_under_replicated(broker: BrokerProcess) -> None:  # noqa: F811
    ok(await logctl(broker.address, "topic", "create", "single", "--partitions", "3"))

    assert ok(await logctl(broker.address, "topic", "describe", "--under-replicated")) == []
    in_sync = ["topic", "describe", "--under-replicated", "--fail-if-any"]
    assert ok(await logctl(broker.address, *in_sync)) == []
    assert (
        ok(await logctl(broker.address, "topic", "describe", "single", "--under-replicated")) == []
    )
    unknown = await logctl(broker.address, "topic", "describe", "nope", "--under-replicated")
    assert unknown.returncode == 1
    assert "UNKNOWN_TOPIC_OR_PARTITION" in unknown.stderr.decode()
    usage = await logctl(broker.address, "topic", "describe")
    assert usage.returncode == 2
    assert "needs NAME (or --under-replicated" in usage.stderr.decode()
    alone = await logctl(broker.address, "topic", "describe", "single", "--fail-if-any")
    assert alone.returncode == 2
    assert "--fail-if-any goes with --under-replicated" in alone.stderr.decode()


async def test_standalone_elect_leaders_wire_answers(broker: BrokerProcess) -> None:  # noqa: F811
    ok(await logctl(broker.address, "topic", "create", "wire", "--partitions", "2"))
    connection = await connect(broker)
    try:

        async def elect(topics: Any) -> dict[str, Any]:
            reply, _ = await connection.request(
                ApiKey.ELECT_LEADERS, {"topics": topics}, timeout_ms=5_000
            )
            return reply

        partitions = await elect([["wire", [1, 7, 1]], ["bad name", [0]], ["gone", None]])
        whole = await elect([["wire", None]])
        nothing = await elect([])
        with pytest.raises(InvalidRequestError, match="topic, partitions"):
            await elect([["wire"]])
        with pytest.raises(InvalidRequestError, match="integers or null"):
            await elect([["wire", ["0"]]])
    finally:
        connection.close()

    not_needed = ElectionNotNeededError.code
    unknown = UnknownTopicOrPartitionError.code
    assert partitions["error"] == 0
    assert [row[:3] for row in partitions["results"]] == [
        ["bad name", 0, 17],  # INVALID_TOPIC_EXCEPTION
        ["gone", -1, unknown],
        ["wire", 1, not_needed],
        ["wire", 7, unknown],
    ]
    assert [row[:3] for row in whole["results"]] == [
        ["wire", 0, not_needed],
        ["wire", 1, not_needed],
    ]
    assert nothing == {"error": 0, "error_message": None, "results": []}
