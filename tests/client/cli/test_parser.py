"""``logctl`` usage errors (exit 2) and what the parser accepts, run in-process (no broker)."""

from __future__ import annotations

import pytest

from client.cli.consume import OffsetSpec
from client.cli.main import build_parser, main
from tests.client.cli.conftest import run_logctl


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["topic"], "the following arguments are required: VERB"),
        (["topic", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["topic", "create"], "the following arguments are required: NAME"),
        (["topic", "create", "t", "--partitions", "two"], "invalid int value: 'two'"),
        (["topic", "create", "t", "--config", "retention.ms"], "expected key=value"),
        (["topic", "alter-config", "t"], "needs --config KEY=VALUE or --delete-config KEY"),
        (["-b", "nohost", "topic", "list"], "'nohost' is not host:port"),
        (["topic", "list", "--bootstrap-server", "h:port"], "'h:port' is not host:port"),
        (["produce"], "the following arguments are required: TOPIC"),
        (["produce", "t", "--acks", "2"], "invalid choice: '2'"),
        (["produce", "t", "--compression", "gzip"], "invalid choice: 'gzip'"),
        (["produce", "t", "--key-separator", ""], "--key-separator must not be empty"),
        (["produce", "t", "--batch-size", "0"], "must be at least 1"),
        (["produce", "t", "--linger-ms", "-1"], "must not be negative"),
        (["consume", "t", "--offset", "soon"], "offset 'soon' is not start, end"),
        (["consume", "t", "--format", "%q"], "unknown token '%q'"),
        (["consume", "t", "--max-messages", "0"], "must be at least 1"),
        (["consume", "t", "--partition", "-1"], "--partition must not be negative"),
        (["consume", "t", "--from-beginning", "--offset", "end"], "not allowed with argument"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(argv, complaint, capsys):
    err = usage_error(argv, capsys)

    assert complaint in err
    assert "usage: logctl" in err


def test_a_command_usage_error_shows_that_command_usage(capsys):
    err = usage_error(["topic", "alter-config", "t"], capsys)

    assert err.startswith("usage: logctl topic alter-config")


def test_bootstrap_server_is_accepted_before_and_after_the_command():
    parser = build_parser()

    before = parser.parse_args(["-b", "a:1", "topic", "list"])
    after = parser.parse_args(["topic", "list", "--bootstrap-server", "b:2,c:3"])
    middle = parser.parse_args(["topic", "-b", "d:4", "list"])

    assert before.bootstrap_server == "a:1"
    assert after.bootstrap_server == "b:2,c:3"
    assert middle.bootstrap_server == "d:4"


def test_consume_defaults_and_from_beginning():
    parser = build_parser()

    plain = parser.parse_args(["consume", "t"])
    from_start = parser.parse_args(["consume", "t", "--from-beginning"])
    minus = parser.parse_args(["consume", "t", "-o", "-10", "-e", "--max-messages", "3"])

    assert plain.offset == OffsetSpec("end")
    assert (plain.partition, plain.max_messages, plain.exit_at_end) == (None, None, False)
    assert from_start.offset == OffsetSpec("start")
    assert (minus.offset, minus.exit_at_end, minus.max_messages) == (
        OffsetSpec("from_end", 10),
        True,
        3,
    )


def test_repeated_config_flags_are_collected():
    args = build_parser().parse_args(
        ["topic", "create", "t", "--config", "a.b=1", "--config", "c=x=y", "--config", "e="]
    )

    assert args.config == [("a.b", "1"), ("c", "x=y"), ("e", "")]


def test_help_exits_0_and_lists_the_commands():
    result = run_logctl(["--help"], timeout=30)

    assert result.returncode == 0
    out = result.stdout.decode()
    for command in ("topic", "produce", "consume"):
        assert command in out


def test_a_usage_error_through_the_module_entry_point_exits_2():
    result = run_logctl(["consume", "t", "--format", "%z"], timeout=30)

    assert result.returncode == 2
    assert b"unknown token '%z'" in result.stderr
    assert result.stdout == b""
