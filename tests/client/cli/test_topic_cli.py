"""``logctl topic ...`` against a real broker, through ``python -m client.cli`` and ``logctl``."""

from __future__ import annotations

import subprocess

from tests.client.cli.conftest import cli_env, lines, run_logctl, venv_logctl


def ok(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return lines(result.stdout)


def failed(result: subprocess.CompletedProcess[bytes]) -> str:
    """The single error line of a command that exited 1."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.startswith("logctl: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    return err


def test_create_list_describe_delete(logctl, topic_name):
    assert ok(logctl("topic", "create", topic_name, "--partitions", "3")) == [
        f"Created topic {topic_name}."
    ]
    assert topic_name in ok(logctl("topic", "list"))

    described = ok(logctl("topic", "describe", topic_name))

    assert described[0].split("\t") == [
        f"Topic: {topic_name}",
        "PartitionCount: 3",
        "ReplicationFactor: 1",
    ]
    assert described[1] == "Configs: "
    assert described[2].split() == [
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START-OFFSET",
        "LOG-END-OFFSET",
    ]
    assert [row.split() for row in described[3:]] == [
        [str(p), "0", "0", "0", "0", "0"] for p in range(3)
    ]
    assert ok(logctl("topic", "delete", topic_name)) == [f"Deleted topic {topic_name}."]
    assert topic_name not in ok(logctl("topic", "list"))


def test_list_is_sorted(logctl, topic_name):
    for suffix in ("c", "a", "b"):
        ok(logctl("topic", "create", f"{topic_name}.{suffix}", "--partitions", "1"))

    mine = [n for n in ok(logctl("topic", "list")) if n.startswith(f"{topic_name}.")]

    assert mine == [f"{topic_name}.a", f"{topic_name}.b", f"{topic_name}.c"]


def test_describe_shows_offsets_and_config_overrides(logctl, topic_name):
    ok(
        logctl(
            "topic",
            "create",
            topic_name,
            "--partitions",
            "2",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=86400000",
            "--config",
            "segment.bytes=1048576",
        )
    )
    ok(logctl("produce", topic_name, "--partition", "1", input=b"a\nb\nc\n"))

    described = ok(logctl("topic", "describe", topic_name))

    assert described[1] == "Configs: retention.ms=86400000,segment.bytes=1048576"
    assert [row.split() for row in described[3:]] == [
        ["0", "0", "0", "0", "0", "0"],
        ["1", "0", "0", "0", "0", "3"],
    ]


def test_alter_config_sets_and_deletes_overrides(logctl, topic_name):
    ok(logctl("topic", "create", topic_name, "--config", "retention.ms=1000"))

    out = ok(
        logctl(
            "topic",
            "alter-config",
            topic_name,
            "--config",
            "segment.ms=60000",
            "--config",
            "retention.bytes=1048576",
            "--delete-config",
            "retention.ms",
        )
    )

    assert out == [f"Updated the configs of topic {topic_name}."]
    configs = ok(logctl("topic", "describe", topic_name))[1]
    assert configs == "Configs: retention.bytes=1048576,segment.ms=60000"


def test_create_errors_are_one_line_and_exit_1(logctl, topic_name):
    ok(logctl("topic", "create", topic_name))

    exists = failed(logctl("topic", "create", topic_name))
    factor = failed(logctl("topic", "create", f"{topic_name}-2", "--replication-factor", "3"))
    config = failed(logctl("topic", "create", f"{topic_name}-3", "--config", "no.such.key=1"))
    value = failed(logctl("topic", "create", f"{topic_name}-4", "--config", "retention.ms=soon"))
    name = failed(logctl("topic", "create", "no/slashes"))

    assert exists == f"logctl: [TOPIC_ALREADY_EXISTS] topic {topic_name!r} already exists\n"
    assert "[INVALID_REPLICATION_FACTOR]" in factor
    assert "replication factor 3" in factor
    assert "[INVALID_CONFIG]" in config
    assert "no.such.key" in config
    assert "[INVALID_CONFIG]" in value
    assert "retention.ms" in value
    assert "[INVALID_TOPIC_EXCEPTION]" in name
    assert "'no/slashes'" in name
    listed = ok(logctl("topic", "list"))
    assert not any(n.startswith(f"{topic_name}-") for n in listed)


def test_validate_only_creates_nothing(logctl, topic_name):
    out = ok(logctl("topic", "create", topic_name, "--partitions", "2", "--validate-only"))

    assert out == [f"Validated topic {topic_name}."]
    assert topic_name not in ok(logctl("topic", "list"))


def test_unknown_topics_are_reported(logctl, topic_name):
    for argv in (
        ["topic", "describe", topic_name],
        ["topic", "delete", topic_name],
        ["topic", "alter-config", topic_name, "--config", "retention.ms=1"],
    ):
        err = failed(logctl(*argv))
        assert err.startswith("logctl: [UNKNOWN_TOPIC_OR_PARTITION]"), argv
        assert repr(topic_name) in err, argv


def test_alter_config_rejects_an_unknown_key_and_changes_nothing(logctl, topic_name):
    ok(logctl("topic", "create", topic_name, "--config", "retention.ms=5000"))

    err = failed(
        logctl("topic", "alter-config", topic_name, "--config", "segment.ms=1", "--config", "x=1")
    )

    assert "[INVALID_CONFIG]" in err
    assert ok(logctl("topic", "describe", topic_name))[1] == "Configs: retention.ms=5000"


def test_bootstrap_defaults_to_the_environment_variable(broker, topic_name):
    env = cli_env(LOGSERVER_BROKERS=broker.address)

    created = run_logctl(["topic", "create", topic_name], env=env)
    listed = run_logctl(["topic", "list"], env=env)

    assert ok(created) == [f"Created topic {topic_name}."]
    assert topic_name in ok(listed)


def test_no_reachable_broker_is_an_error_naming_the_address():
    result = run_logctl(["-b", "127.0.0.1:1", "topic", "list"])

    err = failed(result)
    assert "[NETWORK_EXCEPTION]" in err
    assert "127.0.0.1:1" in err


def test_the_console_script(broker, topic_name):
    command = [str(venv_logctl())]
    env = cli_env(LOGSERVER_BROKERS=broker.address)

    created = run_logctl(["topic", "create", topic_name], command=command, env=env)
    listed = run_logctl(["--bootstrap-server", broker.address, "topic", "list"], command=command)
    usage = run_logctl(["topic", "create"], command=command)

    assert ok(created) == [f"Created topic {topic_name}."]
    assert topic_name in ok(listed)
    assert usage.returncode == 2
    assert b"usage: logctl topic create" in usage.stderr
