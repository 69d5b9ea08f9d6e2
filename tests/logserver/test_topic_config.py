"""Topic settings: what CreateTopics and AlterConfigs may set, and the log config they yield."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.errors import InvalidConfigurationError
from logserver.log import LogConfig
from logserver.topic_config import TOPIC_ONLY_KEYS, check_topic_config, log_config_for

BASE = LogConfig(segment_bytes=4096, retention_ms=60_000, file_delete_delay_ms=0)


# -- check_topic_config --------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"cleanup.policy": "delete"},
        {"min.insync.replicas": "1"},
        {"min.insync.replicas": "3"},
        {"min.insync.replicas": " 2 "},
        {"min.insync.replicas": 2},
        {"unclean.leader.election.enable": "true"},
        {"unclean.leader.election.enable": "FALSE"},
        {"unclean.leader.election.enable": "True"},
        {"retention.ms": "-1", "retention.bytes": "1048576", "segment.bytes": "1048576"},
        {"flush.messages": "", "flush.ms": "1000"},
        {name: value for name, value in LogConfig().to_properties().items() if value},
    ],
)
def test_valid_topic_configs_pass(overrides):
    check_topic_config(overrides)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"cleanup.policy": "compact"}, "cleanup.policy='compact': only 'delete' is supported"),
        ({"cleanup.policy": "compact,delete"}, "compaction is not built"),
        ({"cleanup.policy": ""}, "cleanup.policy=''"),
        ({"min.insync.replicas": "0"}, "min.insync.replicas='0': must be an integer >= 1"),
        ({"min.insync.replicas": "-1"}, "min.insync.replicas='-1'"),
        ({"min.insync.replicas": "two"}, "min.insync.replicas='two'"),
        ({"min.insync.replicas": "1.5"}, "min.insync.replicas='1.5'"),
        ({"min.insync.replicas": ""}, "min.insync.replicas=''"),
        ({"min.insync.replicas": 0}, "min.insync.replicas=0"),
        ({"unclean.leader.election.enable": "yes"}, "must be true or false"),
        ({"unclean.leader.election.enable": "1"}, "unclean.leader.election.enable='1'"),
        ({"retention.ms": "forever"}, "retention.ms='forever': not an integer"),
        ({"retention.ms": "-2"}, "retention.ms=-2: must be -1 (forever) or >= 0"),
        ({"segment.bytes": "10"}, "segment.bytes=10: must be between 14"),
        ({"segment.bytes": ""}, "segment.bytes needs a value"),
        ({"compression.type": "lz4"}, "unknown log config 'compression.type'"),
        ({"retention_ms": "1"}, "unknown log config 'retention_ms'"),
    ],
)
def test_bad_topic_configs_name_the_key_and_value(overrides, fragment):
    with pytest.raises(InvalidConfigurationError) as info:
        check_topic_config(overrides)
    assert fragment in str(info.value)


def test_log_keys_are_checked_before_topic_keys():
    with pytest.raises(InvalidConfigurationError, match="segment"):
        check_topic_config({"cleanup.policy": "compact", "segment.bytes": "x"})


def test_min_insync_replicas_with_a_superscript_digit_is_invalid():
    with pytest.raises(InvalidConfigurationError):
        check_topic_config({"min.insync.replicas": "\u00b2"})


# ASCII only: non-ASCII digits are refused (tested above).
ASCII_TEXT = st.text(st.characters(max_codepoint=127), max_size=6)


@given(st.dictionaries(st.sampled_from(sorted(TOPIC_ONLY_KEYS)), ASCII_TEXT))
def test_topic_only_keys_either_pass_or_raise_invalid_configuration(overrides):
    try:
        check_topic_config(overrides)
    except InvalidConfigurationError:
        return
    # What passed is what the broker will store: check it is what the rules allow.
    if "min.insync.replicas" in overrides:
        assert int(overrides["min.insync.replicas"]) >= 1
    if "cleanup.policy" in overrides:
        assert overrides["cleanup.policy"] == "delete"
    if "unclean.leader.election.enable" in overrides:
        assert overrides["unclean.leader.election.enable"].lower() in ("true", "false")


# -- log_config_for ------------------------------------------------------------------


def test_no_overrides_is_the_base_itself():
    assert log_config_for({}, BASE) is BASE


def test_topic_only_keys_do_not_touch_the_log_config():
    overrides = {
        "cleanup.policy": "delete",
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
    }
    assert log_config_for(overrides, BASE) is BASE


def test_overrides_apply_on_top_of_the_base():
    config = log_config_for({"retention.ms": "1000", "min.insync.replicas": "2"}, BASE)
    assert config.retention_ms == 1000
    assert config.segment_bytes == BASE.segment_bytes
    assert config.file_delete_delay_ms == 0
    assert BASE.retention_ms == 60_000  # the base is not changed


def test_every_log_property_can_be_overridden():
    props = {
        "segment.bytes": "2048",
        "segment.ms": "5",
        "segment.index.bytes": "1200",
        "index.interval.bytes": "0",
        "retention.ms": "-1",
        "retention.bytes": "100",
        "flush.messages": "3",
        "flush.ms": "7",
        "max.message.bytes": "99",
        "file.delete.delay.ms": "11",
    }
    assert set(props) == set(LogConfig.property_names())
    config = log_config_for(props, BASE)
    assert config.to_properties() == props


def test_an_empty_optional_value_unsets_it():
    base = LogConfig(flush_messages=10)
    assert log_config_for({"flush.messages": ""}, base).flush_messages is None


def test_log_config_for_rejects_bad_log_values():
    with pytest.raises(InvalidConfigurationError, match="not an integer"):
        log_config_for({"retention.bytes": "1 GB"}, BASE)
    with pytest.raises(InvalidConfigurationError, match="unknown log config"):
        log_config_for({"cleanup.polcy": "delete"}, BASE)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "retention.ms": st.integers(-1, 10**12).map(str),
            "retention.bytes": st.integers(-1, 10**12).map(str),
            "segment.bytes": st.integers(14, 2**31 - 1).map(str),
            "min.insync.replicas": st.integers(1, 5).map(str),
        },
    )
)
def test_checked_overrides_always_make_a_log_config(overrides):
    check_topic_config(overrides)
    config = log_config_for(overrides, BASE)
    for key, value in overrides.items():
        if key not in TOPIC_ONLY_KEYS:
            assert config.to_properties()[key] == value
