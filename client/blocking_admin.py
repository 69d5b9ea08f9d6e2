"""``BlockingAdmin``: the admin client for scripts, with the asyncio ``Admin`` underneath.

Each instance runs its own ``Admin`` on its own ``LoopThread``; every method
submits the matching coroutine there and waits, so errors, retries and
results are exactly the async client's. ``close`` (or leaving the ``with``
block) closes the connections and stops the thread. Calling a method from
inside the admin's own loop thread raises ``RuntimeError`` instead of
deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from client.admin import Admin, OffsetSpec
from client.admin_types import (
    ClusterDescription,
    ConfigEntry,
    GroupDescription,
    GroupListing,
    TopicDescription,
)
from client.errors import LogServerError
from client.loop_thread import LoopThread
from client.topic_partition import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = ["BlockingAdmin"]


class BlockingAdmin:
    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "logserver-admin",
        request_timeout_ms: int = 30_000,
    ) -> None:
        self._admin = Admin(
            bootstrap_servers, client_id=client_id, request_timeout_ms=request_timeout_ms
        )
        self._thread: LoopThread | None = LoopThread(name=f"{client_id}-loop")

    def _loop(self) -> LoopThread:
        if self._thread is None:
            raise RuntimeError("the admin client is closed")
        return self._thread

    def start(self) -> None:
        self._loop().run(self._admin.start())

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            thread.run(self._admin.close())
        finally:
            thread.stop()

    def __enter__(self) -> BlockingAdmin:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create_topic(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        config: Mapping[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        self._loop().run(
            self._admin.create_topic(
                name, num_partitions, replication_factor, config, validate_only=validate_only
            )
        )

    def delete_topic(self, name: str) -> None:
        self._loop().run(self._admin.delete_topic(name))

    def list_topics(self) -> list[str]:
        return self._loop().run(self._admin.list_topics())

    def describe_topic(self, name: str) -> TopicDescription:
        return self._loop().run(self._admin.describe_topic(name))

    def describe_configs(self, topic: str) -> dict[str, ConfigEntry]:
        return self._loop().run(self._admin.describe_configs(topic))

    def alter_configs(
        self, topic: str, set: Mapping[str, str] | None = None, delete: Iterable[str] = ()
    ) -> None:
        self._loop().run(self._admin.alter_configs(topic, set, tuple(delete)))

    def list_offsets(
        self, requests: Mapping[TopicPartition, OffsetSpec]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        return self._loop().run(self._admin.list_offsets(dict(requests)))

    def describe_cluster(self) -> ClusterDescription:
        return self._loop().run(self._admin.describe_cluster())

    def describe_topics(self, names: Iterable[str] | None = None) -> dict[str, TopicDescription]:
        wanted = None if names is None else tuple(names)
        return self._loop().run(self._admin.describe_topics(wanted))

    def elect_leaders(
        self, topics: Iterable[str] | None = None
    ) -> dict[TopicPartition, LogServerError | None]:
        wanted = None if topics is None else tuple(topics)
        return self._loop().run(self._admin.elect_leaders(wanted))

    def list_groups(self, states: Iterable[str] | None = None) -> list[GroupListing]:
        wanted = None if states is None else tuple(states)
        return self._loop().run(self._admin.list_groups(wanted))

    def describe_groups(self, group_ids: Iterable[str]) -> dict[str, GroupDescription]:
        return self._loop().run(self._admin.describe_groups(tuple(group_ids)))

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, LogServerError | None]:
        return self._loop().run(self._admin.delete_groups(tuple(group_ids)))

    def list_group_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        wanted = None if partitions is None else tuple(partitions)
        return self._loop().run(self._admin.list_group_offsets(group_id, wanted))

    def alter_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, int | OffsetAndMetadata]
    ) -> None:
        self._loop().run(self._admin.alter_group_offsets(group_id, dict(offsets)))
