"""``logctl produce`` against a real broker; what it wrote is read back with ``logctl consume``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.client.cli.conftest import REPO_ROOT, cli_env, lines


def consume_all(logctl, topic: str, *extra: str) -> list[dict]:
    result = logctl("consume", topic, "--from-beginning", "-e", "--format", "json", *extra)
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in lines(result.stdout)]


def produce_ok(logctl, topic: str, data: bytes, *flags: str) -> None:
    result = logctl("produce", topic, *flags, input=data)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    assert result.stderr == b""


def test_each_line_is_a_record_in_order(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")

    produce_ok(logctl, topic_name, b"one\ntwo\n\nfour\nlast without newline")

    records = consume_all(logctl, topic_name)
    assert [(r["offset"], r["key"], r["value"]) for r in records] == [
        (0, None, "one"),
        (1, None, "two"),
        (2, None, ""),
        (3, None, "four"),
        (4, None, "last without newline"),
    ]
    assert all(r["timestamp"] > 1_600_000_000_000 for r in records)


def test_no_input_sends_nothing(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")

    produce_ok(logctl, topic_name, b"")

    assert consume_all(logctl, topic_name) == []


def test_key_separator_splits_at_the_first_separator(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")

    produce_ok(
        logctl,
        topic_name,
        b"k1::v1\nk2::v2::more\nno separator\n::empty key\n",
        "--key-separator",
        "::",
    )

    records = consume_all(logctl, topic_name)
    assert [(r["key"], r["value"]) for r in records] == [
        ("k1", "v1"),
        ("k2", "v2::more"),
        (None, "no separator"),
        ("", "empty key"),
    ]


def test_records_with_the_same_key_go_to_the_same_partition(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "4")
    data = b"".join(b"user-%d:%d\n" % (i % 5, i) for i in range(40))

    produce_ok(logctl, topic_name, data, "--key-separator", ":")

    records = consume_all(logctl, topic_name)
    assert len(records) == 40
    partitions_of: dict[str, set[int]] = {}
    for r in records:
        partitions_of.setdefault(r["key"], set()).add(r["partition"])
    assert all(len(ps) == 1 for ps in partitions_of.values())
    for partition in range(4):  # per partition, values keep the order they were sent in
        values = [int(r["value"]) for r in records if r["partition"] == partition]
        assert values == sorted(values)


def test_partition_flag_puts_every_record_there(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "3")

    produce_ok(logctl, topic_name, b"a\nb\nc\n", "--partition", "2")

    records = consume_all(logctl, topic_name)
    assert [(r["partition"], r["offset"], r["value"]) for r in records] == [
        (2, 0, "a"),
        (2, 1, "b"),
        (2, 2, "c"),
    ]


@pytest.mark.parametrize(
    "flags",
    [
        ["--acks", "0"],
        ["--acks", "1"],
        ["--acks", "all"],
        ["--compression", "lz4", "--linger-ms", "20"],
        ["--compression", "snappy", "--batch-size", "1"],
        ["--batch-size", "100000", "--linger-ms", "5", "--acks", "-1"],
    ],
    ids=lambda flags: "_".join(f.strip("-") for f in flags),
)
def test_producer_settings_all_deliver_every_record(logctl, topic_name, flags):
    logctl("topic", "create", topic_name, "--partitions", "2")
    sent = [f"record {i} " + "x" * (i % 50) for i in range(500)]

    produce_ok(logctl, topic_name, "\n".join(sent).encode() + b"\n", *flags)

    deadline = time.monotonic() + 20  # acks=0: the broker may still be appending
    while True:
        got = consume_all(logctl, topic_name)
        if len(got) >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(r["value"] for r in got) == sorted(sent)


def test_binary_and_non_utf8_bytes_pass_through_unchanged(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")
    payload = b"caf\xc3\xa9 \xff\x00\x01\t end"

    produce_ok(logctl, topic_name, payload + b"\n")

    result = logctl("consume", topic_name, "--from-beginning", "-e")
    assert result.stdout == payload + b"\n"


def test_rejected_records_exit_1_naming_how_many(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1", "--config", "max.message.bytes=300")
    data = b"x" * 1000 + b"\nsmall\n" + b"y" * 1000 + b"\n"

    result = logctl("produce", topic_name, "--batch-size", "1", input=data)

    err = result.stderr.decode()
    assert result.returncode == 1
    assert "logctl: 2 of 3 records were not acknowledged\n" in err
    assert "[MESSAGE_TOO_LARGE]" in err
    assert "Traceback" not in err
    assert [r["value"] for r in consume_all(logctl, topic_name)] == ["small"]


def test_a_record_larger_than_a_request_is_counted_and_the_rest_still_sent(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")
    data = b"before\n" + b"z" * 2_000_000 + b"\nafter\n"

    result = logctl("produce", topic_name, input=data)

    assert result.returncode == 1
    assert "logctl: 1 of 3 records were not acknowledged\n" in result.stderr.decode()
    assert [r["value"] for r in consume_all(logctl, topic_name)] == ["before", "after"]


def test_a_partition_the_topic_lacks_stops_at_the_first_line(logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "2")

    result = logctl("produce", topic_name, "--partition", "5", input=b"a\nb\nc\n")

    err = result.stderr.decode()
    assert result.returncode == 1
    assert "[UNKNOWN_TOPIC_OR_PARTITION]" in err
    assert re.search(r"1 of 1 records were not acknowledged; stopped reading at line 1", err)
    assert consume_all(logctl, topic_name) == []


def test_ctrl_c_while_waiting_for_input_exits_130_quietly(broker, logctl, topic_name):
    logctl("topic", "create", topic_name, "--partitions", "1")
    process = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "-b", broker.address, "produce", topic_name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=cli_env(),
    )
    try:
        assert process.stdin is not None
        process.stdin.write(b"typed before ^C\n")
        process.stdin.flush()
        deadline = time.monotonic() + 20  # the record arrives while stdin stays open
        while not consume_all(logctl, topic_name):
            assert time.monotonic() < deadline, "the line never arrived"
            time.sleep(0.2)

        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    assert process.returncode == 130
    assert out == b""
    assert err == b""
    assert [r["value"] for r in consume_all(logctl, topic_name)] == ["typed before ^C"]
