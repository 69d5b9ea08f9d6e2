"""All partition logs of a broker, across its log directories.

A partition lives in ``<log dir>/<topic>-<partition>/``; a new one goes to the
log directory holding the fewest partitions (Kafka's rule). Deleting a topic
renames its directories to ``<topic>-<partition>.<id>-delete`` first, so a crash
halfway never leaves half a topic that looks live, then removes them.

Everything here is blocking: the broker calls it from worker threads, except
``get``, which is a dict lookup.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from client.errors import StorageError
from logserver.log import LogConfig, PartitionLog
from logserver.log.files import fsync_directory, log_fields
from logserver.topic_config import log_config_for

__all__ = ["LogManager", "parse_partition_dir"]

log = logging.getLogger(__name__)

_DELETE_SUFFIX = "-delete"
TopicPartition = tuple[str, int]


def parse_partition_dir(name: str) -> TopicPartition | None:
    """``(topic, partition)`` for a directory named ``<topic>-<partition>``, else None."""
    topic, dash, number = name.rpartition("-")
    if not dash or not topic or not (number.isascii() and number.isdigit()):
        return None
    return topic, int(number)


class LogManager:
    def __init__(
        self,
        log_dirs: Iterable[Path | str],
        default_config: LogConfig,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.log_dirs = [Path(d) for d in log_dirs]
        self.default_config = default_config
        self._clock_kwargs = {} if clock_ms is None else {"clock_ms": clock_ms}
        self._logs: dict[TopicPartition, PartitionLog] = {}
        self._lock = threading.Lock()  # guards _logs changes (reads are dict lookups)

    # -- lookup ---------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def partitions(self) -> dict[TopicPartition, PartitionLog]:
        return dict(self._logs)

    def topics(self) -> set[str]:
        return {topic for topic, _ in self._logs}

    # -- open, create, delete -----------------------------------------------------

    def load(self, topic_configs: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Open every partition directory found (recovering them in parallel).

        Leftovers of an interrupted topic deletion are removed first.
        """
        topic_configs = topic_configs or {}
        found: list[tuple[TopicPartition, Path]] = []
        for log_dir in self.log_dirs:
            try:
                log_dir.mkdir(parents=True, exist_ok=True)
                entries = sorted(os.scandir(log_dir), key=lambda e: e.name)
            except OSError as exc:
                raise StorageError(f"log dir {log_dir}: {exc.strerror}") from exc
            for entry in entries:
                if not entry.is_dir():
                    continue
                if entry.name.endswith(_DELETE_SUFFIX):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    continue
                tp = parse_partition_dir(entry.name)
                if tp is not None:
                    found.append((tp, Path(entry.path)))
        duplicates = {tp for tp, _ in found if sum(1 for t, _ in found if t == tp) > 1}
        if duplicates:
            raise StorageError(f"partitions found in more than one log dir: {sorted(duplicates)}")

        def open_one(item: tuple[TopicPartition, Path]) -> tuple[TopicPartition, PartitionLog]:
            (topic, _), path = item
            config = log_config_for(topic_configs.get(topic, {}), self.default_config)
            opened = PartitionLog.open(path, config, **self._clock_kwargs)
            report = opened.recovery_report
            if report is not None and report.truncation is not None:
                log.warning(
                    "%s: recovery cut the log: %s",
                    path.name,
                    report,
                    extra=log_fields(path, report.log_end_offset),
                )
            return item[0], opened

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(found)))) as pool:
            futures = [pool.submit(open_one, item) for item in found]
        results, failures = [], []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 - collected: the logs that did open must be closed
                failures.append(exc)
        if failures:
            for _, opened in results:
                opened.close_handlers()
            raise failures[0]
        with self._lock:
            self._logs.update(results)

    def create(self, topic: str, partition: int, overrides: Mapping[str, str]) -> PartitionLog:
        """Open (creating if needed) one partition's log."""
        with self._lock:
            existing = self._logs.get((topic, partition))
            if existing is not None:
                return existing
            counts = {d: 0 for d in self.log_dirs}
            for opened in self._logs.values():
                parent = opened.directory.parent
                if parent in counts:
                    counts[parent] += 1
            log_dir = min(self.log_dirs, key=lambda d: counts[d])
            config = log_config_for(overrides, self.default_config)
            opened = PartitionLog.open(
                log_dir / f"{topic}-{partition}", config, **self._clock_kwargs
            )
            try:
                fsync_directory(log_dir)
            except OSError as exc:
                opened.close_handlers()
                raise StorageError(f"log dir {log_dir}: {exc.strerror}") from exc
            self._logs[(topic, partition)] = opened
            return opened

    def delete_topic(self, topic: str) -> int:
        """Close and remove every partition of ``topic``; return how many there were."""
        with self._lock:
            doomed = [(tp, lg) for tp, lg in self._logs.items() if tp[0] == topic]
            for tp, _ in doomed:
                del self._logs[tp]
        for _, partition_log in doomed:
            partition_log.close_handlers()
            directory = partition_log.directory
            target = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}{_DELETE_SUFFIX}")
            try:
                directory.rename(target)
                fsync_directory(directory.parent)
            except OSError as exc:
                raise StorageError(f"{directory}: cannot delete: {exc.strerror}") from exc
            shutil.rmtree(target, ignore_errors=True)
        return len(doomed)

    def update_topic_config(self, topic: str, overrides: Mapping[str, str]) -> None:
        config = log_config_for(overrides, self.default_config)
        for (name, _), partition_log in list(self._logs.items()):
            if name == topic:
                partition_log.update_config(config)

    # -- background duties ----------------------------------------------------------

    def enforce_retention(self) -> int:
        """Apply retention to every log and unlink segments past their delay; return segments."""
        removed = 0
        for (topic, partition), partition_log in list(self._logs.items()):
            try:
                deleted = partition_log.delete_old_segments()
                partition_log.purge_deleted()
            except StorageError as exc:
                log.error("%s-%d: retention failed: %s", topic, partition, exc)
                continue
            if deleted:
                log.info("%s-%d: retention removed %d segment(s)", topic, partition, len(deleted))
            removed += len(deleted)
        return removed

    def flush_due(self) -> None:
        """Run each log's flush policy (``flush.messages``/``flush.ms``, rolled segments)."""
        for (topic, partition), partition_log in list(self._logs.items()):
            try:
                partition_log.maybe_flush()
            except StorageError as exc:
                log.error("%s-%d: flush failed: %s", topic, partition, exc)

    def close(self) -> None:
        """Flush, checkpoint and close every log, leaving the clean-shutdown markers."""
        with self._lock:
            logs = list(self._logs.items())
            self._logs.clear()
        failures = []
        for (topic, partition), partition_log in logs:
            try:
                partition_log.close()
            except StorageError as exc:
                failures.append(f"{topic}-{partition}: {exc}")
        if failures:
            raise StorageError("closing logs failed: " + "; ".join(failures))
