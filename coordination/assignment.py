"""Which brokers hold each partition of a new topic: Kafka's replica assignment.

Kafka's ``AdminUtils.assignReplicasToBrokers``, in its two flavours:

- **rack-unaware** (``assign_replicas``): brokers in id order. Partition ``p``
  is led by broker ``(p + start_index) mod n``; the followers come after it at
  a distance that grows by one every ``n`` partitions, so leaders spread
  evenly and replica sets differ.
- **rack-aware** (``assign_replicas_rack_aware``): the same round-robin over
  the *rack-alternated* broker list (racks sorted by name, each rack's brokers
  by id, one broker from each rack in turn). A follower is skipped while its
  rack already holds a replica of the partition and some rack holds none, and
  always when it already holds one. Each partition thus spans
  ``min(replication_factor, racks)`` racks.

``assign_replicas_to_brokers`` picks between them the way Kafka does: racks on
every live broker → rack-aware, on none → rack-unaware, on some only → refused
with ``IncompleteRackInformationError``. Both coordinators call it, so they
place replicas alike and refuse the same requests with the same messages.

Pure functions: the caller chooses ``start_index`` (the ZooKeeper coordinator
picks it at random so successive topics do not all lead on the same broker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from client.errors import (
    InvalidPartitionsError,
    InvalidReplicationFactorError,
)
from coordination.model import BrokerInfo

__all__ = [
    "IncompleteRackInformationError",
    "assign_replicas",
    "assign_replicas_rack_aware",
    "assign_replicas_to_brokers",
    "rack_alternated_brokers",
]

Assignment = dict[int, tuple[int, ...]]
"""Partition → replica broker ids, preferred leader first."""


class IncompleteRackInformationError(InvalidReplicationFactorError):
    """Some live brokers have a rack and others do not, so replicas cannot be spread over racks.

    Kafka refuses the same way ("Not all brokers have rack information for
    replica rack aware assignment"). On the wire it reads
    INVALID_REPLICATION_FACTOR, the code Kafka uses when the live brokers
    cannot hold the replicas asked for; the message names the brokers.
    """

    def __init__(self, message: str, *, brokers_without_rack: Sequence[int]):
        super().__init__(message)
        self.brokers_without_rack = tuple(brokers_without_rack)


def assign_replicas_to_brokers(
    topic: str,
    brokers: Iterable[BrokerInfo],
    partitions: int,
    replication_factor: int,
    *,
    start_index: int = 0,
) -> Assignment:
    """Assign over the live ``brokers``: rack-aware when every one has a rack, else rack-unaware.

    Raises ``InvalidPartitionsError`` (partitions < 1),
    ``InvalidReplicationFactorError`` (< 1, or more than the brokers) and
    ``IncompleteRackInformationError`` (some brokers have a rack, some not),
    in that order of checking.
    """
    live = sorted(brokers, key=lambda b: b.broker_id)
    _check(topic, len(live), partitions, replication_factor)
    without_rack = [b.broker_id for b in live if b.rack is None]
    if len(without_rack) == len(live):
        ids = [b.broker_id for b in live]
        return assign_replicas(topic, ids, partitions, replication_factor, start_index=start_index)
    if without_rack:
        with_rack = [b.broker_id for b in live if b.rack is not None]
        raise IncompleteRackInformationError(
            f"topic {topic!r}: not all brokers have rack information for rack-aware replica "
            f"assignment (without a rack: brokers {without_rack}; with one: brokers "
            f"{with_rack}); set BROKER_RACK on all brokers or on none",
            brokers_without_rack=without_rack,
        )
    racks = {b.broker_id: b.rack for b in live if b.rack is not None}
    return assign_replicas_rack_aware(
        topic, racks, partitions, replication_factor, start_index=start_index
    )


def assign_replicas(
    topic: str,
    broker_ids: Sequence[int],
    partitions: int,
    replication_factor: int,
    *,
    start_index: int = 0,
) -> Assignment:
    """Kafka's rack-unaware assignment: partition → replica broker ids, leader first.

    Partition ``p`` is led by broker ``(p + start_index) mod n``, so leaders
    spread evenly; the followers come after it at a distance that shifts by
    one every ``n`` partitions, so replica sets differ too. Brokers are taken
    in id order.

    Raises ``InvalidPartitionsError`` (partitions < 1) and
    ``InvalidReplicationFactorError`` (< 1, or more than ``len(broker_ids)``).
    """
    brokers = sorted(broker_ids)
    n = len(brokers)
    _check(topic, n, partitions, replication_factor)
    assignment: Assignment = {}
    shift = start_index
    for p in range(partitions):
        if p > 0 and p % n == 0:
            shift += 1
        first = (p + start_index) % n
        followers = (_follower(first, shift, j, n) for j in range(replication_factor - 1))
        assignment[p] = (brokers[first], *(brokers[i] for i in followers))
    return assignment


def assign_replicas_rack_aware(
    topic: str,
    racks: Mapping[int, str],
    partitions: int,
    replication_factor: int,
    *,
    start_index: int = 0,
) -> Assignment:
    """Kafka's rack-aware assignment over ``racks`` (broker id → rack).

    Leaders go round-robin over ``rack_alternated_brokers(racks)`` from
    ``start_index``. Followers are walked like the rack-unaware ones (the shift
    scaled by the number of racks) and a broker is skipped if it already holds
    a replica of the partition, or if its rack does while another rack holds
    none. So a partition spans ``min(replication_factor, number of racks)``
    racks, and with as many replicas as racks and equal racks the replicas
    spread evenly over brokers too.

    Raises ``InvalidPartitionsError`` and ``InvalidReplicationFactorError`` like
    ``assign_replicas``.
    """
    brokers = rack_alternated_brokers(racks)
    n = len(brokers)
    _check(topic, n, partitions, replication_factor)
    rack_count = len(set(racks.values()))
    assignment: Assignment = {}
    shift = start_index
    for p in range(partitions):
        if p > 0 and p % n == 0:
            shift += 1
        first = (p + start_index) % n
        leader = brokers[first]
        replicas = [leader]
        racks_used = {racks[leader]}
        k = 0
        while len(replicas) < replication_factor:
            # RF <= n, so some broker is still free; and a rack with no replica yet has
            # a free broker: the walk (over every index but ``first``) always finds one.
            broker = brokers[_follower(first, shift * rack_count, k, n)]
            k += 1
            rack = racks[broker]
            if broker in replicas or (rack in racks_used and len(racks_used) < rack_count):
                continue
            replicas.append(broker)
            racks_used.add(rack)
        assignment[p] = tuple(replicas)
    return assignment


def rack_alternated_brokers(racks: Mapping[int, str]) -> list[int]:
    """Broker ids taking one from each rack in turn: racks by name, brokers by id.

    ``{0: "r1", 1: "r3", 2: "r3", 3: "r2", 4: "r2", 5: "r1"}`` → ``[0, 3, 1, 5, 4, 2]``.
    A rack that runs out is passed over.
    """
    by_rack: dict[str, list[int]] = {}
    for broker_id, rack in racks.items():
        by_rack.setdefault(rack, []).append(broker_id)
    columns = [sorted(by_rack[rack]) for rack in sorted(by_rack)]
    depth = max((len(column) for column in columns), default=0)
    return [column[row] for row in range(depth) for column in columns if row < len(column)]


def _follower(first: int, shift: int, j: int, n: int) -> int:
    """Index of the ``j``-th follower candidate: Kafka's ``replicaIndex``, never ``first``."""
    return (first + 1 + (shift + j) % (n - 1)) % n


def _check(topic: str, broker_count: int, partitions: int, replication_factor: int) -> None:
    if not _is_int(partitions) or partitions < 1:
        raise InvalidPartitionsError(
            f"topic {topic!r}: number of partitions must be at least 1, not {partitions!r}"
        )
    if not _is_int(replication_factor) or replication_factor < 1:
        raise InvalidReplicationFactorError(
            f"topic {topic!r}: replication factor must be at least 1, not {replication_factor!r}"
        )
    if replication_factor > broker_count:
        raise InvalidReplicationFactorError(
            f"topic {topic!r}: replication factor {replication_factor} is larger than "
            f"the {broker_count} available broker{'s' if broker_count != 1 else ''}"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
