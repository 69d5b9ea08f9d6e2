"""LogManager: partitions spread over several log dirs, created, loaded, deleted, retained."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest

from client.errors import InvalidConfigurationError, StorageError
from logserver.log import LogConfig, PartitionLog
from logserver.log.files import CLEAN_SHUTDOWN_FILE
from logserver.log_manager import LogManager, parse_partition_dir
from tests.support.batches import BASE_TIMESTAMP, make_batch
from tests.support.clock import FakeClock
from tests.support.log_files import read_all_records

DEFAULTS = LogConfig(segment_bytes=64 * 1024, file_delete_delay_ms=0)


@pytest.fixture
def dirs(tmp_path: Path) -> list[Path]:
    return [tmp_path / "d0", tmp_path / "d1", tmp_path / "d2"]


@pytest.fixture
def managers(clock: FakeClock):
    """``managers(log_dirs, default_config=DEFAULTS)``; every manager is closed at teardown."""
    made: list[LogManager] = []

    def factory(log_dirs, default_config: LogConfig = DEFAULTS) -> LogManager:
        manager = LogManager(log_dirs, default_config, clock_ms=clock)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        manager.close()


def _partition_dirs(log_dir: Path) -> list[str]:
    return sorted(p.name for p in log_dir.iterdir()) if log_dir.exists() else []


def _make_partition(directory: Path, *, records: int = 0) -> None:
    """A partition directory on disk, as a previous broker run would leave it."""
    log = PartitionLog.open(directory, DEFAULTS)
    for i in range(records):
        log.append(make_batch(1, tag=f"{directory.name}-{i}"))
    log.close()


# -- parse_partition_dir -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders-0", ("orders", 0)),
        ("orders-12", ("orders", 12)),
        ("my-topic-3", ("my-topic", 3)),
        ("my.topic_x-7", ("my.topic_x", 7)),
        ("a--1", ("a-", 1)),
        ("orders", None),
        ("orders-", None),
        ("-0", None),
        ("orders-x", None),
        ("orders-1.5", None),
        ("orders-0.3f2a-delete", None),
        ("orders--", None),
        ("lost+found", None),
    ],
)
def test_parse_partition_dir(name, expected):
    assert parse_partition_dir(name) == expected


@pytest.mark.parametrize("name", ["x-\u00b2", "x-\u0661"])
def test_parse_partition_dir_accepts_ascii_digits_only(name):
    assert parse_partition_dir(name) is None


# -- load ----------------------------------------------------------------------------


def test_load_finds_partitions_across_log_dirs(dirs, managers):
    _make_partition(dirs[0] / "orders-0", records=2)
    _make_partition(dirs[1] / "orders-1", records=1)
    _make_partition(dirs[1] / "clicks-0")
    _make_partition(dirs[2] / "orders-2", records=3)

    manager = managers(dirs)
    manager.load()

    assert sorted(manager.partitions()) == [
        ("clicks", 0),
        ("orders", 0),
        ("orders", 1),
        ("orders", 2),
    ]
    assert manager.topics() == {"orders", "clicks"}
    assert manager.get("orders", 1).directory == dirs[1] / "orders-1"
    assert manager.get("orders", 2).log_end_offset == 3
    assert [r.value for r in read_all_records(manager.get("orders", 0))] == [
        b"orders-0-0-0",
        b"orders-0-1-0",
    ]
    assert manager.get("orders", 3) is None


def test_load_creates_missing_log_dirs(dirs, managers):
    manager = managers(dirs)
    manager.load()
    assert all(d.is_dir() for d in dirs)
    assert manager.partitions() == {}


def test_load_ignores_what_is_not_a_partition_dir(dirs, managers):
    dirs[0].mkdir(parents=True)
    (dirs[0] / "lost+found").mkdir()
    (dirs[0] / "notes-x").mkdir()
    (dirs[0] / "orders-7").write_text("a file, not a directory")
    (dirs[0] / "meta.properties").write_text("broker.id=1")
    _make_partition(dirs[0] / "orders-0")

    manager = managers(dirs)
    manager.load()

    assert list(manager.partitions()) == [("orders", 0)]
    assert (dirs[0] / "lost+found").is_dir()
    assert (dirs[0] / "orders-7").is_file()


def test_load_removes_leftovers_of_an_interrupted_delete(dirs, managers):
    _make_partition(dirs[0] / "orders-0.1a2b3c-delete", records=1)
    _make_partition(dirs[1] / "orders-1.99ff-delete")
    _make_partition(dirs[1] / "clicks-0", records=1)
    (dirs[2]).mkdir()
    (dirs[2] / "stray-delete").write_text("a file is left alone")

    manager = managers(dirs)
    manager.load()

    assert list(manager.partitions()) == [("clicks", 0)]
    assert _partition_dirs(dirs[0]) == []
    assert _partition_dirs(dirs[1]) == ["clicks-0"]
    assert _partition_dirs(dirs[2]) == ["stray-delete"]


def test_a_partition_in_two_log_dirs_is_a_storage_error(dirs, managers):
    _make_partition(dirs[0] / "orders-0")
    _make_partition(dirs[2] / "orders-0")
    _make_partition(dirs[1] / "orders-1")

    manager = managers(dirs)
    with pytest.raises(StorageError, match=r"more than one log dir: \[\('orders', 0\)\]"):
        manager.load()
    assert manager.partitions() == {}


def test_a_failed_load_closes_the_logs_it_opened(dirs, managers):
    for p in range(3):
        _make_partition(dirs[0] / f"orders-{p}")
    broken = dirs[1] / "orders-9"
    (broken / f"{0:020d}.log").mkdir(parents=True)  # a segment that cannot be opened
    manager = managers(dirs)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(StorageError, match="orders-9"):
            manager.load()
        gc.collect()

    assert manager.partitions() == {}
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []


def test_a_log_dir_that_is_a_file_is_a_storage_error(tmp_path, managers):
    bad = tmp_path / "not-a-dir"
    bad.write_text("")
    manager = managers([bad])
    with pytest.raises(StorageError, match="not-a-dir"):
        manager.load()


def test_load_applies_each_topics_config(dirs, managers):
    _make_partition(dirs[0] / "orders-0")
    _make_partition(dirs[1] / "clicks-0")

    manager = managers(dirs)
    manager.load({"orders": {"retention.ms": "1000", "cleanup.policy": "delete"}})

    assert manager.get("orders", 0).config.retention_ms == 1000
    assert manager.get("orders", 0).config.segment_bytes == DEFAULTS.segment_bytes
    assert manager.get("clicks", 0).config == DEFAULTS


def test_load_recovers_an_unclean_partition(dirs, managers):
    directory = dirs[0] / "orders-0"
    _make_partition(directory, records=3)
    (directory / CLEAN_SHUTDOWN_FILE).unlink()
    log_file = directory / f"{0:020d}.log"
    with log_file.open("ab") as f:
        f.write(b"\x00\x01torn")  # a crash mid-append

    manager = managers(dirs)
    manager.load()

    log = manager.get("orders", 0)
    assert log.log_end_offset == 3
    assert log.recovery_report is not None
    assert log.recovery_report.truncation is not None
    assert log.recovery_report.lost_data


# -- create --------------------------------------------------------------------------


def test_create_places_a_partition_in_the_log_dir_with_fewest(dirs, managers):
    _make_partition(dirs[0] / "a-0")
    _make_partition(dirs[0] / "a-1")
    _make_partition(dirs[1] / "a-2")
    manager = managers(dirs)
    manager.load()

    placed = [manager.create("b", p, {}).directory.parent for p in range(4)]

    # counts start 2, 1, 0: d2, then d1 and d2 tie at 1 (the first listed wins), then d2.
    assert placed == [dirs[2], dirs[1], dirs[2], dirs[0]]
    counts = {d: len(_partition_dirs(d)) for d in dirs}
    assert counts == {dirs[0]: 3, dirs[1]: 2, dirs[2]: 2}


def test_create_spreads_partitions_over_empty_log_dirs(dirs, managers):
    manager = managers(dirs)
    manager.load()
    placed = [manager.create("b", p, {}).directory.parent for p in range(7)]
    assert placed == [dirs[0], dirs[1], dirs[2], dirs[0], dirs[1], dirs[2], dirs[0]]


def test_load_removes_delete_leftovers_in_an_otherwise_empty_log_dir(dirs, managers):
    _make_partition(dirs[0] / "orders-0.1a2b3c-delete")
    manager = managers(dirs)
    manager.load()
    assert _partition_dirs(dirs[0]) == []


def test_create_with_one_log_dir(tmp_path, managers):
    manager = managers([tmp_path / "only"])
    manager.load()
    log = manager.create("orders", 0, {})
    assert log.directory == tmp_path / "only" / "orders-0"
    assert log.directory.is_dir()


def test_create_twice_returns_the_open_log(dirs, managers):
    manager = managers(dirs)
    manager.load()
    first = manager.create("orders", 0, {})
    first.append(make_batch(2))
    again = manager.create("orders", 0, {"retention.ms": "5"})
    assert again is first
    assert again.log_end_offset == 2
    assert sum(len(_partition_dirs(d)) for d in dirs) == 1


def test_create_applies_overrides_on_the_defaults(dirs, managers):
    manager = managers(dirs)
    manager.load()
    log = manager.create("orders", 0, {"segment.bytes": "4096", "min.insync.replicas": "2"})
    assert log.config.segment_bytes == 4096
    assert log.config.file_delete_delay_ms == DEFAULTS.file_delete_delay_ms


def test_create_with_a_bad_override_creates_nothing(dirs, managers):
    manager = managers(dirs)
    manager.load()
    with pytest.raises(InvalidConfigurationError, match=r"segment\.bytes"):
        manager.create("orders", 0, {"segment.bytes": "lots"})
    assert manager.get("orders", 0) is None
    assert all(_partition_dirs(d) == [] for d in dirs)


def test_created_partitions_are_found_by_the_next_load(dirs, managers):
    manager = managers(dirs)
    manager.load()
    for p in range(5):
        manager.create("orders", p, {}).append(make_batch(p + 1))
    manager.close()

    reloaded = managers(dirs)
    reloaded.load()
    assert sorted(reloaded.partitions()) == [("orders", p) for p in range(5)]
    assert [reloaded.get("orders", p).log_end_offset for p in range(5)] == [1, 2, 3, 4, 5]


# -- delete --------------------------------------------------------------------------


def test_delete_topic_removes_its_partitions_everywhere(dirs, managers):
    manager = managers(dirs)
    manager.load()
    for p in range(3):
        manager.create("orders", p, {}).append(make_batch(1))
    manager.create("clicks", 0, {})

    assert manager.delete_topic("orders") == 3

    assert list(manager.partitions()) == [("clicks", 0)]
    assert manager.get("orders", 0) is None
    assert manager.topics() == {"clicks"}
    on_disk = sorted(name for d in dirs for name in _partition_dirs(d))
    assert on_disk == ["clicks-0"]  # no *-delete directory left behind


def test_delete_an_unknown_topic_is_zero(dirs, managers):
    manager = managers(dirs)
    manager.load()
    manager.create("orders", 0, {})
    assert manager.delete_topic("nothing") == 0
    assert list(manager.partitions()) == [("orders", 0)]


def test_a_topic_recreated_after_delete_starts_empty(dirs, managers):
    manager = managers(dirs)
    manager.load()
    manager.create("orders", 0, {}).append(make_batch(5))
    manager.delete_topic("orders")
    log = manager.create("orders", 0, {})
    assert log.log_end_offset == 0
    assert read_all_records(log) == []


def test_delete_topic_does_not_touch_a_topic_with_a_longer_name(dirs, managers):
    manager = managers(dirs)
    manager.load()
    manager.create("orders", 0, {})
    manager.create("orders-eu", 0, {})
    manager.delete_topic("orders")
    assert list(manager.partitions()) == [("orders-eu", 0)]


# -- config --------------------------------------------------------------------------


def test_update_topic_config_applies_to_every_partition_of_the_topic(dirs, managers):
    manager = managers(dirs)
    manager.load()
    for p in range(3):
        manager.create("orders", p, {"retention.ms": "1000"})
    manager.create("clicks", 0, {})

    manager.update_topic_config(
        "orders", {"retention.bytes": "10", "unclean.leader.election.enable": "true"}
    )

    for p in range(3):
        config = manager.get("orders", p).config
        assert config.retention_bytes == 10
        assert config.retention_ms == DEFAULTS.retention_ms  # the new set replaces the old
    assert manager.get("clicks", 0).config == DEFAULTS


def test_update_topic_config_rejects_bad_values_before_changing_anything(dirs, managers):
    manager = managers(dirs)
    manager.load()
    log = manager.create("orders", 0, {"retention.ms": "1000"})
    with pytest.raises(InvalidConfigurationError):
        manager.update_topic_config("orders", {"retention.ms": "-5"})
    assert log.config.retention_ms == 1000


# -- retention, flush, close ---------------------------------------------------------


def _two_segments(log: PartitionLog) -> None:
    log.append(make_batch(3, timestamp_ms=BASE_TIMESTAMP))
    log.roll()
    log.append(make_batch(2, timestamp_ms=BASE_TIMESTAMP))


def test_enforce_retention_removes_old_segments_of_every_log(dirs, managers, clock):
    clock.now_ms = BASE_TIMESTAMP
    manager = managers(dirs)
    manager.load()
    short = [manager.create("orders", p, {"retention.ms": "1000"}) for p in range(2)]
    kept = manager.create("audit", 0, {"retention.ms": "-1"})
    for log in [*short, kept]:
        _two_segments(log)

    assert manager.enforce_retention() == 0
    clock.advance(1001)
    assert manager.enforce_retention() == 2

    for log in short:
        assert log.log_start_offset == 3
        assert [s.base_offset for s in log.segments] == [3]
        assert not (log.directory / f"{0:020d}.log").exists()
        assert not list(log.directory.glob("*.deleted"))  # file.delete.delay.ms=0: unlinked
    assert kept.log_start_offset == 0
    assert len(kept.segments) == 2


def test_a_retention_failure_in_one_log_does_not_stop_the_others(
    dirs, managers, clock, monkeypatch, caplog
):
    clock.now_ms = BASE_TIMESTAMP
    manager = managers(dirs)
    manager.load()
    broken = manager.create("broken", 0, {"retention.ms": "0"})
    healthy = manager.create("healthy", 0, {"retention.ms": "0"})
    _two_segments(broken)
    _two_segments(healthy)

    def fail() -> list:
        raise StorageError("disk on fire")

    monkeypatch.setattr(broken, "delete_old_segments", fail)
    clock.advance(1)

    assert manager.enforce_retention() == 1
    assert healthy.log_start_offset == 3
    assert "broken-0: retention failed" in caplog.text


def test_flush_due_flushes_by_policy(dirs, managers):
    manager = managers(dirs)
    manager.load()
    log = manager.create("orders", 0, {"flush.messages": "2"})
    log.append(make_batch(1))
    manager.flush_due()
    assert log.recovery_point == 0
    log.append(make_batch(1))
    manager.flush_due()
    assert log.recovery_point == 2


def test_close_leaves_a_clean_shutdown_marker_in_every_partition(dirs, managers):
    manager = managers(dirs)
    manager.load()
    logs = [manager.create("orders", p, {}) for p in range(4)]
    for log in logs:
        log.append(make_batch(2))

    manager.close()

    assert manager.partitions() == {}
    for log in logs:
        assert log.closed
        assert (log.directory / CLEAN_SHUTDOWN_FILE).exists()
        assert log.recovery_point == 2


def test_close_reports_every_failure_and_still_closes_the_rest(dirs, managers, monkeypatch):
    manager = managers(dirs)
    manager.load()
    bad = manager.create("bad", 0, {})
    good = manager.create("good", 0, {})

    def fail() -> None:
        raise StorageError("cannot fsync")

    monkeypatch.setattr(bad, "close", fail)
    with pytest.raises(StorageError, match=r"closing logs failed: bad-0: .*cannot fsync"):
        manager.close()
    assert good.closed
    assert (good.directory / CLEAN_SHUTDOWN_FILE).exists()
    monkeypatch.undo()
    bad.close()


def test_clock_is_passed_to_the_logs(tmp_path, clock):
    manager = LogManager([tmp_path], DEFAULTS, clock_ms=clock)
    manager.load()
    log = manager.create("t", 0, {"segment.ms": "1000"})
    log.append(make_batch(1))
    clock.advance(1000)
    log.append(make_batch(1))
    assert len(log.segments) == 2  # rolled by segment.ms on the manager's clock
    manager.close()
