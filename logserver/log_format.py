"""How the broker's log lines look: plain text (the default) or one JSON object per line.

``log.format=json`` (``LOG_FORMAT=json``, ``--log-format json``) writes every
record, the broker's own and those of kazoo, asyncio and ``warnings``, as::

    {"ts": "2026-11-22T11:38:08.123Z", "level": "INFO", "logger": "logserver.broker",
     "broker_id": 1, "message": "orders-0: ISR is now [1, 2]", "topic": "orders",
     "partition": 0}

- ``ts`` is ISO 8601 in UTC with milliseconds; ``message`` is the formatted message.
- ``topic``, ``partition`` and ``offset`` appear when the call passed them:
  ``log.info(..., extra={"topic": t, "partition": p, "offset": o})``
  (``logserver.log.files.log_fields`` builds that dict from a partition directory);
  ``traceback`` when the call carried ``exc_info``, ``stack`` with ``stack_info``.
- ``broker_id`` is null on the lines written before the settings are known (a
  settings error).
- Output is pure ASCII (``\\uXXXX`` escapes), so no locale, stream encoding or
  line splitter can break the one-object-per-line rule.

In JSON mode uncaught exceptions, in the main thread or any other, are logged
too rather than printed as a bare traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any, Literal, TextIO

__all__ = ["FIELDS", "TEXT_FORMAT", "JsonFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("topic", "partition", "offset")

_log = logging.getLogger("logserver")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring for the fields)."""

    def __init__(self, broker_id: int | None = None) -> None:
        super().__init__()
        self.broker_id = broker_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _iso_utc(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "broker_id": self.broker_id,
            "message": _message(record),
        }
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=str)


def _message(record: logging.LogRecord) -> str:
    # A log call whose arguments do not fit its format string would otherwise make
    # logging print its own multi-line complaint to stderr, outside the JSON.
    try:
        return record.getMessage()
    except Exception as exc:  # noqa: BLE001
        return f"{record.msg!r} % {record.args!r}: cannot format: {exc!r}"


def _iso_utc(created: float, msecs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


def configure_logging(
    level: str,
    log_format: Literal["text", "json"],
    *,
    broker_id: int | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) at ``level``, as text or JSON.

    Like ``logging.basicConfig``, it does nothing to a root logger that already
    has handlers; the handler it built is returned either way.
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(broker_id))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if log_format == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    return handler


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    _log.critical("uncaught exception: %s", exc, exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    _log.critical("uncaught exception in thread %s: %s", name, args.exc_value, exc_info=exc_info)
