"""The broker's settings: one table, read from flags, the environment and a properties file.

Every setting is one row of ``SETTINGS``: its Kafka property name, how its text
parses, its default (as text, exactly as it would be written in the file) and a
line of help. The argparse parser, the environment and file lookups, ``--help``
and ``settings_markdown()`` are all generated from that table, so a new setting
is one row there plus one typed attribute on ``BrokerConfig``.

Where a value comes from, strongest first::

    --log-segment-bytes 1048576     flag: "--" and the property name, dots as dashes
    LOG_SEGMENT_BYTES=1048576       environment: upper case, dots as underscores
    log.segment.bytes=1048576       a line of the --config file (or $LOGSERVER_CONFIG)
    (the table's default)

An empty value unsets an optional setting, so a flag can clear what the file set.
A bad value from any source raises ``InvalidConfigurationError`` naming the
setting, where the value came from and the value.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from client.errors import InvalidConfigurationError
from logserver.log.config import LogConfig

__all__ = [
    "CONFIG_ENV",
    "SETTINGS",
    "BrokerConfig",
    "Endpoint",
    "Setting",
    "ValueType",
    "build_parser",
    "load_config",
    "settings_markdown",
]

CONFIG_ENV = "LOGSERVER_CONFIG"
_MINUTE_MS = 60_000
_HOUR_MS = 60 * _MINUTE_MS
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LISTENER_NAME = re.compile(r"[A-Za-z0-9_]+")
_HOST = re.compile(r"[0-9A-Za-z%._:-]*")
_WILDCARD_HOSTS = ("0.0.0.0", "::")


class Endpoint(NamedTuple):
    """A listener; host 0.0.0.0 binds every interface and is never advertised to clients."""

    name: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


@dataclasses.dataclass(frozen=True, slots=True)
class ValueType:
    """How a setting's text becomes a value and back; ``parse`` raises ValueError(reason)."""

    metavar: str
    parse: Callable[[str], Any]
    render: Callable[[Any], str] = str


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """One row of the table. ``default`` is text, parsed like any other source."""

    name: str
    kind: ValueType
    default: str
    help: str
    default_doc: str | None = None  # what --help shows when the default is derived

    @property
    def attr(self) -> str:
        return self.name.replace(".", "_")

    @property
    def env(self) -> str:
        return self.attr.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace(".", "-")

    @property
    def shown_default(self) -> str:
        return self.default_doc or self.default or "unset"


# -- value types ------------------------------------------------------------------------


def _int(minimum: int, maximum: int = _INT64_MAX, *, rule: str | None = None) -> ValueType:
    if rule is None:
        if maximum == _INT64_MAX:
            rule = f"must be at least {minimum}"
        else:
            rule = f"must be between {minimum} and {maximum}"

    def parse(text: str) -> int:
        text = text.strip()
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"not an integer; {rule}")  # what is allowed, not only what is not
        value = int(text)
        if not minimum <= value <= maximum:
            raise ValueError(rule)
        return value

    return ValueType("INT", parse)


def _optional(inner: ValueType) -> ValueType:
    """Empty text is unset (None), so any source can clear a value a weaker one set."""

    def parse(text: str) -> Any:
        return None if not text.strip() else inner.parse(text)

    def render(value: Any) -> str:
        return "" if value is None else inner.render(value)

    return ValueType(inner.metavar, parse, render)


def _choice(*options: str) -> ValueType:
    def parse(text: str) -> str:
        for option in options:
            if text.strip().lower() == option.lower():
                return option
        raise ValueError(f"must be one of {', '.join(options)}")

    return ValueType("{" + ",".join(options) + "}", parse)


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _parse_bool(text: str) -> bool:
    try:
        return _BOOLEANS[text.strip().lower()]
    except KeyError:
        raise ValueError("not a boolean (true/false, yes/no, 1/0)") from None


def _parse_text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _parse_endpoint(text: str) -> Endpoint:
    name, scheme, rest = text.partition("://")
    if not scheme:
        name, rest = "PLAINTEXT", text
    if not _LISTENER_NAME.fullmatch(name):
        raise ValueError(f"listener name {name!r} must be letters, digits and _")
    host, colon, port_text = rest.rpartition(":")
    if not colon:
        raise ValueError(f"{text!r} is not NAME://host:port or host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not _HOST.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name or address")
    if not _INTEGER.fullmatch(port_text) or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not between 0 and 65535")
    return Endpoint(name.upper(), host or "0.0.0.0", int(port_text))


def _parse_endpoints(text: str) -> tuple[Endpoint, ...]:
    items = [item.strip() for item in text.split(",")]
    if items == [""]:
        raise ValueError("needs at least one listener")
    if "" in items:
        raise ValueError("empty entry in the list")
    endpoints = tuple(_parse_endpoint(item) for item in items)
    names = [endpoint.name for endpoint in endpoints]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"listener name {name} appears twice")
    return endpoints


def _parse_advertised(text: str) -> tuple[Endpoint, ...]:
    endpoints = _parse_endpoints(text)
    for endpoint in endpoints:
        if endpoint.host in _WILDCARD_HOSTS:
            raise ValueError(f"{endpoint}: clients cannot connect to a wildcard address")
    return endpoints


def _render_all(values: tuple[Any, ...]) -> str:
    return ",".join(str(value) for value in values)


def _parse_paths(text: str) -> tuple[Path, ...]:
    items = [item.strip() for item in text.split(",")]
    if items == [""]:
        raise ValueError("needs at least one directory")
    if "" in items:
        raise ValueError("empty entry in the list")
    paths = tuple(Path(item) for item in items)
    if len(set(paths)) != len(paths):
        raise ValueError("a directory appears twice")
    return paths


_BOOL = ValueType("BOOL", _parse_bool, lambda value: "true" if value else "false")
_TEXT = ValueType("TEXT", _parse_text)
_ENDPOINTS = ValueType("LISTENERS", _parse_endpoints, _render_all)
_PATHS = ValueType("DIRS", _parse_paths, _render_all)
_PORT = ValueType("PORT", _int(0, 65535).parse)
_RETENTION = _int(-1, rule="must be -1 (forever) or >= 0")

# -- the table --------------------------------------------------------------------------

SETTINGS: tuple[Setting, ...] = (
    Setting("broker.id", _int(0, _INT32_MAX), "0", "this broker's id, unique in the cluster"),
    Setting(
        "listeners",
        _ENDPOINTS,
        "PLAINTEXT://localhost:9092",
        "NAME://host:port,... to listen on; host:port means PLAINTEXT://host:port, "
        "an empty host every interface, port 0 a free port",
    ),
    Setting(
        "advertised.listeners",
        _optional(ValueType("LISTENERS", _parse_advertised, _render_all)),
        "",
        "the addresses clients are told to connect to; names must be among the listeners",
        default_doc="the listeners, 0.0.0.0 replaced by this host's FQDN",
    ),
    Setting("log.dirs", _PATHS, "./data", "directories holding the partition logs"),
    Setting("num.partitions", _int(1, _INT32_MAX), "1", "partitions of an auto-created topic"),
    Setting(
        "default.replication.factor",
        _optional(_int(1, _INT32_MAX)),
        "",
        "replicas of a topic created without a replication factor (auto-created too); "
        "unset: 3 with ZooKeeper, 1 standalone",
    ),
    Setting(
        "log.retention.hours",
        _RETENTION,
        "168",
        "delete segments older than this, -1 never; log.retention.minutes/.ms override it",
    ),
    Setting("log.retention.minutes", _optional(_RETENTION), "", "overrides log.retention.hours"),
    Setting("log.retention.ms", _optional(_RETENTION), "", "overrides minutes and hours"),
    Setting(
        "log.retention.bytes",
        _int(-1, rule="must be -1 (no limit) or >= 0"),
        "-1",
        "delete the oldest segments while a partition is larger than this, -1 no limit",
    ),
    Setting(
        "log.segment.bytes",
        _int(14, _INT32_MAX),
        "1073741824",
        "start a new segment file at this size",
    ),
    Setting(
        "log.roll.hours",
        _int(1),
        "168",
        "start a new segment when the active one is this old; log.roll.ms overrides it",
    ),
    Setting("log.roll.ms", _optional(_int(1)), "", "overrides log.roll.hours"),
    Setting(
        "log.flush.interval.messages",
        _optional(_int(1)),
        "",
        "fsync after this many messages; unset leaves it to the OS (and to replication)",
    ),
    Setting(
        "log.flush.interval.ms",
        _optional(_int(0)),
        "",
        "fsync at least this often; unset leaves it to the OS",
    ),
    Setting(
        "log.retention.check.interval.ms",
        _int(1),
        "300000",
        "how often retention looks for segments to delete",
    ),
    Setting(
        "log.index.interval.bytes",
        _int(0),
        "4096",
        "bytes of log between two entries of the sparse offset and time indexes",
    ),
    Setting(
        "log.index.size.max.bytes",
        _int(12, _INT32_MAX),
        "10485760",
        "largest index file; a full index starts a new segment",
    ),
    Setting(
        "log.segment.delete.delay.ms",
        _int(0),
        "60000",
        "keep a deleted segment's files this long, for reads still using them",
    ),
    Setting(
        "message.max.bytes",
        _int(0, _INT32_MAX),
        "1048588",
        "largest record batch accepted, after compression",
    ),
    Setting(
        "zookeeper.connect",
        _optional(_TEXT),
        "",
        "host:port[,host:port...][/chroot] of ZooKeeper; unset runs a standalone broker",
    ),
    Setting(
        "zookeeper.session.timeout.ms",
        _int(1),
        "6000",
        "ZooKeeper session timeout: how long a silent broker stays registered",
    ),
    Setting(
        "auto.create.topics.enable",
        _BOOL,
        "true",
        "create a topic when a client first asks for it",
    ),
    Setting("delete.topic.enable", _BOOL, "true", "allow deleting topics"),
    Setting(
        "broker.rack",
        _optional(_TEXT),
        "",
        "this broker's rack; set on every broker (or none), it makes replica assignment "
        "rack-aware: each partition's replicas spread over racks",
    ),
    Setting(
        "min.insync.replicas",
        _optional(_int(1, _INT32_MAX)),
        "",
        "in-sync replicas an acks=all write needs before it succeeds; unset: 2 for "
        "topics with 3 or more replicas, else 1",
    ),
    Setting(
        "replica.lag.time.max.ms",
        _int(1),
        "30000",
        "a follower not caught up for this long leaves the ISR",
    ),
    Setting(
        "replica.fetch.wait.max.ms",
        _int(0),
        "500",
        "how long a follower's fetch waits at the leader for new data",
    ),
    Setting(
        "unclean.leader.election.enable",
        _BOOL,
        "false",
        "let a replica outside the ISR become leader (may lose acknowledged data)",
    ),
    Setting(
        "auto.leader.rebalance.enable",
        _BOOL,
        "true",
        "the controller moves leadership back to preferred replicas in the background",
    ),
    Setting(
        "leader.imbalance.check.interval.seconds",
        _int(1),
        "300",
        "how often the controller looks for partitions not led by their preferred replica",
    ),
    Setting(
        "controller.liveness.probe.interval.ms",
        _int(0),
        "500",
        "the controller probes brokers this often; one refusing connections counts as "
        "dead before its session expires (0: off)",
    ),
    Setting(
        "offsets.topic.num.partitions",
        _int(1, _INT32_MAX),
        "50",
        "partitions of __consumer_offsets, whose leaders coordinate the consumer groups "
        "(fixed once the topic exists)",
    ),
    Setting(
        "offsets.topic.replication.factor",
        _int(1, _INT32_MAX),
        "3",
        "replicas of __consumer_offsets (fewer if fewer brokers are live when it is created)",
    ),
    Setting(
        "group.initial.rebalance.delay.ms",
        _int(0, _INT32_MAX),
        "3000",
        "how long an empty group's first rebalance waits for more members (new joins extend "
        "it, up to the rebalance timeout)",
    ),
    Setting(
        "group.min.session.timeout.ms",
        _int(0, _INT32_MAX),
        "6000",
        "the shortest session_timeout_ms a group member may ask for",
    ),
    Setting(
        "group.max.session.timeout.ms",
        _int(1, _INT32_MAX),
        "1800000",
        "the longest session_timeout_ms a group member may ask for",
    ),
    Setting(
        "group.max.size",
        _optional(_int(1, _INT32_MAX)),
        "",
        "members a consumer group may have; unset: no limit",
    ),
    Setting(
        "socket.request.max.bytes",
        _int(1, _INT32_MAX),
        "104857600",
        "largest request read; a larger one closes the connection",
    ),
    Setting("connections.max.idle.ms", _int(1), "600000", "close connections idle this long"),
    Setting(
        "max.inflight.requests.per.connection",
        _int(1, _INT32_MAX),
        "100",
        "requests a connection may have in flight before the broker stops reading from it",
    ),
    Setting(
        "log.level",
        _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        "INFO",
        "the broker's logging level",
    ),
    Setting("log.format", _choice("text", "json"), "text", "json: one object per log line"),
    Setting(
        "event.loop",
        _choice("auto", "uvloop", "asyncio"),
        "auto",
        "auto uses uvloop when it is installed",
    ),
    Setting(
        "metrics.port",
        _optional(_PORT),
        "",
        "serve Prometheus metrics on this port; unset serves none",
    ),
    Setting(
        "metrics.partition.limit",
        _int(0, _INT32_MAX),
        "2000",
        "per-partition metric series (log size and offsets, group lag) are exported only "
        "while the broker hosts at most this many partitions; past it, only totals",
    ),
)


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerConfig:
    """The broker's effective settings: one attribute per row of ``SETTINGS``, same order.

    Build one with ``load_config``; values set here directly are not validated.
    """

    broker_id: int
    listeners: tuple[Endpoint, ...]
    advertised_listeners: tuple[Endpoint, ...]
    log_dirs: tuple[Path, ...]
    num_partitions: int
    default_replication_factor: int | None
    log_retention_hours: int
    log_retention_minutes: int | None
    log_retention_ms: int | None
    log_retention_bytes: int
    log_segment_bytes: int
    log_roll_hours: int
    log_roll_ms: int | None
    log_flush_interval_messages: int | None
    log_flush_interval_ms: int | None
    log_retention_check_interval_ms: int
    log_index_interval_bytes: int
    log_index_size_max_bytes: int
    log_segment_delete_delay_ms: int
    message_max_bytes: int
    zookeeper_connect: str | None
    zookeeper_session_timeout_ms: int
    auto_create_topics_enable: bool
    delete_topic_enable: bool
    broker_rack: str | None
    min_insync_replicas: int | None
    replica_lag_time_max_ms: int
    replica_fetch_wait_max_ms: int
    unclean_leader_election_enable: bool
    auto_leader_rebalance_enable: bool
    leader_imbalance_check_interval_seconds: int
    controller_liveness_probe_interval_ms: int
    offsets_topic_num_partitions: int
    offsets_topic_replication_factor: int
    group_initial_rebalance_delay_ms: int
    group_min_session_timeout_ms: int
    group_max_session_timeout_ms: int
    group_max_size: int | None
    socket_request_max_bytes: int
    connections_max_idle_ms: int
    max_inflight_requests_per_connection: int
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    log_format: Literal["text", "json"]
    event_loop: Literal["auto", "uvloop", "asyncio"]
    metrics_port: int | None
    metrics_partition_limit: int

    @property
    def replication_factor(self) -> int:
        """For topics created without one: the setting, else 3 in a cluster, 1 standalone."""
        if self.default_replication_factor is not None:
            return self.default_replication_factor
        return 1 if self.standalone else 3

    @property
    def standalone(self) -> bool:
        """No ZooKeeper: this broker is the whole cluster."""
        return self.zookeeper_connect is None

    def log_config(self) -> LogConfig:
        """The LogConfig of a topic without overrides, as Kafka derives it from broker settings."""
        if self.log_retention_ms is not None:
            retention_ms = self.log_retention_ms
        elif self.log_retention_minutes is not None:
            retention_ms = self.log_retention_minutes * _MINUTE_MS
        else:
            retention_ms = self.log_retention_hours * _HOUR_MS
        if self.log_roll_ms is not None:
            segment_ms = self.log_roll_ms
        else:
            segment_ms = self.log_roll_hours * _HOUR_MS
        return LogConfig(
            segment_bytes=self.log_segment_bytes,
            segment_ms=segment_ms,
            segment_index_bytes=self.log_index_size_max_bytes,
            index_interval_bytes=self.log_index_interval_bytes,
            retention_ms=-1 if retention_ms < 0 else retention_ms,
            retention_bytes=self.log_retention_bytes,
            flush_messages=self.log_flush_interval_messages,
            flush_ms=self.log_flush_interval_ms,
            max_message_bytes=self.message_max_bytes,
            file_delete_delay_ms=self.log_segment_delete_delay_ms,
        )

    def to_properties(self) -> dict[str, str]:
        """Every setting as ``name: text`` (unset is ""), for the startup log; a valid file too."""
        return {s.name: s.kind.render(getattr(self, s.attr)) for s in SETTINGS}


# -- loading ----------------------------------------------------------------------------

_DESCRIPTION = f"""\
Run a logserver broker.

Every setting is a Kafka property name. Where a value comes from, strongest first:
  --log-segment-bytes 1048576   a flag: "--" and the property name, dots as dashes
  LOG_SEGMENT_BYTES=1048576     an environment variable: upper case, dots as underscores
  log.segment.bytes=1048576     a line of the --config file (or ${CONFIG_ENV})
  the default shown below
An empty value unsets an optional setting."""


def build_parser() -> argparse.ArgumentParser:
    """The ``logserver`` command line; flags left out are absent from the namespace."""
    parser = argparse.ArgumentParser(
        prog="logserver",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"key=value lines with Kafka property names, # and ! comments [env {CONFIG_ENV}]",
    )
    for s in SETTINGS:
        text = f"{s.help} [env {s.env}; property {s.name}; default {s.shown_default}]"
        parser.add_argument(s.flag, dest=s.attr, metavar=s.kind.metavar, help=_escape(text))
    return parser


def load_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> BrokerConfig:
    """Settings from flags (``argv``, None for ``sys.argv``), ``environ``, the file, defaults.

    Raises ``InvalidConfigurationError`` for a bad value in any source (even one a
    stronger source overrides), an unreadable file, or an unknown, repeated or
    malformed line in it; argparse exits on unknown flags and on ``--help``.
    """
    flags: dict[str, str] = vars(build_parser().parse_args(sys.argv[1:] if argv is None else argv))
    file_lines = _read_config_file(flags, environ)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        candidates = [*_given(s, flags, environ, file_lines), (s.default, "default")]
        # Every given value is checked, not only the winner: a bad one is a mistake
        # even while a stronger source hides it.
        parsed = [_parse(s, text, where) for text, where in candidates]
        values[s.attr] = parsed[0]
        sources[s.name] = f"{s.name}={candidates[0][0]!r} ({candidates[0][1]})"
    _resolve_advertised(values, sources["advertised.listeners"])
    if values["group_min_session_timeout_ms"] > values["group_max_session_timeout_ms"]:
        raise InvalidConfigurationError(
            f"{sources['group.min.session.timeout.ms']} is above "
            f"{sources['group.max.session.timeout.ms']}: no session timeout would be accepted"
        )
    return BrokerConfig(**values)


def _given(
    s: Setting,
    flags: Mapping[str, str],
    environ: Mapping[str, str],
    file_lines: Mapping[str, tuple[str, str]],
) -> list[tuple[str, str]]:
    """``(text, source)`` of each source that sets ``s``, strongest first."""
    given: list[tuple[str, str]] = []
    if s.attr in flags:
        given.append((flags[s.attr], f"flag {s.flag}"))
    if s.env in environ:
        given.append((environ[s.env], f"env {s.env}"))
    if s.name in file_lines:
        given.append(file_lines[s.name])
    return given


def _parse(s: Setting, text: str, source: str) -> Any:
    try:
        return s.kind.parse(text)
    except ValueError as exc:
        raise InvalidConfigurationError(f"{s.name}={text!r} ({source}): {exc}") from exc


def _resolve_advertised(values: dict[str, Any], described: str) -> None:
    listeners: tuple[Endpoint, ...] = values["listeners"]
    advertised: tuple[Endpoint, ...] | None = values["advertised_listeners"]
    if advertised is None:
        fqdn = socket.getfqdn() if any(e.host in _WILDCARD_HOSTS for e in listeners) else ""
        values["advertised_listeners"] = tuple(
            e._replace(host=fqdn) if e.host in _WILDCARD_HOSTS else e for e in listeners
        )
        return
    names = {e.name for e in listeners}
    for endpoint in advertised:
        if endpoint.name not in names:
            raise InvalidConfigurationError(
                f"{described}: listener name {endpoint.name} is not among the listeners"
            )


def _read_config_file(
    flags: dict[str, str], environ: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """``{property: (text, "file PATH:LINE")}`` of the --config / $LOGSERVER_CONFIG file."""
    if "config" in flags:
        path, source = flags.pop("config"), "flag --config"
    else:
        path, source = environ.get(CONFIG_ENV, ""), f"env {CONFIG_ENV}"
    if not path:
        return {}
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfigurationError(f"config file {path!r} ({source}): {exc}") from exc
    known = [s.name for s in SETTINGS]
    found: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(content.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        where = f"file {path}:{number}"
        key, equals, text = (part.strip() for part in stripped.partition("="))
        if not equals or not key:
            raise InvalidConfigurationError(f"{stripped!r} ({where}): expected key=value")
        if text.endswith("\\"):
            raise InvalidConfigurationError(
                f"{key}={text!r} ({where}): line continuations are not supported"
            )
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise InvalidConfigurationError(f"{key}={text!r} ({where}): unknown setting{hint}")
        if key in found:
            raise InvalidConfigurationError(
                f"{key}={text!r} ({where}): already set ({found[key][1]})"
            )
        found[key] = (text, where)
    return found


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def settings_markdown() -> str:
    """The table as Markdown, for the docs."""
    rows = [
        "| property | env | flag | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        help_text = s.help.replace("|", "\\|")
        default = s.shown_default.replace("|", "\\|")
        rows.append(f"| `{s.name}` | `{s.env}` | `{s.flag}` | {default} | {help_text} |")
    return "\n".join(rows) + "\n"
