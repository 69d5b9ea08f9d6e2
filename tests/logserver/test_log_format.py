"""``log.format``: the JSON formatter's fields, and plain text left as it was.

Each JSON line must be one object that ``json.loads`` reads back, whatever the
message holds (newlines, non-ASCII, line separators), with ``topic``,
``partition`` and ``offset`` only when the call passed them.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from logserver.log import LogConfig, PartitionLog
from logserver.log.files import log_fields
from logserver.log_format import JsonFormatter, configure_logging
from logserver.main import main
from tests.support.batches import make_batch

ISO_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def record(msg: str = "hello", *args: Any, **kw: Any) -> logging.LogRecord:
    made = logging.LogRecord(
        kw.pop("name", "logserver.test"),
        kw.pop("level", logging.INFO),
        __file__,
        1,
        msg,
        args,
        kw.pop("exc_info", None),
    )
    made.__dict__.update(kw)
    return made


def as_json(formatter: logging.Formatter, rec: logging.LogRecord) -> dict[str, Any]:
    line = formatter.format(rec)
    assert "\n" not in line
    assert line.isascii()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@pytest.fixture
def strip_root_handlers() -> Iterator[Callable[[], None]]:
    """Call it to strip the root logger's handlers (pytest's too); all restored after.

    pytest adds its handlers as the test body starts, so the test calls this itself.
    """
    root = logging.getLogger()
    saved: list[logging.Handler] = []
    state = root.level, sys.excepthook, threading.excepthook

    def strip() -> None:
        saved.extend(root.handlers)
        root.handlers = []

    try:
        yield strip
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers = saved
        root.setLevel(state[0])
        sys.excepthook, threading.excepthook = state[1:]
        logging.captureWarnings(False)


# -- the formatter --------------------------------------------------------------------------


def test_fields() -> None:
    rec = record("ISR of %s is now %s", "orders-0", [1, 2], name="logserver.broker")
    rec.created, rec.msecs = 1_700_000_000.123456, 123.456
    entry = as_json(JsonFormatter(broker_id=4), rec)
    assert entry == {
        "ts": "2023-11-14T22:13:20.123Z",
        "level": "INFO",
        "logger": "logserver.broker",
        "broker_id": 4,
        "message": "ISR of orders-0 is now [1, 2]",
    }


def test_timestamp_is_now_in_utc_with_milliseconds() -> None:
    entry = as_json(JsonFormatter(), record())
    assert ISO_MS_UTC.fullmatch(entry["ts"])
    assert entry["broker_id"] is None


def test_topic_partition_offset_only_when_given() -> None:
    formatter = JsonFormatter(1)
    entry = as_json(formatter, record(topic="orders", partition=3, offset=42))
    assert (entry["topic"], entry["partition"], entry["offset"]) == ("orders", 3, 42)
    entry = as_json(formatter, record(topic="orders", partition=0))
    assert (entry["topic"], entry["partition"]) == ("orders", 0)
    assert "offset" not in entry
    entry = as_json(formatter, record(other="ignored"))
    assert set(entry) == {"ts", "level", "logger", "broker_id", "message"}


def test_exception_becomes_a_traceback_field() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        exc_info = sys.exc_info()
    entry = as_json(JsonFormatter(1), record("failed", level=logging.ERROR, exc_info=exc_info))
    assert entry["message"] == "failed"
    assert entry["level"] == "ERROR"
    assert entry["traceback"].startswith("Traceback (most recent call last):")
    assert entry["traceback"].rstrip().endswith("ZeroDivisionError: division by zero")


def test_stack_info_becomes_a_stack_field() -> None:
    entry = as_json(JsonFormatter(1), record(stack_info="Stack (most recent call last):\n  x"))
    assert entry["stack"].startswith("Stack")


@pytest.mark.parametrize(
    "text",
    [
        "line one\nline two\r\n",
        "caf\u00e9 \u4e2d\u6587 \U0001f600",
        "a\u2028b\u2029c\x85d\x0be",
        '"}{\\',
    ],
)
def test_any_message_stays_one_ascii_line(text: str) -> None:
    line = JsonFormatter(1).format(record("%s", text))
    assert len(line.splitlines()) == 1
    assert line.isascii()
    assert json.loads(line)["message"] == text


def test_a_message_whose_arguments_do_not_fit_is_still_one_object() -> None:
    entry = as_json(JsonFormatter(1), record("%d records", "many"))
    assert entry["message"].startswith("'%d records' % ('many',): cannot format: TypeError(")


def test_values_json_cannot_encode_become_text() -> None:
    entry = as_json(JsonFormatter(1), record(topic=Path("odd")))
    assert entry["topic"] == "odd"


# -- configure_logging ----------------------------------------------------------------------


def test_text_stays_the_default_format(strip_root_handlers: Callable[[], None]) -> None:
    strip_root_handlers()
    out = io.StringIO()
    configure_logging("INFO", "text", broker_id=1, stream=out)
    logging.getLogger("logserver.broker").info("broker %d serving", 1)
    logging.getLogger("logserver.broker").debug("not shown")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO logserver.broker: broker 1 serving\n",
        out.getvalue(),
    )
    assert sys.excepthook is sys.__excepthook__


def test_json_covers_kazoo_asyncio_and_warnings(strip_root_handlers: Callable[[], None]) -> None:
    strip_root_handlers()
    out = io.StringIO()
    configure_logging("INFO", "json", broker_id=2, stream=out)
    logging.getLogger("kazoo.client").warning("Connection dropped: %s", "socket closed")
    loop = asyncio.new_event_loop()
    try:
        loop.call_exception_handler({"message": "Task exception", "exception": ValueError("x")})
    finally:
        loop.close()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated\nthing", DeprecationWarning, stacklevel=1)
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["logger"], e["level"]) for e in entries] == [
        ("kazoo.client", "WARNING"),
        ("asyncio", "ERROR"),
        ("py.warnings", "WARNING"),
    ]
    assert all(e["broker_id"] == 2 for e in entries)
    assert "ValueError: x" in entries[1]["traceback"]
    assert "deprecated\nthing" in entries[2]["message"]


def test_json_logs_an_uncaught_exception_in_a_thread(
    strip_root_handlers: Callable[[], None],
) -> None:
    strip_root_handlers()
    out = io.StringIO()
    configure_logging("INFO", "json", broker_id=2, stream=out)

    def fail() -> None:
        raise RuntimeError("lost in a thread")

    thread = threading.Thread(target=fail, name="doomed")
    thread.start()
    thread.join()
    (entry,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert entry["level"] == "CRITICAL"
    assert entry["message"] == "uncaught exception in thread doomed: lost in a thread"
    assert "RuntimeError: lost in a thread" in entry["traceback"]


# -- settings errors, before the configuration is loaded ------------------------------------


def test_a_settings_error_is_a_json_line_when_json_was_asked_for(
    strip_root_handlers: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strip_root_handlers()
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("BROKER_ID", "5")
    assert main(["--log-segment-bytes", "tiny"]) == 2
    (entry,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert entry["level"] == "ERROR"
    assert entry["broker_id"] == 5
    assert "log.segment.bytes='tiny'" in entry["message"]


def test_a_settings_error_without_a_broker_id_has_null(
    strip_root_handlers: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strip_root_handlers()
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.setenv("BROKER_ID", "minus one")
    assert main(["--log-format", "json"]) == 2
    (entry,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert entry["broker_id"] is None
    assert "broker.id='minus one'" in entry["message"]


def test_a_settings_error_in_text_mode_is_unchanged(
    strip_root_handlers: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strip_root_handlers()
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert main(["--log-segment-bytes", "tiny"]) == 2
    assert capsys.readouterr().err.startswith("logserver: [INVALID_CONFIG] log.segment.bytes=")


# -- the fields at the call sites -----------------------------------------------------------


def test_log_fields_of_a_partition_directory() -> None:
    assert log_fields(Path("/data/my-topic-12"), 7) == {
        "topic": "my-topic",
        "partition": 12,
        "offset": 7,
    }
    assert log_fields(Path("/data/orders-0")) == {"topic": "orders", "partition": 0}
    assert log_fields(Path("/data/not_a_partition"), 3) == {"offset": 3}


def test_truncation_carries_topic_partition_offset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = PartitionLog.open(tmp_path / "orders-2", LogConfig())
    try:
        for _ in range(3):
            log.append(make_batch(2))
        with caplog.at_level(logging.INFO, logger="logserver.log"):
            log.truncate_to(2)
    finally:
        log.close()
    (truncated,) = [r for r in caplog.records if "truncated" in r.getMessage()]
    entry = as_json(JsonFormatter(0), truncated)
    assert (entry["topic"], entry["partition"], entry["offset"]) == ("orders", 2, 2)
