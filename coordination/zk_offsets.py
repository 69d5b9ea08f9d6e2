"""Committed consumer-group offsets in ZooKeeper: the blocking work (``KazooBridge`` threads).

    /consumers/<group>/offsets/<topic>/<partition>   one znode per partition (``zk_paths``)

**Commit.** One transaction: a ``check`` of the fence (the coordinator
partition's state znode at the version its leader saw), the missing parents,
then a create or a set of each partition's znode, so a commit is all or
nothing and a deposed coordinator writes nothing. Which znodes exist is
remembered per group from earlier commits and fetches; the ones not known are
looked up first, all at once (one more round trip, the first time). Knowledge
gone stale (a group deleted by another broker) fails the transaction, and the
commit looks again and retries.

ZooKeeper drops the connection of a request over ``jute.maxbuffer`` (1 MB by
default), which would look like an outage and be retried for ever: a commit
estimated over ``MAX_REQUEST_BYTES`` is refused up front instead.

**Fetch.** Every read of a step is sent before the first answer is awaited:
a group's offsets take three round trips however many partitions it has
(its topics, their partitions, the values), named partitions one.

Names under /consumers that ``decode_group`` refuses, and topic or partition
znodes that could not be ours, are not ours: left out of every answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kazoo.exceptions import NodeExistsError, NoNodeError, NotEmptyError

from client.errors import (
    InvalidRequestError,
    InvalidTopicError,
    NotCoordinatorError,
    StorageError,
)
from client.topics import validate_topic_name
from coordination.model import CommittedOffset, OffsetFence
from coordination.offsets import decode_group, is_partition_key, is_partition_name
from coordination.zk_paths import (
    CONSUMERS,
    RETRIES,
    decode_offset,
    encode_offset,
    failed_op,
    group_offsets_path,
    group_path,
    offset_path,
    offsets_topic_path,
    state_path,
    subtree,
)

if TYPE_CHECKING:
    from coordination.kazoo_bridge import KazooBridge

__all__ = ["MAX_REQUEST_BYTES", "ZooKeeperOffsets"]

MAX_REQUEST_BYTES = 1_000_000
"""The most a transaction may carry, by estimate: under ZooKeeper's default ``jute.maxbuffer``
(1,048,575 bytes) with room for the parents and the fence."""

_OP_OVERHEAD_BYTES = 64
"""What an operation adds to its path and value in a request: headers, lengths, the ACL."""

Key = tuple[str, int]


class ZooKeeperOffsets:
    """The offsets of every group, for one ``ZooKeeperCoordinator``. Thread-safe; every
    method blocks and must run in the bridge's worker threads (``KazooBridge.run``)."""

    def __init__(self, zk: KazooBridge) -> None:
        self._zk = zk
        self._lock = threading.Lock()
        self._known: dict[str, set[Key]] = {}  # group → partitions whose znode exists

    def commit(
        self, group: str, offsets: Mapping[Key, CommittedOffset], fence: OffsetFence | None
    ) -> None:
        if not offsets:
            return
        values = {key: encode_offset(value) for key, value in sorted(offsets.items())}
        size = sum(
            len(self._zk.full_path(offset_path(group, *key)).encode()) + len(raw)
            for key, raw in values.items()
        ) + _OP_OVERHEAD_BYTES * len(values)
        if size > MAX_REQUEST_BYTES:
            raise InvalidRequestError(
                f"group {group!r}: a commit of {len(values)} offsets is about {size} bytes, more "
                f"than the {MAX_REQUEST_BYTES} one ZooKeeper request may carry: commit fewer "
                "partitions, or shorter metadata, at once"
            )
        for _ in range(RETRIES):
            parents, missing = self._missing(group, list(values))
            transaction = self._zk.transaction()
            if fence is not None:
                transaction.check(state_path(fence.topic, fence.partition), fence.version)
            for path in parents:
                transaction.create(path)
            for key, raw in values.items():
                if key in missing:
                    transaction.create(offset_path(group, *key), raw)
                else:
                    transaction.set_data(offset_path(group, *key), raw)
            failure = failed_op(self._zk.commit(transaction))
            if failure is None:
                self._remember(group, values)
                return
            index, exc = failure
            if fence is not None and index == 0:
                raise NotCoordinatorError(
                    f"group {group!r}: this broker no longer coordinates the group: its "
                    f"coordinator partition {fence.topic}-{fence.partition} changed (state "
                    f"version {fence.version} is gone); no offset was committed. Find the "
                    "coordinator again and retry"
                )
            if not isinstance(exc, NoNodeError | NodeExistsError):
                raise exc
            self._forget(group)  # someone created or deleted znodes meanwhile: look again
        raise StorageError(
            f"group {group!r}: {self._zk.full_path(group_path(group))} kept changing under "
            "the commit; nothing committed"
        )

    def _missing(self, group: str, keys: list[Key]) -> tuple[list[str], set[Key]]:
        """The parents to create, in order, and the partitions whose znode is to be created.

        Only the znodes not known to exist are looked up, in one round trip.
        """
        with self._lock:
            known = set(self._known.get(group, ()))
        unknown = [key for key in keys if key not in known]
        if not unknown:
            return [], set()
        parents = [group_path(group), group_offsets_path(group)]
        parents += [offsets_topic_path(group, t) for t in sorted({t for t, _ in unknown})]
        parent_reads = [(path, self._zk.client.exists_async(path)) for path in parents]
        reads = [(key, self._zk.client.exists_async(offset_path(group, *key))) for key in unknown]
        missing_parents = [path for path, read in parent_reads if self._zk.wait(read) is None]
        return missing_parents, {key for key, read in reads if self._zk.wait(read) is None}

    def fetch(self, group: str, partitions: Iterable[Key] | None) -> dict[Key, CommittedOffset]:
        if partitions is None:
            keys = self._listed(group)
        else:
            keys = sorted({(key[0], key[1]) for key in partitions if is_partition_key(key)})
        reads = [
            (key, self._zk.client.get_async(offset_path(group, *key))) for key in keys
        ]  # all sent before the first answer is awaited
        found: dict[Key, CommittedOffset] = {}
        for key, read in reads:
            try:
                raw, _ = self._zk.wait(read)
            except NoNodeError:
                continue
            found[key] = decode_offset(self._zk.full_path(offset_path(group, *key)), raw)
        self._remember(group, found)
        return found

    def _listed(self, group: str) -> list[Key]:
        """Every partition with an offset znode, in two round trips."""
        try:
            topics = self._zk.children(group_offsets_path(group))
        except NoNodeError:
            return []
        reads = [
            (topic, self._zk.client.get_children_async(offsets_topic_path(group, topic)))
            for topic in sorted(topics)
            if _is_topic_name(topic)
        ]
        keys: list[Key] = []
        for topic, read in reads:
            try:
                names = self._zk.wait(read)
            except NoNodeError:
                continue  # deleted since the listing
            partitions = sorted(int(n) for n in names if is_partition_name(n))
            keys.extend((topic, partition) for partition in partitions)
        return keys

    def groups(self) -> list[str]:
        """The groups with a topic under their offsets, in two round trips."""
        try:
            names = self._zk.children(CONSUMERS)
        except NoNodeError:
            return []
        groups = [group for group in map(decode_group, names) if group is not None]
        reads = [
            (group, self._zk.client.get_children_async(group_offsets_path(group)))
            for group in groups
        ]
        listed = []
        for group, read in reads:
            try:
                topics = self._zk.wait(read)
            except NoNodeError:
                continue  # no offsets, or deleted since the listing
            if any(_is_topic_name(topic) for topic in topics):
                listed.append(group)
        return sorted(listed)

    def delete(self, group: str) -> bool:
        """Remove the group's subtree; whether it held an offset.

        One transaction, unless the subtree is larger than a request may be:
        then several, children first, so that a retry finishes the job.
        """
        root = group_path(group)
        depth = root.count("/") + 3  # root/offsets/<topic>/<partition>
        stored = False
        for _ in range(RETRIES):
            try:
                paths = subtree(self._zk, root)
            except NoNodeError:
                if self._zk.exists(root) is None:
                    self._forget(group)
                    return stored
                continue  # a part went while it was listed: list again
            self._forget(group)
            stored = stored or any(path.count("/") == depth for path in paths)
            for batch in _batches(self._zk, paths):
                transaction = self._zk.transaction()
                for path in batch:
                    transaction.delete(path)
                failure = failed_op(self._zk.commit(transaction))
                if failure is not None:
                    if not isinstance(failure[1], NoNodeError | NotEmptyError):
                        raise failure[1]
                    break  # a commit or a deletion came meanwhile: list again
            else:
                return stored
        raise StorageError(
            f"group {group!r}: {self._zk.full_path(root)} kept changing while being deleted"
        )

    def fence_for(self, topic: str, partition: int) -> OffsetFence | None:
        stat = self._zk.exists(state_path(topic, partition))
        return None if stat is None else OffsetFence(topic, partition, stat.version)

    def _remember(self, group: str, keys: Iterable[Key]) -> None:
        with self._lock:
            self._known.setdefault(group, set()).update(keys)

    def _forget(self, group: str) -> None:
        with self._lock:
            self._known.pop(group, None)


def _batches(zk: KazooBridge, paths: list[str]) -> list[list[str]]:
    batches: list[list[str]] = [[]]
    size = 0
    for path in paths:
        cost = len(zk.full_path(path).encode()) + _OP_OVERHEAD_BYTES
        if batches[-1] and size + cost > MAX_REQUEST_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += cost
    return batches


def _is_topic_name(name: str) -> bool:
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return False
    return True
