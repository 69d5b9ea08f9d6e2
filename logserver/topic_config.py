"""Per-topic settings: what CreateTopics and AlterConfigs may set, checked before storing.

The log's own settings come from ``LogConfig`` (Kafka's names); the others are
topic-level policies the broker applies around the log.
"""

from __future__ import annotations

from collections.abc import Mapping

from client.errors import InvalidConfigurationError
from logserver.log.config import LogConfig

__all__ = ["TOPIC_ONLY_KEYS", "check_topic_config", "log_config_for"]

# Kafka's topic keys we accept besides the log's own. Compaction is not built:
# ``cleanup.policy`` accepts only ``delete`` and says so.
TOPIC_ONLY_KEYS = {"cleanup.policy", "min.insync.replicas", "unclean.leader.election.enable"}


def check_topic_config(overrides: Mapping[str, str]) -> None:
    """Raise ``InvalidConfigurationError`` naming the first bad key or value."""
    log_keys = {k: v for k, v in overrides.items() if k not in TOPIC_ONLY_KEYS}
    LogConfig.from_properties(log_keys)
    policy = overrides.get("cleanup.policy")
    if policy is not None and policy != "delete":
        raise InvalidConfigurationError(
            f"cleanup.policy={policy!r}: only 'delete' is supported (compaction is not built)"
        )
    isr = overrides.get("min.insync.replicas")
    text = str(isr).strip() if isr is not None else ""
    if isr is not None and (not (text.isascii() and text.isdigit()) or int(text) < 1):
        raise InvalidConfigurationError(f"min.insync.replicas={isr!r}: must be an integer >= 1")
    unclean = overrides.get("unclean.leader.election.enable")
    if unclean is not None and str(unclean).lower() not in ("true", "false"):
        raise InvalidConfigurationError(
            f"unclean.leader.election.enable={unclean!r}: must be true or false"
        )


def log_config_for(overrides: Mapping[str, str], base: LogConfig) -> LogConfig:
    """The log settings of a topic: broker defaults with the topic's overrides on top."""
    log_keys = {k: v for k, v in overrides.items() if k not in TOPIC_ONLY_KEYS}
    return LogConfig.from_properties(log_keys, base=base) if log_keys else base
