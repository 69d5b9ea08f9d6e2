"""The public API, pinned: adding or dropping a name is a deliberate change to this file."""

from __future__ import annotations

import importlib

import pytest

CLIENT_API = [
    "Admin",
    "BatchBuilder",
    "BlockingAdmin",
    "BlockingConsumer",
    "BlockingDeadLetterQueue",
    "BlockingProducer",
    "CommitFailedError",
    "Compression",
    "Consumer",
    "ConsumerRecord",
    "DeadLetterQueue",
    "MaxPollIntervalExceededError",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "Producer",
    "Record",
    "RecordBatch",
    "RecordFuture",
    "RecordMetadata",
    "TopicPartition",
    "errors",
    "iter_batches",
]

RECORD_API = [
    "BatchBuilder",
    "BatchHeader",
    "Compression",
    "HEADER_SIZE",
    "IncompleteBatchError",
    "LOG_OVERHEAD",
    "MAGIC",
    "Record",
    "RecordBatch",
    "build_batch",
    "check_batch",
    "compute_crc",
    "iter_batches",
    "read_header",
    "stamp_batch",
]

PUBLIC_APIS = {"client": CLIENT_API, "client.record": RECORD_API}


def test_pinned_lists_are_sorted():
    assert sorted(CLIENT_API) == CLIENT_API
    assert sorted(RECORD_API) == RECORD_API


@pytest.mark.parametrize(("module_name", "expected"), PUBLIC_APIS.items())
def test_all_is_pinned(module_name, expected):
    module = importlib.import_module(module_name)

    assert sorted(module.__all__) == expected
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize(
    ("module_name", "name"),
    [(module_name, name) for module_name, names in PUBLIC_APIS.items() for name in names],
)
def test_every_public_name_is_importable(module_name, name):
    module = importlib.import_module(module_name)

    assert getattr(module, name) is not None


@pytest.mark.parametrize(("module_name", "expected"), PUBLIC_APIS.items())
def test_star_import_exports_exactly_the_public_names(module_name, expected):
    namespace: dict[str, object] = {}
    exec(f"from {module_name} import *", namespace)

    assert sorted(set(namespace) - {"__builtins__"}) == expected


def test_client_reexports_are_the_record_package_objects():
    import client
    import client.record

    assert vars(client)["errors"] is importlib.import_module("client.errors")
    for name in ["BatchBuilder", "Compression", "Record", "RecordBatch", "iter_batches"]:
        assert getattr(client, name) is getattr(client.record, name)
