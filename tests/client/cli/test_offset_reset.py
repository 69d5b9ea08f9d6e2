"""``reset-offsets`` arguments and plan, as pure functions: no broker, hypothesis for the rules."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.cli.offset_reset import (
    PlanError,
    ResetSpec,
    TopicSelection,
    parse_datetime,
    parse_duration,
    parse_topic,
    plan_offsets,
)
from client.topic_partition import TopicPartition

A, B, C = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)

# -- --topic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "selection"),
    [
        ("orders", TopicSelection("orders")),
        ("orders:0", TopicSelection("orders", (0,))),
        ("orders:2,0,2", TopicSelection("orders", (0, 2))),
        (" orders : 1 , 3 ", TopicSelection("orders", (1, 3))),
    ],
)
def test_topic_selections(text, selection):
    assert parse_topic(text) == selection


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (":1", "names no topic"),
        ("", "names no topic"),
        ("orders:", "partitions must be numbers separated by commas, as in orders:0,2"),
        ("orders:a", "partitions must be numbers"),
        ("orders:-1", "partitions must be numbers"),
        ("orders:1:2", "partitions must be numbers"),
        ("orders:\uff11", "partitions must be numbers"),  # a full-width digit
    ],
)
def test_bad_topic_selections_say_the_form(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_topic(text)


# -- dates and durations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-11-22T10:00:00.000Z", 1_795_341_600_000),
        ("2026-11-22T10:00:00Z", 1_795_341_600_000),
        ("2026-11-22T10:00:00.123+00:00", 1_795_341_600_123),
        ("2026-11-22T11:00:00+01:00", 1_795_341_600_000),
        ("2026-11-22T05:30:00-04:30", 1_795_341_600_000),
        ("1969-12-31T23:59:59Z", -1000),
    ],
)
def test_datetimes_with_a_zone(text, ms):
    assert parse_datetime(text) == ms


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch):
    """Local time is UTC+05:30 for the test."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("kolkata")
def test_a_datetime_without_a_zone_is_local_time():
    assert parse_datetime("2026-11-22T15:30:00.000") == 1_795_341_600_000
    assert parse_datetime("2026-11-22T15:30:00") == 1_795_341_600_000
    assert parse_datetime("2026-11-22") == 1_795_341_600_000 - (15 * 3600 + 1800) * 1000


@pytest.mark.parametrize(
    "text", ["yesterday", "2026-13-01T00:00:00", "22/11/2026", "10:00", "2026-11-22T25:00", ""]
)
def test_a_malformed_datetime_says_the_expected_format(text):
    with pytest.raises(ValueError, match="is not an ISO 8601 date-time") as caught:
        parse_datetime(text)
    assert "2026-11-22T10:00:00.000" in str(caught.value)
    assert "without a zone it is local time" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("PT1H", 3_600_000),
        ("pt30m", 1_800_000),
        ("P1D", 86_400_000),
        ("P1DT12H", 129_600_000),
        ("PT1H2M3S", 3_723_000),
        ("PT0.5S", 500),
        ("PT1,25S", 1250),
        ("PT0S", 0),
        ("PT90M", 5_400_000),
    ],
)
def test_durations(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "text", ["P", "PT", "P1DT", "1H", "PT-1H", "-PT1H", "PT1Y", "P1W", "PT.5S"]
)
def test_a_malformed_duration_says_the_expected_format(text):
    with pytest.raises(ValueError, match=r"is not an ISO 8601 duration: expected PnDTnHnMnS"):
        parse_duration(text)


def test_a_time_spec_gives_the_lookup_timestamp_never_before_the_epoch():
    assert ResetSpec("datetime", 1234).timestamp_ms(now_ms=10_000) == 1234
    assert ResetSpec("datetime", -5).timestamp_ms(now_ms=10_000) == 0
    assert ResetSpec("duration", 3000).timestamp_ms(now_ms=10_000) == 7000
    assert ResetSpec("duration", 30_000).timestamp_ms(now_ms=10_000) == 0
    assert ResetSpec("earliest").timestamp_ms(now_ms=10_000) is None


# -- the plan --------------------------------------------------------------------------

STARTS = {A: 10, B: 0, C: 5}
ENDS = {A: 20, B: 0, C: 8}


def plan(spec, committed=None, by_time=None, partitions=(A, B, C)):
    return plan_offsets(
        partitions,
        spec,
        committed=committed or {},
        log_start=STARTS,
        log_end=ENDS,
        by_time=by_time,
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (ResetSpec("earliest"), {A: 10, B: 0, C: 5}),
        (ResetSpec("latest"), {A: 20, B: 0, C: 8}),
        (ResetSpec("offset", 7), {A: 10, B: 0, C: 7}),
        (ResetSpec("offset", 0), {A: 10, B: 0, C: 5}),
        (ResetSpec("offset", 99), {A: 20, B: 0, C: 8}),
        (ResetSpec("shift", -3), {A: 12, B: 0, C: 5}),
        (ResetSpec("shift", 2), {A: 17, B: 0, C: 8}),
    ],
)
def test_each_option_then_clamps_to_the_log(spec, expected):
    assert plan(spec, committed={A: 15, B: 0, C: 7}) == expected


@pytest.mark.parametrize("kind", ["datetime", "duration"])
def test_a_time_takes_the_first_offset_at_or_after_it_else_the_end(kind):
    found = {A: 12, B: None, C: None}

    assert plan(ResetSpec(kind, 1000), by_time=found) == {A: 12, B: 0, C: 8}


def test_the_plan_is_in_topic_and_partition_order_without_duplicates():
    made = plan(ResetSpec("earliest"), partitions=[C, B, A, B])

    assert list(made) == [A, B, C]


def test_shifting_a_partition_without_a_committed_offset_is_refused_naming_it():
    with pytest.raises(PlanError, match=r"cannot shift t-1, u-0: the group has no committed"):
        plan(ResetSpec("shift", 1), committed={A: 15})


def test_a_refusal_names_at_most_five_partitions():
    many = [TopicPartition("t", p) for p in range(8)]

    with pytest.raises(PlanError, match=r"t-0, t-1, t-2, t-3, t-4 and 3 more"):
        plan_offsets(many, ResetSpec("shift", 1), committed={}, log_start={}, log_end={})


@st.composite
def logs(draw):
    """Partitions with a log start <= end, a committed offset (anywhere), and a time lookup."""
    count = draw(st.integers(1, 6))
    tps = [TopicPartition(draw(st.sampled_from("ab")), p) for p in range(count)]
    starts, ends, committed, by_time = {}, {}, {}, {}
    for tp in tps:
        starts[tp] = draw(st.integers(0, 1000))
        ends[tp] = starts[tp] + draw(st.integers(0, 1000))
        committed[tp] = draw(st.integers(0, 3000))
        by_time[tp] = draw(st.none() | st.integers(starts[tp], ends[tp]))
    return tps, starts, ends, committed, by_time


SPECS = st.one_of(
    st.just(ResetSpec("earliest")),
    st.just(ResetSpec("latest")),
    st.builds(ResetSpec, st.just("offset"), st.integers(0, 5000)),
    st.builds(ResetSpec, st.just("shift"), st.integers(-5000, 5000)),
    st.builds(ResetSpec, st.sampled_from(["datetime", "duration"]), st.integers(0, 10**13)),
)


@given(logs(), SPECS)
def test_every_new_offset_lies_within_the_log(log, spec):
    tps, starts, ends, committed, by_time = log

    made = plan_offsets(
        tps, spec, committed=committed, log_start=starts, log_end=ends, by_time=by_time
    )

    assert set(made) == set(tps)
    assert all(starts[tp] <= made[tp] <= ends[tp] for tp in tps)


@given(logs(), st.integers(-5000, 5000))
def test_shift_by_moves_from_the_committed_offset_then_clamps(log, shift):
    tps, starts, ends, committed, _ = log

    made = plan_offsets(
        tps, ResetSpec("shift", shift), committed=committed, log_start=starts, log_end=ends
    )

    for tp in tps:
        wanted = committed[tp] + shift
        assert made[tp] == min(max(wanted, starts[tp]), ends[tp])
        if starts[tp] <= wanted <= ends[tp]:
            assert made[tp] == wanted  # inside the log, the shift is exact


@given(logs(), st.integers(0, 5000))
def test_to_offset_is_exact_inside_the_log_and_an_edge_outside(log, offset):
    tps, starts, ends, committed, _ = log

    made = plan_offsets(
        tps, ResetSpec("offset", offset), committed=committed, log_start=starts, log_end=ends
    )

    for tp in tps:
        if offset < starts[tp]:
            assert made[tp] == starts[tp]
        elif offset > ends[tp]:
            assert made[tp] == ends[tp]
        else:
            assert made[tp] == offset
