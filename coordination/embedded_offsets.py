"""The standalone coordinator's committed offsets: one JSON file per group (blocking).

    <data_dir>/__coordinator/consumers/<encoded group>.json
        {"version": 1, "group": "<group id>",
         "offsets": {"<topic>": {"<partition>": {"offset": 42, "metadata": "",
                                                 "commit_timestamp": <ms>}}}}

``<encoded group>`` is ``coordination.offsets.encode_group``. When that name
with ``.json`` is longer than the 255 bytes a file name may have (a
255-character group id is), the file is ``<first 120 characters of it>+<sha256
of the id>.json`` instead: ``+`` is never in an encoded id, so the two forms
cannot meet, and the file's ``group`` says whose it is. A file is replaced
atomically (``atomic_files``) at every commit.

A file that cannot be read or parsed does not stop the broker: ``load`` logs
it and hands back its error, which the coordinator raises (``StorageError``
naming the file) whenever that group's offsets are read or committed, until
the group's offsets are deleted (which removes the file) or the file is fixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from client.errors import InvalidGroupIdError, InvalidTopicError, StorageError
from client.topics import validate_topic_name
from coordination.atomic_files import remove_file, replace_file, scan
from coordination.model import CommittedOffset
from coordination.offsets import (
    decode_group,
    encode_group,
    is_partition_name,
    offset_fields,
    parse_offset_fields,
    validate_group_id,
)

__all__ = [
    "CONSUMERS_DIR",
    "LoadedOffsets",
    "file_name",
    "group_of",
    "load",
    "remove_offsets_file",
    "write_offsets_file",
]

log = logging.getLogger(__name__)

CONSUMERS_DIR = "consumers"
_SUFFIX = ".json"
_HASHED = "+"
_MAX_FILE_NAME_BYTES = 255
_PREFIX_CHARS = 120
_HASHED_STEM = re.compile(r"[A-Za-z0-9_.~%-]*\+[0-9a-f]{64}")
_VERSION = 1

Key = tuple[str, int]
Offsets = dict[Key, CommittedOffset]


def file_name(group: str) -> str:
    """The name of ``group``'s file (see the module doc); always at most 255 bytes."""
    encoded = encode_group(group)  # ASCII
    if len(encoded) + len(_SUFFIX) <= _MAX_FILE_NAME_BYTES:
        return encoded + _SUFFIX
    prefix = encoded[:_PREFIX_CHARS]
    escape = prefix.rfind("%", len(prefix) - 2)
    if escape != -1:
        prefix = prefix[:escape]  # not half an escape
    digest = hashlib.sha256(group.encode()).hexdigest()
    return f"{prefix}{_HASHED}{digest}{_SUFFIX}"


def group_of(name: str) -> str | None:
    """The group a file name belongs to, when the name says (not for hashed names)."""
    stem = name.removesuffix(_SUFFIX)
    if stem == name or _HASHED in stem:
        return None
    return decode_group(stem)


def _is_ours(name: str) -> bool:
    stem = name.removesuffix(_SUFFIX)
    return stem != name and (group_of(name) is not None or bool(_HASHED_STEM.fullmatch(stem)))


@dataclasses.dataclass
class LoadedOffsets:
    """What ``load`` found: the offsets of each group, and the error of each file that
    could not be loaded, by file name."""

    groups: dict[str, Offsets]
    corrupt: dict[str, str]


def load(directory: Path) -> LoadedOffsets:
    loaded = LoadedOffsets({}, {})
    for entry in scan(directory, "consumer group offsets file"):
        path = Path(entry.path)
        if (
            not entry.is_file(follow_symlinks=False)
            or not entry.name.endswith(_SUFFIX)
            or not _is_ours(entry.name)
        ):
            log.warning("%s: not a consumer group offsets file; left alone", path)
            continue
        try:
            group, offsets = _read(path)
        except StorageError as exc:
            log.error("%s; the broker goes on, and reports it when the group is read", exc)
            loaded.corrupt[entry.name] = str(exc)
            continue
        loaded.groups[group] = offsets
    return loaded


def _read(path: Path) -> tuple[str, Offsets]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StorageError(f"{path}: cannot read a consumer group offsets file: {exc}") from exc
    try:
        return _decode(raw, path.name)
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        InvalidGroupIdError,
        InvalidTopicError,
    ) as exc:
        raise StorageError(
            f"{path}: corrupt consumer group offsets file ({type(exc).__name__}: {exc}); "
            "restore it, or delete the group's offsets to start it afresh"
        ) from exc


def _decode(raw: bytes, name: str) -> tuple[str, Offsets]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("version") != _VERSION:
        raise ValueError(f"unknown version {data.get('version')!r}")
    group = data["group"]
    validate_group_id(group)
    if file_name(group) != name:
        raise ValueError(f"the file names group {group!r}, whose file is {file_name(group)}")
    topics = data["offsets"]
    if not isinstance(topics, dict):
        raise ValueError("offsets is not a JSON object")
    offsets: Offsets = {}
    for topic, partitions in topics.items():
        validate_topic_name(topic)
        if not isinstance(partitions, dict):
            raise ValueError(f"topic {topic!r}: not a JSON object")
        for partition, fields in partitions.items():
            if not is_partition_name(partition):
                raise ValueError(f"topic {topic!r}: partition {partition!r} is not a number")
            offsets[(topic, int(partition))] = parse_offset_fields(fields)
    return group, dict(sorted(offsets.items()))


def write_offsets_file(directory: Path, group: str, offsets: Offsets) -> None:
    """Replace ``group``'s file with ``offsets``; ``StorageError`` naming it on failure."""
    path = directory / file_name(group)
    try:
        replace_file(path, _encode(group, offsets))
    except OSError as exc:
        raise StorageError(f"{path}: cannot write the offsets of group {group!r}: {exc}") from exc


def remove_offsets_file(directory: Path, group: str) -> None:
    path = directory / file_name(group)
    try:
        remove_file(path)
    except OSError as exc:
        raise StorageError(f"{path}: cannot remove the offsets of group {group!r}: {exc}") from exc


def _encode(group: str, offsets: Offsets) -> bytes:
    topics: dict[str, dict[str, Any]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        topics.setdefault(topic, {})[str(partition)] = offset_fields(offset)
    payload = {"version": _VERSION, "group": group, "offsets": topics}
    return json.dumps(payload, indent=1).encode() + b"\n"
