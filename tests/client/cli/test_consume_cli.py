"""``logctl consume`` against a real broker: offsets, partitions, formats, limits and pipes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

from client.producer import Producer
from tests.client.cli.conftest import REPO_ROOT, cli_env, lines

Row = tuple[int | None, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]


def send(address: str, topic: str, rows: Sequence[Row], partition: int = 0) -> None:
    """Produce (timestamp_ms, key, value, headers) rows to one partition and wait for each."""

    async def go() -> None:
        async with Producer(address, linger_ms=0) as producer:
            futures = [
                await producer.send(
                    topic, value, key=key, headers=headers, partition=partition, timestamp_ms=ts
                )
                for ts, key, value, headers in rows
            ]
            for future in futures:
                await future

    asyncio.run(go())


def values(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return lines(result.stdout)


def make_topic(logctl, name: str, partitions: int, per_partition: int) -> None:
    """``per_partition`` records ``p<P>-<i>`` in each partition."""
    logctl("topic", "create", name, "--partitions", str(partitions))
    for p in range(partitions):
        data = "".join(f"p{p}-{i}\n" for i in range(per_partition)).encode()
        result = logctl("produce", name, "--partition", str(p), input=data)
        assert result.returncode == 0, result.stderr.decode()


def test_from_beginning_reads_every_partition_in_order(logctl, topic_name):
    make_topic(logctl, topic_name, partitions=3, per_partition=4)

    got = values(logctl("consume", topic_name, "--from-beginning", "-e", "--format", "%p %o %v\\n"))

    assert sorted(got) == sorted(f"{p} {i} p{p}-{i}" for p in range(3) for i in range(4))
    for p in range(3):
        offsets = [int(line.split()[1]) for line in got if line.startswith(f"{p} ")]
        assert offsets == [0, 1, 2, 3]


def test_the_default_offset_is_the_end(logctl, topic_name):
    make_topic(logctl, topic_name, partitions=2, per_partition=3)

    assert values(logctl("consume", topic_name, "-e")) == []
    assert values(logctl("consume", topic_name, "--offset", "end", "--exit-at-end")) == []
    assert len(values(logctl("consume", topic_name, "--offset", "start", "-e"))) == 6


def test_absolute_and_relative_offsets_per_partition(logctl, topic_name):
    make_topic(logctl, topic_name, partitions=2, per_partition=5)
    fmt = ["--format", "%v\\n"]

    from_3 = values(logctl("consume", topic_name, "--offset", "3", "-e", *fmt))
    last_2 = values(logctl("consume", topic_name, "--offset", "-2", "-e", *fmt))
    past_end = values(logctl("consume", topic_name, "--offset", "99", "-e", *fmt))
    more_than_all = values(logctl("consume", topic_name, "--offset", "-99", "-e", *fmt))

    assert sorted(from_3) == ["p0-3", "p0-4", "p1-3", "p1-4"]
    assert sorted(last_2) == ["p0-3", "p0-4", "p1-3", "p1-4"]
    assert past_end == []
    assert len(more_than_all) == 10


def test_one_partition_only(logctl, topic_name):
    make_topic(logctl, topic_name, partitions=3, per_partition=2)

    got = values(logctl("consume", topic_name, "--partition", "1", "--from-beginning", "-e"))

    assert got == ["p1-0", "p1-1"]


def test_a_timestamp_starts_at_the_first_record_at_or_after_it(broker, logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")
    send(broker.address, topic_name, [(1000 * i, None, b"t%d" % i, ()) for i in range(1, 6)])

    at_3000 = values(logctl("consume", topic_name, "--offset", "@3000", "-e"))
    at_2500 = values(logctl("consume", topic_name, "--offset", "@2500", "-e"))
    after_all = values(logctl("consume", topic_name, "--offset", "@9000", "-e"))

    assert at_3000 == ["t3", "t4", "t5"]
    assert at_2500 == ["t3", "t4", "t5"]
    assert after_all == []


def test_every_format_token_and_json(broker, logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")
    send(
        broker.address,
        topic_name,
        [
            (1234, b"k1", b"v1", [("h1", b"x"), ("h2", b"y")]),
            (5678, None, b"\xffbin", []),
        ],
    )

    text = logctl(
        "consume", topic_name, "--from-beginning", "-e", "--format", "%t|%p|%o|%T|%k|%v|%h\\n"
    )
    as_json = logctl("consume", topic_name, "--from-beginning", "-e", "--format", "json")

    assert text.returncode == 0
    assert text.stdout == (
        f"{topic_name}|0|0|1234|k1|v1|h1=x,h2=y\n{topic_name}|0|1|5678||\xffbin|\n".encode(
            "latin-1"
        )
    )
    assert [json.loads(line) for line in lines(as_json.stdout)] == [
        {
            "topic": topic_name,
            "partition": 0,
            "offset": 0,
            "timestamp": 1234,
            "key": "k1",
            "value": "v1",
            "headers": [["h1", "x"], ["h2", "y"]],
        },
        {
            "topic": topic_name,
            "partition": 0,
            "offset": 1,
            "timestamp": 5678,
            "key": None,
            "value": "\\xffbin",
            "headers": [],
        },
    ]


def test_max_messages_stops_without_waiting_for_more(logctl, topic_name):
    make_topic(logctl, topic_name, partitions=1, per_partition=10)

    started = time.monotonic()
    got = values(logctl("consume", topic_name, "--from-beginning", "--max-messages", "3"))

    assert got == ["p0-0", "p0-1", "p0-2"]
    assert time.monotonic() - started < 30


def test_unknown_topic_and_partition_are_errors(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "2")

    no_topic = logctl("consume", f"{topic_name}-missing", "-e")
    no_partition = logctl("consume", topic_name, "--partition", "7", "-e")

    assert no_topic.returncode == 1
    assert no_topic.stderr.decode().startswith("logctl: [UNKNOWN_TOPIC_OR_PARTITION]")
    assert no_partition.returncode == 1
    assert f"topic {topic_name!r} has no partition 7 (it has 2)" in no_partition.stderr.decode()


@contextlib.contextmanager
def consuming(broker, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``logctl consume`` in the background; killed (if still running) and reaped at exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "-b", broker.address, "consume", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=cli_env(),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def finish(process: subprocess.Popen[bytes], timeout: float = 10) -> bytes:
    """Wait for exit (at most ``timeout``) and return its stderr."""
    process.wait(timeout)
    assert process.stderr is not None
    return process.stderr.read()


def test_tailing_from_the_end_prints_records_as_they_arrive(broker, logctl, topic_name):
    make_topic(logctl, topic_name, partitions=1, per_partition=3)
    with consuming(broker, topic_name, "--max-messages", "1") as process:
        # it gives no sign of being positioned: keep sending until one line comes back
        deadline = time.monotonic() + 20
        n = 0
        while process.poll() is None:
            assert time.monotonic() < deadline, "nothing arrived at the tailing consumer"
            assert logctl("produce", topic_name, input=b"new-%d\n" % n).returncode == 0
            n += 1
            time.sleep(0.3)
        err = finish(process)
        assert process.stdout is not None
        printed = process.stdout.read()

    assert process.returncode == 0, err
    assert printed.startswith(b"new-")
    assert len(lines(printed)) == 1


def test_a_closed_pipe_ends_it_quietly(broker, logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")
    data = b"".join(b"%06d %s\n" % (i, b"x" * 100) for i in range(5000))  # beyond a pipe buffer
    assert logctl("produce", topic_name, "--linger-ms", "5", input=data).returncode == 0
    with consuming(broker, topic_name, "--from-beginning") as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        process.stdout.close()  # what `| head -1` does after its line
        err = finish(process)

    assert first.startswith(b"000000 ")
    assert process.returncode == 141
    assert err == b""


def test_ctrl_c_exits_130_quietly(broker, logctl, topic_name):
    make_topic(logctl, topic_name, partitions=1, per_partition=1)
    with consuming(broker, topic_name, "--from-beginning") as process:
        assert process.stdout is not None
        first = process.stdout.readline()  # it is consuming: past start-up, inside the loop
        process.send_signal(signal.SIGINT)
        err = finish(process)

    assert first == b"p0-0\n"
    assert process.returncode == 130
    assert err == b""
