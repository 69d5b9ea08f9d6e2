"""Broker settings: every setting from every source, precedence, and errors that say where.

``SAMPLES`` and ``BAD`` hold one good non-default value and one bad value per row of
the table; a test fails when a row is added without them.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from client.errors import InvalidConfigurationError
from logserver.config import (
    CONFIG_ENV,
    SETTINGS,
    BrokerConfig,
    Endpoint,
    build_parser,
    load_config,
    settings_markdown,
)
from logserver.log import LogConfig

BY_NAME = {s.name: s for s in SETTINGS}

SAMPLES = {
    "broker.id": "7",
    "listeners": "PLAINTEXT://127.0.0.1:0,INTERNAL://:9093",
    "advertised.listeners": "PLAINTEXT://broker-7.example:19092",
    "log.dirs": "/var/lib/a, /var/lib/b",
    "num.partitions": "12",
    "default.replication.factor": "3",
    "log.retention.hours": "24",
    "log.retention.minutes": "90",
    "log.retention.ms": "5000",
    "log.retention.bytes": "1000000",
    "log.segment.bytes": "65536",
    "log.roll.hours": "2",
    "log.roll.ms": "60000",
    "log.flush.interval.messages": "1000",
    "log.flush.interval.ms": "0",
    "log.retention.check.interval.ms": "1000",
    "log.index.interval.bytes": "0",
    "log.index.size.max.bytes": "4096",
    "log.segment.delete.delay.ms": "0",
    "message.max.bytes": "2000000",
    "zookeeper.connect": "zk1:2181,zk2:2181/logserver",
    "zookeeper.session.timeout.ms": "18000",
    "auto.create.topics.enable": "false",
    "delete.topic.enable": "no",
    "broker.rack": "rack-b",
    "min.insync.replicas": "2",
    "replica.lag.time.max.ms": "10000",
    "replica.fetch.wait.max.ms": "100",
    "unclean.leader.election.enable": "true",
    "auto.leader.rebalance.enable": "false",
    "leader.imbalance.check.interval.seconds": "5",
    "controller.liveness.probe.interval.ms": "0",
    "offsets.topic.num.partitions": "3",
    "offsets.topic.replication.factor": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "100",
    "group.max.session.timeout.ms": "60000",
    "group.max.size": "10",
    "socket.request.max.bytes": "1024",
    "connections.max.idle.ms": "1",
    "max.inflight.requests.per.connection": "1",
    "log.level": "debug",
    "log.format": "JSON",
    "event.loop": "asyncio",
    "metrics.port": "9100",
    "metrics.partition.limit": "50",
}

FREE_TEXT = {"zookeeper.connect", "broker.rack"}  # any non-empty text is valid
BAD = {
    "broker.id": "-1",
    "listeners": "localhost",
    "advertised.listeners": "PLAINTEXT://0.0.0.0:9092",
    "log.dirs": "",
    "num.partitions": "0",
    "default.replication.factor": "three",
    "log.retention.hours": "-2",
    "log.retention.minutes": "1.5",
    "log.retention.ms": "-5",
    "log.retention.bytes": "-2",
    "log.segment.bytes": "13",
    "log.roll.hours": "0",
    "log.roll.ms": "0",
    "log.flush.interval.messages": "0",
    "log.flush.interval.ms": "-1",
    "log.retention.check.interval.ms": "0",
    "log.index.interval.bytes": "-1",
    "log.index.size.max.bytes": "11",
    "log.segment.delete.delay.ms": "1e3",
    "message.max.bytes": "2147483648",
    "zookeeper.session.timeout.ms": "0",
    "auto.create.topics.enable": "maybe",
    "delete.topic.enable": "",
    "min.insync.replicas": "0",
    "replica.lag.time.max.ms": "0",
    "replica.fetch.wait.max.ms": "-1",
    "unclean.leader.election.enable": "sometimes",
    "auto.leader.rebalance.enable": "often",
    "leader.imbalance.check.interval.seconds": "0",
    "controller.liveness.probe.interval.ms": "-1",
    "offsets.topic.num.partitions": "0",
    "offsets.topic.replication.factor": "0",
    "group.initial.rebalance.delay.ms": "-1",
    "group.min.session.timeout.ms": "-1",
    "group.max.session.timeout.ms": "0",
    "group.max.size": "0",
    "socket.request.max.bytes": "0",
    "connections.max.idle.ms": "0",
    "max.inflight.requests.per.connection": "0",
    "log.level": "verbose",
    "log.format": "xml",
    "event.loop": "trio",
    "metrics.port": "65536",
    "metrics.partition.limit": "-1",
}


@pytest.fixture(autouse=True)
def fqdn(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fixed host name, and no DNS lookups from the tests."""
    monkeypatch.setattr(socket, "getfqdn", lambda: "broker.example")
    return "broker.example"


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "server.properties"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def expected(name: str, text: str) -> object:
    return BY_NAME[name].kind.parse(text)


def test_table_and_dataclass_agree():
    assert [f.name for f in dataclasses.fields(BrokerConfig)] == [s.attr for s in SETTINGS]
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
    assert "_" not in "".join(s.name for s in SETTINGS)  # attr -> name must be reversible


def test_samples_and_bad_values_cover_the_table():
    assert set(SAMPLES) == set(BY_NAME)
    assert set(BAD) == set(BY_NAME) - FREE_TEXT
    for name, text in SAMPLES.items():
        assert expected(name, text) != expected(name, BY_NAME[name].default), name


def test_defaults():
    config = load_config([], {})
    assert config.broker_id == 0
    assert config.listeners == (Endpoint("PLAINTEXT", "localhost", 9092),)
    assert config.advertised_listeners == config.listeners
    assert config.log_dirs == (Path("data"),)
    assert config.num_partitions == 1
    assert config.default_replication_factor is None
    assert config.replication_factor == 1  # standalone; 3 with ZooKeeper
    assert (config.log_retention_hours, config.log_retention_minutes) == (168, None)
    assert config.log_retention_ms is None
    assert config.log_retention_bytes == -1
    assert config.log_segment_bytes == 1 << 30
    assert (config.log_roll_hours, config.log_roll_ms) == (168, None)
    assert config.log_flush_interval_messages is config.log_flush_interval_ms is None
    assert config.log_retention_check_interval_ms == 300_000
    assert config.log_index_interval_bytes == 4096
    assert config.log_index_size_max_bytes == 10 << 20
    assert config.log_segment_delete_delay_ms == 60_000
    assert config.message_max_bytes == 1_048_588
    assert config.zookeeper_connect is None
    assert config.standalone
    assert config.zookeeper_session_timeout_ms == 6_000
    assert config.auto_create_topics_enable
    assert config.delete_topic_enable
    assert config.broker_rack is None
    assert config.min_insync_replicas is None  # 2 for topics with 3+ replicas, else 1
    assert config.offsets_topic_num_partitions == 50
    assert config.offsets_topic_replication_factor == 3
    assert config.group_initial_rebalance_delay_ms == 3_000
    assert config.group_min_session_timeout_ms == 6_000
    assert config.group_max_session_timeout_ms == 1_800_000
    assert config.group_max_size is None  # no limit
    assert config.socket_request_max_bytes == 100 << 20
    assert config.connections_max_idle_ms == 600_000
    assert config.max_inflight_requests_per_connection == 100
    assert (config.log_level, config.log_format, config.event_loop) == ("INFO", "text", "auto")
    assert config.metrics_port is None
    assert config.metrics_partition_limit == 2000


def test_defaults_imply_the_default_log_config():
    assert load_config([], {}).log_config() == LogConfig()


@pytest.mark.parametrize("source", ["flag", "env", "file"])
@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_setting_from_every_source(name, source, write_file):
    setting, text = BY_NAME[name], SAMPLES[name]
    argv: list[str] = []
    environ: dict[str, str] = {}
    if source == "flag":
        argv = [setting.flag, text]
    elif source == "env":
        environ = {setting.env: text}
    else:
        argv = ["--config", str(write_file(f"{name}={text}\n"))]
    assert getattr(load_config(argv, environ), setting.attr) == expected(name, text)


def test_precedence_flag_env_file_default(write_file):
    path = write_file("num.partitions=3\n")
    assert load_config([], {}).num_partitions == 1
    assert load_config(["--config", str(path)], {}).num_partitions == 3
    environ = {CONFIG_ENV: str(path), "NUM_PARTITIONS": "4"}
    assert load_config([], environ).num_partitions == 4
    assert load_config(["--num-partitions", "5"], environ).num_partitions == 5


def test_config_flag_beats_config_env(tmp_path):
    strong, weak = tmp_path / "strong.properties", tmp_path / "weak.properties"
    strong.write_text("broker.id=1\n")
    weak.write_text("broker.id=2\n")
    config = load_config(["--config", str(strong)], {CONFIG_ENV: str(weak)})
    assert config.broker_id == 1


def test_an_empty_value_unsets_an_optional_setting(write_file):
    path = write_file("zookeeper.connect=zk:2181\nbroker.rack=r1\n")
    config = load_config(["--config", str(path), "--broker-rack", ""], {"ZOOKEEPER_CONNECT": ""})
    assert config.zookeeper_connect is None
    assert config.standalone
    assert config.broker_rack is None


def test_argv_none_reads_sys_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["logserver", "--broker-id", "3"])
    assert load_config(None, {}).broker_id == 3


def test_unknown_env_vars_are_ignored():
    config = load_config([], {"LOG_SEGMENT_BYTE": "x", "PATH": "/bin", "logserver_x": "1"})
    assert config == load_config([], {})


@pytest.mark.parametrize(
    ("hours", "minutes", "ms", "retention_ms"),
    [
        ("168", None, None, 168 * 3_600_000),
        ("1", "30", None, 30 * 60_000),
        ("1", "30", "5000", 5000),
        ("1", None, "0", 0),
        ("-1", None, None, -1),
        ("1", "-1", None, -1),
        ("-1", "-1", "1000", 1000),
    ],
)
def test_retention_ms_beats_minutes_beats_hours(hours, minutes, ms, retention_ms):
    argv = ["--log-retention-hours", hours]
    environ = {"LOG_RETENTION_MINUTES": minutes or "", "LOG_RETENTION_MS": ms or ""}
    assert load_config(argv, environ).log_config().retention_ms == retention_ms


def test_roll_ms_beats_roll_hours():
    assert load_config(["--log-roll-hours", "2"], {}).log_config().segment_ms == 7_200_000
    argv = ["--log-roll-hours", "2", "--log-roll-ms", "500"]
    assert load_config(argv, {}).log_config().segment_ms == 500


def test_log_config_mapping():
    argv = [
        "--log-segment-bytes", "65536",
        "--log-roll-ms", "1000",
        "--log-index-size-max-bytes", "4096",
        "--log-index-interval-bytes", "128",
        "--log-retention-ms", "9000",
        "--log-retention-bytes", "1000000",
        "--log-flush-interval-messages", "10",
        "--log-flush-interval-ms", "20",
        "--message-max-bytes", "500000",
        "--log-segment-delete-delay-ms", "30",
    ]  # fmt: skip
    assert load_config(argv, {}).log_config() == LogConfig(
        segment_bytes=65536,
        segment_ms=1000,
        segment_index_bytes=4096,
        index_interval_bytes=128,
        retention_ms=9000,
        retention_bytes=1_000_000,
        flush_messages=10,
        flush_ms=20,
        max_message_bytes=500_000,
        file_delete_delay_ms=30,
    )


def test_smallest_accepted_values_still_make_a_log_config():
    argv = [
        "--log-segment-bytes", "14",
        "--log-index-size-max-bytes", "12",
        "--log-index-interval-bytes", "0",
        "--log-retention-hours", "-1",
        "--log-retention-bytes", "-1",
        "--log-roll-ms", "1",
        "--log-flush-interval-messages", "1",
        "--log-flush-interval-ms", "0",
        "--message-max-bytes", "0",
        "--log-segment-delete-delay-ms", "0",
    ]  # fmt: skip
    assert load_config(argv, {}).log_config().segment_bytes == 14


@pytest.mark.parametrize(
    ("text", "endpoints"),
    [
        ("localhost:9092", [("PLAINTEXT", "localhost", 9092)]),
        (":9092", [("PLAINTEXT", "0.0.0.0", 9092)]),
        ("PLAINTEXT://:0", [("PLAINTEXT", "0.0.0.0", 0)]),
        ("ssl://broker.example:9093", [("SSL", "broker.example", 9093)]),
        ("[::1]:65535", [("PLAINTEXT", "::1", 65535)]),
        ("INTERNAL://[fe80::1%eth0]:1", [("INTERNAL", "fe80::1%eth0", 1)]),
        (
            " PLAINTEXT://10.0.0.1:9092 , REPLICATION://10.0.0.1:9093 ",
            [("PLAINTEXT", "10.0.0.1", 9092), ("REPLICATION", "10.0.0.1", 9093)],
        ),
    ],
)
def test_listener_parsing(text, endpoints):
    assert load_config(["--listeners", text], {}).listeners == tuple(
        Endpoint(*e) for e in endpoints
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("localhost", "is not NAME://host:port"),
        ("PLAINTEXT://localhost", "is not NAME://host:port"),
        ("localhost:", "port ''"),
        ("localhost:65536", "port '65536'"),
        ("localhost:-1", "port '-1'"),
        ("localhost:http", "port 'http'"),
        ("bad name://h:1", "listener name 'bad name'"),
        ("PLAINTEXT://h:1,plaintext://h:2", "appears twice"),
        ("h:1,,h2:2", "empty entry"),
        ("", "at least one listener"),
        ("PLAINTEXT://ho st:1", "not a host"),
        ("[::1:9092", "not a host"),
    ],
)
def test_bad_listeners(text, reason):
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config([], {"LISTENERS": text})
    assert f"listeners={text!r} (env LISTENERS): " in str(caught.value)
    assert reason in str(caught.value)


def test_advertised_listeners_default_to_listeners_with_this_hosts_name():
    config = load_config(["--listeners", "PLAINTEXT://:9092,INTERNAL://127.0.0.1:9093"], {})
    assert config.listeners[0] == Endpoint("PLAINTEXT", "0.0.0.0", 9092)
    assert config.advertised_listeners == (
        Endpoint("PLAINTEXT", "broker.example", 9092),
        Endpoint("INTERNAL", "127.0.0.1", 9093),
    )


def test_advertised_listeners_must_name_a_listener():
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(["--advertised-listeners", "SSL://h:1"], {})
    message = str(caught.value)
    assert "advertised.listeners='SSL://h:1' (flag --advertised-listeners)" in message
    assert "SSL is not among the listeners" in message


def test_group_session_timeout_bounds_must_leave_room():
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(
            ["--group-min-session-timeout-ms", "9000"], {"GROUP_MAX_SESSION_TIMEOUT_MS": "8000"}
        )
    message = str(caught.value)
    assert "group.min.session.timeout.ms='9000' (flag --group-min-session-timeout-ms)" in message
    assert "group.max.session.timeout.ms='8000' (env GROUP_MAX_SESSION_TIMEOUT_MS)" in message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("1", True),
        (" false ", False),
        ("no", False),
        ("0", False),
        ("False", False),
    ],
)
def test_bool_parsing(text, value):
    assert load_config([], {"AUTO_CREATE_TOPICS_ENABLE": text}).auto_create_topics_enable is value


@pytest.mark.parametrize("text", ["maybe", "", "2", "on", "t"])
def test_bad_bools(text):
    with pytest.raises(InvalidConfigurationError, match="not a boolean"):
        load_config(["--delete-topic-enable", text], {})


@pytest.mark.parametrize("source", ["flag", "env", "file"])
@pytest.mark.parametrize("name", list(BAD))
def test_every_bad_value_names_setting_source_and_value(name, source, write_file):
    setting, text = BY_NAME[name], BAD[name]
    argv: list[str] = []
    environ: dict[str, str] = {}
    if source == "flag":
        argv, where = [setting.flag, text], f"flag {setting.flag}"
    elif source == "env":
        environ, where = {setting.env: text}, f"env {setting.env}"
    else:
        path = write_file(f"# a comment\n\n{name} = {text}\n")
        argv, where = ["--config", str(path)], f"file {path}:3"
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(argv, environ)
    assert f"{name}={text!r} ({where}): " in str(caught.value)


def test_a_bad_value_is_refused_even_when_a_stronger_source_overrides_it(write_file):
    path = write_file("log.segment.bytes=lots\n")
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(["--config", str(path), "--log-segment-bytes", "4096"], {})
    assert f"log.segment.bytes='lots' (file {path}:1): not an integer" in str(caught.value)
    with pytest.raises(InvalidConfigurationError, match=r"\(env BROKER_ID\)"):
        load_config(["--broker-id", "1"], {"BROKER_ID": "one"})


def test_file_comments_blank_lines_and_spacing(write_file):
    path = write_file(
        "# Kafka style\n! also a comment\n\n   \n"
        "  broker.id =  9  \n"
        "zookeeper.connect=zk:2181/chroot=odd\n"
    )
    config = load_config(["--config", str(path)], {})
    assert config.broker_id == 9
    assert config.zookeeper_connect == "zk:2181/chroot=odd"
    assert not config.standalone


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("broker.id=1\nlog.segment.byte=10\n", "log.segment.byte='10' (file {path}:2)"),
        ("log.segment.byte=10\n", "did you mean log.segment.bytes?"),
        ("broker.id 1\n", "'broker.id 1' (file {path}:1): expected key=value"),
        ("=1\n", "'=1' (file {path}:1): expected key=value"),
        ("broker.id=1\nbroker.id=2\n", "broker.id='2' (file {path}:2): already set"),
        ("zookeeper.connect=a:1,\\\n b:2\n", "line continuations are not supported"),
    ],
)
def test_bad_config_files(content, message, write_file):
    path = write_file(content)
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(["--config", str(path)], {})
    assert message.format(path=path) in str(caught.value)


def test_missing_config_file_names_where_it_was_named(tmp_path):
    missing = tmp_path / "nope.properties"
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config([], {CONFIG_ENV: str(missing)})
    assert f"config file {str(missing)!r} (env {CONFIG_ENV})" in str(caught.value)


def test_help_lists_every_setting(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "usage: logserver" in text
    assert CONFIG_ENV in text
    for s in SETTINGS:
        assert s.flag in text, s.name
        assert f"[env {s.env}; property {s.name}; default {s.shown_default}]" in text, s.name


def test_markdown_lists_every_setting():
    doc = settings_markdown()
    for s in SETTINGS:
        assert f"| `{s.name}` | `{s.env}` | `{s.flag}` |" in doc


def test_to_properties_round_trips_through_a_file(write_file):
    argv = [arg for name, text in SAMPLES.items() for arg in (BY_NAME[name].flag, text)]
    config = load_config(argv, {})
    props = config.to_properties()
    assert list(props) == [s.name for s in SETTINGS]
    assert props["log.dirs"] == "/var/lib/a,/var/lib/b"
    assert props["log.format"] == "json"
    path = write_file("".join(f"{key}={value}\n" for key, value in props.items()))
    assert load_config(["--config", str(path)], {}) == config


def test_to_properties_shows_resolved_advertised_listeners_and_unset_as_empty():
    props = load_config(["--listeners", ":9092"], {}).to_properties()
    assert props["listeners"] == "PLAINTEXT://0.0.0.0:9092"
    assert props["advertised.listeners"] == "PLAINTEXT://broker.example:9092"
    assert props["zookeeper.connect"] == ""


def test_config_is_frozen():
    config = load_config([], {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.broker_id = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, 1),
        ([], {"ZOOKEEPER_CONNECT": "zk:2181"}, 3),
        (["--default-replication-factor", "2"], {"ZOOKEEPER_CONNECT": "zk:2181"}, 2),
        ([], {"DEFAULT_REPLICATION_FACTOR": "1", "ZOOKEEPER_CONNECT": "zk:2181"}, 1),
    ],
)
def test_the_default_replication_factor_is_three_in_a_cluster(argv, env, expected):
    assert load_config(argv, env).replication_factor == expected
