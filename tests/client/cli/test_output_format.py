"""The kcat-like format strings of ``logctl consume --format`` (no broker)."""

from __future__ import annotations

import json

import pytest

from client.cli.output_format import DEFAULT_FORMAT, FormatError, compile_format
from client.record import Record

RECORD = Record(
    offset=42,
    timestamp=1_700_000_000_123,
    key=b"user-7",
    value=b"hello world",
    headers=(("trace", b"abc"), ("empty", b"")),
)


def render(fmt: str, record: Record = RECORD, topic: str = "orders", partition: int = 3) -> bytes:
    return compile_format(fmt)(topic, partition, record)


def test_default_format_is_the_value_and_a_newline():
    assert render(DEFAULT_FORMAT) == b"hello world\n"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%v", b"hello world"),
        ("%k", b"user-7"),
        ("%p", b"3"),
        ("%o", b"42"),
        ("%T", b"1700000000123"),
        ("%t", b"orders"),
        ("%h", b"trace=abc,empty="),
        ("%t/%p@%o %k=%v\\n", b"orders/3@42 user-7=hello world\n"),
        ("[%k]\\t[%v]\\r\\n", b"[user-7]\t[hello world]\r\n"),
        ("100%% %v", b"100% hello world"),
        ("back\\\\slash\\0", b"back\\slash\0"),
        ("no tokens at all", b"no tokens at all"),
        ("", b""),
        ("%v%v", b"hello worldhello world"),
        ("naïve %v", "naïve hello world".encode()),
    ],
)
def test_tokens_and_escapes(fmt, expected):
    assert render(fmt) == expected


def test_values_are_written_as_their_raw_bytes():
    record = Record(0, 0, b"\xff\x00", b"\x80binary\n", ())

    assert render("%k|%v", record) == b"\xff\x00|\x80binary\n"


def test_null_key_and_value_print_as_nothing_and_no_headers_as_empty():
    record = Record(5, 9, None, None, ())

    assert render("<%k><%v><%h>\\n", record) == b"<><><>\n"


def test_a_null_header_value_prints_as_an_empty_value():
    record = Record(0, 0, None, b"v", (("a", None), ("b", b"2")))  # type: ignore[arg-type]

    assert render("%h", record) == b"a=,b=2"


@pytest.mark.parametrize(
    ("fmt", "complaint"),
    [
        ("%x", "unknown token '%x'"),
        ("%v %K", "unknown token '%K'"),
        ("%v\\q", "unknown escape '\\q'"),
        ("%v %", "ends with a lone '%'"),
        ("%v\\", "ends with a lone '\\\\'"),
    ],
)
def test_bad_formats_name_the_problem(fmt, complaint):
    with pytest.raises(FormatError) as caught:
        compile_format(fmt)

    assert complaint in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_json_has_every_field_and_one_object_per_line():
    out = render("json")

    assert out.endswith(b"\n")
    assert out.count(b"\n") == 1
    assert json.loads(out) == {
        "topic": "orders",
        "partition": 3,
        "offset": 42,
        "timestamp": 1_700_000_000_123,
        "key": "user-7",
        "value": "hello world",
        "headers": [["trace", "abc"], ["empty", ""]],
    }


def test_json_keeps_nulls_and_backslash_escapes_bytes_that_are_not_utf8():
    record = Record(1, 2, None, b"caf\xc3\xa9 \xff\xfe", (("h", None), ("bin", b"\x80")))  # type: ignore[arg-type]

    obj = json.loads(render("json", record))

    assert obj["key"] is None
    assert obj["value"] == "café \\xff\\xfe"
    assert obj["headers"] == [["h", None], ["bin", "\\x80"]]


def test_json_escapes_newlines_inside_values_so_each_record_stays_one_line():
    record = Record(0, 0, b"k\n", b"line one\nline two", ())

    out = render("json", record)

    assert out.count(b"\n") == 1
    assert json.loads(out)["value"] == "line one\nline two"
