"""``/ready``: whether this broker should receive traffic (a Kubernetes readiness probe).

Ready once the broker is registered with its coordinator, holds the role the
partition states give it for every partition it hosts (leader, or follower
of the right leader), and is in the ISR of every partition it follows. A
broker catching up after a restart is therefore not ready, which is what a
rolling restart waits for. Runs on the event loop, like the collector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["not_ready_reason"]


def not_ready_reason(broker: Broker) -> str | None:
    """None when ready; otherwise why not, naming the first partition in the way."""
    if broker.stopping:
        return "shutting down"
    if not broker.registered:
        return "not registered with the coordinator yet"
    me = broker.broker_id
    replicas = broker.replicas
    for (topic, partition), state in broker.partition_states.items():
        assignment = broker.topics.get(topic)
        if assignment is None or me not in assignment.replicas.get(partition, ()):
            continue
        name = f"{topic}-{partition}"
        if state.leader == me:
            if (topic, partition) not in replicas.leaders:
                return f"{name}: not leading yet (leader epoch {state.leader_epoch})"
        elif state.leader >= 0:
            role = replicas.followers.get((topic, partition))
            if role is None or role.leader_id != state.leader:
                return f"{name}: not following broker {state.leader} yet"
            if me not in state.isr:
                return f"{name}: catching up, not in the ISR {list(state.isr)}"
    return None
