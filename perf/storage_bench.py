"""Storage benchmark of the partition log: append, read and recovery throughput.

Run from the repository root with the project's virtualenv::

    python perf/storage_bench.py [--json] [--dir DIR] [--total-mb N] [--recovery-mb N]

What it measures, in one run and in one directory (a fresh ``mkdtemp`` under
``--dir`` or the system temp dir, removed at the end):

1. Append throughput of pre-built batches of 1 KiB and 16 KiB into a fresh
   ``PartitionLog`` with the default ``LogConfig`` (flush off: the OS decides
   when to write back), on both input paths of ``PartitionLog.append``:
   *in place*, writable buffers (``bytearray``) that the log stamps where they
   lie and hands to one ``write`` -- the broker's path, since it reads each
   produce request into a buffer it owns -- and *bytes*, immutable batches the
   log stamps with a ``writev`` of a 16-byte prefix plus the rest. The bars are
   judged on the in-place path; both are printed. Only the append loop is
   timed; ``close()`` runs after the timer stops. Against it, on the same bytes in the
   same directory: a raw baseline (``O_WRONLY|O_CREAT|O_APPEND`` and one
   ``os.write`` per batch, the syscall pattern the log must follow since every
   acknowledged batch is handed to the OS) and, for context, a buffered
   baseline (a Python file object, ``f.write`` per batch, final ``flush``).
   The three run interleaved, in rotating order, ``--reps`` times; the best of
   each is kept. Every run writes a fresh file, is fsynced and deleted after its
   timer stops, so no run starts with another's dirty pages, and just before
   its timer starts the memory it will need is touched and freed (``prefault``),
   so no run pays for pages the VM returned to its host.
2. Read throughput from offset 0 to the end of a 16 KiB-batch log:
   ``PartitionLog.read(offset, 1 MiB)`` then ``FileSlice.read_bytes()``,
   advancing past the last batch of each slice by walking batch lengths; and a
   variant that CRC-checks every batch with ``iter_batches(validate=True)``
   (the client-side validation cost).
3. Recovery: a log of 16 KiB batches (``--recovery-mb``) and one of 1 KiB
   batches (a quarter of that) is closed uncleanly (``close_handlers``), its
   ``partition.checkpoint`` removed so everything from offset 0 is
   re-validated, and ``PartitionLog.open`` is timed. The log files are fsynced
   before, so recovery reads clean pages from a warm page cache.

The batches cycle through a small pool (``--pool-mb``, default 128 KiB) that
stays in the CPU cache: when the broker appends a batch it has just read it
from its socket, so the CRC check and the write both find it in the cache, for
the raw baseline as for the log. ``--pool-mb 512`` shows the cold-memory case,
where the log's CRC pass pays a memory read the raw write does not.

``--total-mb`` is the amount written per 16 KiB append run; the 1 KiB runs
write a quarter of it. MB is 10**6 bytes, MiB 2**20, GiB 2**30. Speed bars are
printed, never enforced: the exit status is 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.metadata
import io
import json
import mmap
import os
import platform
import pstats
import random
import shutil
import struct
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crc32c

from client.record import BatchBuilder, iter_batches, read_header
from client.record.layout import STAMP
from client.record.validation import check_single_batch
from logserver.log import LogConfig, PartitionLog

MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000
KIB = 1024

BATCH_SIZES = {"1KiB": 1 * KIB, "16KiB": 16 * KIB}
SMALL_FRACTION = 4  # the 1 KiB cases write a quarter of the 16 KiB amount
READ_MAX_BYTES = MIB
BASE_TIMESTAMP = 1_700_000_000_000
CHECKPOINT_FILE = "partition.checkpoint"
CLEAN_SHUTDOWN_FILE = ".clean-shutdown"

BARS = {
    "append_16k_ratio_min": 0.70,
    "append_1k_ratio_min": 0.40,
    "recovery_mb_s_min": 500.0,
}
CACHE_STATE = (
    "warm: every file read (read and recovery phases) was written and fsynced just "
    "before, so its pages are clean and resident in the page cache"
)

_LENGTH = struct.Struct(">i")
_LOG_OVERHEAD = 12  # base_offset + batch_length


def progress(message: str) -> None:
    print(f"[storage_bench] {message}", file=sys.stderr, flush=True)


# -- batches ------------------------------------------------------------------------


def _build(value: bytes, timestamp_ms: int) -> bytes:
    builder = BatchBuilder()
    builder.append(value, timestamp_ms=timestamp_ms)
    return builder.build()


def _value_length(size: int) -> int:
    """The value length that makes a one-record uncompressed batch exactly ``size`` bytes."""
    guess = max(0, size - 80)
    overhead = len(_build(b"x" * guess, BASE_TIMESTAMP)) - guess
    # msgpack bin headers grow at 256 and 65536 bytes: try the lengths around the estimate.
    for length in range(size - overhead + 4, max(size - overhead - 8, -1), -1):
        if len(_build(b"x" * length, BASE_TIMESTAMP)) == size:
            return length
    raise ValueError(f"cannot build a batch of exactly {size} bytes")


def build_pool(size: int, count: int, seed: int) -> list[bytes]:
    """``count`` distinct immutable batches of exactly ``size`` bytes, increasing timestamps."""
    length = _value_length(size)
    rng = random.Random(seed)
    filler = rng.randbytes(length + 4096)
    pool = []
    for i in range(count):
        start = rng.randrange(4096)
        value = i.to_bytes(8, "big") + filler[start : start + length - 8]
        batch = _build(value, BASE_TIMESTAMP + i)
        if len(batch) != size:
            raise AssertionError(f"batch {i} is {len(batch)} bytes, wanted {size}")
        pool.append(batch)
    return pool


def batch_sequence(pool: list[bytes], count: int) -> list[bytes]:
    """``count`` references cycling through ``pool``: what each timed loop iterates over."""
    return [pool[i % len(pool)] for i in range(count)]


# -- helpers ------------------------------------------------------------------------


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=False)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prefault_size(total: int) -> int:
    """What a write run of ``total`` bytes may take from free memory, with some room."""
    return total + total // 8 + 4 * MIB


def mb_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / MB


def best(values: list[float]) -> float:
    return max(values)


def prefault(nbytes: int) -> None:
    """Touch ``nbytes`` of fresh anonymous memory, then free it, right before a timed write.

    On a VM that hands freed guest pages back to the host (virtio-balloon free page
    reporting), the first write to such a page costs a host fault: writes into the
    page cache then run several times slower, depending on how long ago the pages
    were freed. Touching and freeing the memory just before a run makes the kernel
    hand the page cache recently used pages, the same for every run.
    """
    if nbytes <= 0:
        return
    with mmap.mmap(-1, nbytes) as mapped:
        chunk = b"\1" * min(nbytes, MIB)
        for _ in range(nbytes // len(chunk)):
            mapped.write(chunk)


def timed(fn: Callable[[], Any], prefault_bytes: int = 0) -> tuple[float, Any]:
    gc.collect()
    prefault(prefault_bytes)
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# -- 1. append ----------------------------------------------------------------------


def _timed_file_loop(path: Path, total: int, what: str, body: Callable[[int], None]) -> float:
    """Time ``body(fd)`` on a fresh ``O_APPEND`` file, then check it wrote ``total`` bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        seconds, _ = timed(lambda: body(fd), prefault_size(total))
        written = os.fstat(fd).st_size
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    if written != total:
        raise AssertionError(f"{what} wrote {written} bytes, expected {total}")
    return seconds


def run_raw(path: Path, batches: list[bytes], total: int) -> float:
    """One ``os.write`` per batch on an ``O_APPEND`` file; returns the loop's seconds."""

    def loop(fd: int) -> None:
        write = os.write
        for batch in batches:
            write(fd, batch)

    return _timed_file_loop(path, total, "raw baseline", loop)


def run_buffered(path: Path, batches: list[bytes], total: int) -> float:
    """A Python file object, ``f.write`` per batch and a final ``flush``; returns seconds."""
    with open(path, "ab") as f:

        def loop() -> None:
            write = f.write
            for batch in batches:
                write(batch)
            f.flush()

        seconds, _ = timed(loop, prefault_size(total))
        written = os.fstat(f.fileno()).st_size
        os.fsync(f.fileno())
    path.unlink()
    if written != total:
        raise AssertionError(f"buffered baseline wrote {written} bytes, expected {total}")
    return seconds


def run_floor(path: Path, batches: list[bytearray], total: int) -> float:
    """The least any log must do per batch: validate (CRC32C), stamp in place, ``os.write``.

    No locking, offsets, rolls or indexes: the gap between this and the log is the
    log's own bookkeeping, the gap between this and raw is the work the design
    requires (design rule 1) at Python speed.
    """

    def loop(fd: int) -> None:
        write, check, stamp = os.write, check_single_batch, STAMP.pack_into
        offset = 0
        for batch in batches:
            view = memoryview(batch)
            fields = check(view)
            if fields is None:
                raise AssertionError("the floor loop met an invalid batch")
            stamp(view, 0, offset, fields[0], -1)
            write(fd, view)
            offset += fields[1] + 1

    return _timed_file_loop(path, total, "floor loop", loop)


def append_all(log: PartitionLog, batches: list[bytes] | list[bytearray]) -> None:
    append = log.append
    for batch in batches:
        append(batch)


def check_log(log: PartitionLog, batches: list[bytes] | list[bytearray], total: int) -> None:
    if log.log_end_offset != len(batches) or log.size_bytes != total:
        raise AssertionError(
            f"log holds offsets [0, {log.log_end_offset}) in {log.size_bytes} bytes, "
            f"expected {len(batches)} batches in {total} bytes"
        )


def run_log(directory: Path, batches: list[bytes] | list[bytearray], total: int) -> float:
    """Append every batch to a fresh log (default LogConfig); close after the timer stops."""
    log = PartitionLog.open(directory, LogConfig())
    try:
        seconds, _ = timed(lambda: append_all(log, batches), prefault_size(total))
        check_log(log, batches, total)
    finally:
        log.close()
    remove_tree(directory)
    return seconds


def bench_append(
    workdir: Path, label: str, batches: list[bytes], batch_size: int, reps: int
) -> dict[str, Any]:
    total = len(batches) * batch_size
    writable: dict[int, bytearray] = {}
    in_place = [writable.setdefault(id(b), bytearray(b)) for b in batches]
    runners: dict[str, Callable[[], float]] = {
        "raw": lambda: run_raw(workdir / f"raw-{label}.bin", batches, total),
        "log_in_place": lambda: run_log(workdir / f"log-ip-{label}", in_place, total),
        "log_bytes": lambda: run_log(workdir / f"log-{label}", batches, total),
        "floor": lambda: run_floor(workdir / f"floor-{label}.bin", in_place, total),
        "buffered": lambda: run_buffered(workdir / f"buffered-{label}.bin", batches, total),
    }
    order = list(runners)
    samples: dict[str, list[float]] = {name: [] for name in order}
    for rep in range(reps):
        rotated = order[rep % len(order) :] + order[: rep % len(order)]
        for name in rotated:
            samples[name].append(runners[name]())
        progress(
            f"append {label} rep {rep + 1}/{reps}: "
            + ", ".join(f"{n} {mb_s(total, samples[n][-1]):.0f} MB/s" for n in order)
        )
    speeds = {n: [mb_s(total, s) for s in samples[n]] for n in order}
    log_mb_s, bytes_mb_s, raw_mb_s, buffered_mb_s, floor_mb_s = (
        best(speeds[n]) for n in ("log_in_place", "log_bytes", "raw", "buffered", "floor")
    )
    return {
        "batch_bytes": batch_size,
        "batches": len(batches),
        "total_bytes": total,
        "reps": reps,
        "log_mb_s": log_mb_s,
        "log_batches_s": log_mb_s * MB / batch_size,
        "log_bytes_mb_s": bytes_mb_s,
        "ratio_raw_bytes": bytes_mb_s / raw_mb_s,
        "floor_mb_s": floor_mb_s,
        "ratio_raw_floor": floor_mb_s / raw_mb_s,
        "raw_mb_s": raw_mb_s,
        "raw_batches_s": raw_mb_s * MB / batch_size,
        "buffered_mb_s": buffered_mb_s,
        "ratio_raw": log_mb_s / raw_mb_s,
        "ratio_buffered": log_mb_s / buffered_mb_s,
        "samples_mb_s": speeds,
    }


def profile_append(workdir: Path, label: str, batches: list[bytes], top: int) -> str:
    """cProfile of one (untimed) log append run; the top entries by internal time."""
    directory = workdir / f"profile-{label}"
    log = PartitionLog.open(directory, LogConfig())
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        append_all(log, batches)
        profiler.disable()
    finally:
        log.close()
    remove_tree(directory)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- 2. read ------------------------------------------------------------------------


def build_closed_log(directory: Path, batches: list[bytes], total: int) -> None:
    log = PartitionLog.open(directory, LogConfig())
    try:
        append_all(log, batches)
        check_log(log, batches, total)
    finally:
        log.close()  # fsyncs: the pages are clean and stay cached


def read_walking(log: PartitionLog) -> int:
    """Read the whole log in ``READ_MAX_BYTES`` slices, walking batch lengths; bytes read."""
    offset, end, nbytes = log.log_start_offset, log.log_end_offset, 0
    unpack_length = _LENGTH.unpack_from
    while offset < end:
        file_slice = log.read(offset, READ_MAX_BYTES)
        if file_slice is None:
            break
        data = file_slice.read_bytes()
        size = len(data)
        position = last = 0
        while position < size:
            last = position
            position += unpack_length(data, position + 8)[0] + _LOG_OVERHEAD
        header = read_header(data, last)
        offset = header.base_offset + header.last_offset_delta + 1
        nbytes += size
    return nbytes


def read_validating(log: PartitionLog) -> int:
    """The same walk, but every batch goes through ``iter_batches(validate=True)`` (CRC)."""
    offset, end, nbytes = log.log_start_offset, log.log_end_offset, 0
    while offset < end:
        file_slice = log.read(offset, READ_MAX_BYTES)
        if file_slice is None:
            break
        data = file_slice.read_bytes()
        last = deque(iter_batches(data, validate=True), maxlen=1)  # consumes, keeps the last
        if not last:
            raise AssertionError(f"empty slice at offset {offset}")
        offset = last[0].next_offset
        nbytes += len(data)
    return nbytes


def bench_read(workdir: Path, batches: list[bytes], batch_size: int, reps: int) -> dict[str, Any]:
    directory = workdir / "read-16KiB"
    total = len(batches) * batch_size
    build_closed_log(directory, batches, total)
    log = PartitionLog.open(directory, LogConfig())
    try:
        plain: list[float] = []
        validated: list[float] = []
        for rep in range(reps):
            for reader, speeds in ((read_walking, plain), (read_validating, validated)):
                seconds, nbytes = timed(lambda reader=reader: reader(log))
                if nbytes != total:
                    raise AssertionError(f"read {nbytes} bytes, the log holds {total}")
                speeds.append(mb_s(total, seconds))
            progress(
                f"read rep {rep + 1}/{reps}: {plain[-1]:.0f} MB/s, "
                f"validated {validated[-1]:.0f} MB/s"
            )
    finally:
        log.close()
    remove_tree(directory)
    return {
        "batch_bytes": batch_size,
        "total_bytes": total,
        "max_bytes": READ_MAX_BYTES,
        "reps": reps,
        "mb_s": best(plain),
        "validated_mb_s": best(validated),
        "samples_mb_s": {"plain": plain, "validated": validated},
    }


# -- 3. recovery --------------------------------------------------------------------


def make_unclean(log: PartitionLog, directory: Path) -> None:
    """Close like ``kill -9`` would, make the data clean in the page cache, drop the checkpoint."""
    log.close_handlers()
    for path in directory.iterdir():
        fsync_path(path)
    (directory / CHECKPOINT_FILE).unlink(missing_ok=True)
    if (directory / CLEAN_SHUTDOWN_FILE).exists():
        raise AssertionError("close_handlers left a clean-shutdown marker")


def bench_recovery(
    workdir: Path, label: str, batches: list[bytes], batch_size: int, reps: int
) -> dict[str, Any]:
    directory = workdir / f"recovery-{label}"
    total = len(batches) * batch_size
    log = PartitionLog.open(directory, LogConfig())
    append_all(log, batches)
    check_log(log, batches, total)
    seconds_list: list[float] = []
    report_seconds: list[float] = []
    try:
        for rep in range(reps):
            make_unclean(log, directory)
            seconds, log = timed(lambda: PartitionLog.open(directory, LogConfig()))
            report = log.recovery_report
            if (
                report.clean_shutdown
                or report.validated_from_offset != 0
                or report.bytes_validated != total
                or report.lost_data
                or log.log_end_offset != len(batches)
            ):
                raise AssertionError(f"unexpected recovery: {report.describe()}")
            seconds_list.append(seconds)
            report_seconds.append(report.seconds)
            progress(
                f"recovery {label} rep {rep + 1}/{reps}: {mb_s(total, seconds):.0f} MB/s "
                f"({seconds:.3f} s for {total / MIB:.1f} MiB)"
            )
    finally:
        log.close()
    remove_tree(directory)
    seconds = min(seconds_list)
    return {
        "batch_bytes": batch_size,
        "batches": len(batches),
        "total_bytes": total,
        "reps": reps,
        "seconds": seconds,
        "report_seconds": min(report_seconds),
        "mb_s": mb_s(total, seconds),
        "s_per_gib": seconds * GIB / total,
        "samples_mb_s": [mb_s(total, s) for s in seconds_list],
    }


# -- environment --------------------------------------------------------------------


def filesystem_of(path: Path) -> dict[str, str]:
    """Mount point, filesystem type and device holding ``path`` (from /proc/mounts)."""
    real = os.path.realpath(path)
    found = {"mount_point": "?", "type": "?", "device": "?"}
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                device, mount_point, fs_type, *_ = line.split()
                mount_point = mount_point.replace("\\040", " ")
                inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(found["mount_point"].strip("?")):
                    found = {"mount_point": mount_point, "type": fs_type, "device": device}
    except OSError:
        pass
    return found


def environment(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    try:
        crc_version = importlib.metadata.version("crc32c")
    except importlib.metadata.PackageNotFoundError:
        crc_version = "?"
    stat = os.statvfs(workdir)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "crc32c_hardware": bool(crc32c.hardware_based),
        "crc32c_version": crc_version,
        "dir": str(workdir),
        "filesystem": filesystem_of(workdir),
        "free_bytes": stat.f_bavail * stat.f_frsize,
        "loadavg_start": list(os.getloadavg()),
        "page_cache": CACHE_STATE,
        "batch_pool": f"{args.pool_mb:g} MiB of distinct batches per size, cycled "
        + (
            "(CPU-cache resident, like a batch just read from a socket)"
            if args.pool_mb <= 1
            else "(cold memory)"
        ),
        "prefault": "before each timed append run, untimed: touch and free 1.125x its bytes "
        "of anonymous memory (see prefault())",
        "flush_policy": "default LogConfig: flush.messages and flush.ms unset (OS writeback)",
        "timing": f"best of {args.reps} interleaved repetitions, time.perf_counter",
        "units": "MB = 10**6 bytes, MiB = 2**20 bytes, GiB = 2**30 bytes",
    }


# -- output -------------------------------------------------------------------------


def evaluate_bars(result: dict[str, Any]) -> dict[str, Any]:
    append, recovery = result["append"], result["recovery"]
    return {
        **BARS,
        "met": {
            "append_16k_ratio": append["16KiB"]["ratio_raw"] >= BARS["append_16k_ratio_min"],
            "append_1k_ratio": append["1KiB"]["ratio_raw"] >= BARS["append_1k_ratio_min"],
            "recovery_16k_mb_s": recovery["16KiB"]["mb_s"] >= BARS["recovery_mb_s_min"],
            "recovery_1k_mb_s": recovery["1KiB"]["mb_s"] >= BARS["recovery_mb_s_min"],
        },
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def print_table(result: dict[str, Any]) -> None:
    env, bars = result["env"], result["bars"]
    fs = env["filesystem"]
    print("Environment")
    print(f"  python          {env['implementation']} {env['python']} ({env['platform']})")
    print(f"  cpus            {env['cpu_count']} (affinity {env['cpu_affinity']})")
    print(f"  crc32c          hardware_based={env['crc32c_hardware']} ({env['crc32c_version']})")
    print(f"  directory       {env['dir']}")
    print(f"  filesystem      {fs['type']} on {fs['device']} mounted at {fs['mount_point']}")
    print(f"  load average    {' '.join(f'{x:.2f}' for x in env['loadavg_start'])} (start)")
    print(f"                  {' '.join(f'{x:.2f}' for x in env['loadavg_end'])} (end)")
    print(f"  page cache      {env['page_cache']}")
    print(f"  batch pool      {env['batch_pool']}")
    print(f"  prefault        {env['prefault']}")
    print(f"  flush policy    {env['flush_policy']}")
    print(f"  timing          {env['timing']}; {env['units']}")
    print(f"  runtime         {env['runtime_s']:.1f} s")
    print()
    print("Append (pre-built batches, fresh files, append loop only; log = in place, the")
    print("broker's path: writable buffers stamped where they lie; bytes = immutable input)")
    header = (
        f"  {'batch':>6} {'MiB':>6} {'log MB/s':>9} {'log batch/s':>12} {'raw MB/s':>9} "
        f"{'buf MB/s':>9} {'log/raw':>8} {'bar':>5} {'verdict':>8} {'log/buf':>8} "
        f"{'bytes MB/s':>10} {'bytes/raw':>9} {'floor/raw':>9}"
    )
    print(header)
    for label, key in (("1KiB", "append_1k"), ("16KiB", "append_16k")):
        case = result["append"][label]
        bar = bars[f"{key}_ratio_min"]
        print(
            f"  {label:>6} {case['total_bytes'] / MIB:>6.1f} {case['log_mb_s']:>9.0f} "
            f"{case['log_batches_s']:>12.0f} {case['raw_mb_s']:>9.0f} "
            f"{case['buffered_mb_s']:>9.0f} {case['ratio_raw']:>8.2f} {bar:>5.2f} "
            f"{_verdict(bars['met'][f'{key}_ratio']):>8} {case['ratio_buffered']:>8.2f} "
            f"{case['log_bytes_mb_s']:>10.0f} {case['ratio_raw_bytes']:>9.2f} "
            f"{case['ratio_raw_floor']:>9.2f}"
        )
    print(
        "  floor = a loop doing only what the design requires per batch (CRC32C check, "
        "stamp, write),\n  no log bookkeeping: the best any Python log could reach here"
    )
    print()
    read = result["read"]
    print(
        f"Read (16 KiB batches, {read['total_bytes'] / MIB:.0f} MiB, "
        f"read(offset, max_bytes={read['max_bytes']}) + read_bytes)"
    )
    print(f"  plain (walk batch lengths)          {read['mb_s']:>9.0f} MB/s")
    print(f"  validated (iter_batches, CRC check) {read['validated_mb_s']:>9.0f} MB/s")
    print()
    print("Recovery (unclean close, checkpoint removed, PartitionLog.open re-validates all)")
    print(
        f"  {'batch':>6} {'MiB':>6} {'seconds':>8} {'MB/s':>8} {'s/GiB':>7} "
        f"{'bar MB/s':>9} {'verdict':>8}"
    )
    for label, key in (("16KiB", "recovery_16k_mb_s"), ("1KiB", "recovery_1k_mb_s")):
        case = result["recovery"][label]
        print(
            f"  {label:>6} {case['total_bytes'] / MIB:>6.1f} {case['seconds']:>8.3f} "
            f"{case['mb_s']:>8.0f} {case['s_per_gib']:>7.2f} "
            f"{bars['recovery_mb_s_min']:>9.0f} {_verdict(bars['met'][key]):>8}"
        )


# -- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="parent of the scratch directory (default: the system temp dir)",
    )
    parser.add_argument(
        "--total-mb",
        type=float,
        default=256.0,
        help="MiB per 16 KiB append run and for the read log; 1 KiB runs write a quarter "
        "(default 256)",
    )
    parser.add_argument(
        "--recovery-mb",
        type=float,
        default=256.0,
        help="MiB of the 16 KiB recovery log; the 1 KiB one is a quarter (default 256)",
    )
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions of each measurement (default 3)"
    )
    parser.add_argument(
        "--pool-mb",
        type=float,
        default=0.125,
        help="MiB of distinct pre-built batches per size, cycled (default 0.125: they stay in "
        "the CPU cache, as a batch the broker just read from its socket does; 512 measures "
        "cold-memory batches instead)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one untimed log append run per batch size (printed on stderr)",
    )
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if min(args.total_mb, args.recovery_mb, args.pool_mb) <= 0:
        parser.error("sizes must be positive")
    return args


def count_for(mib: float, batch_size: int) -> int:
    return max(1, int(mib * MIB) // batch_size)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    env = environment(workdir, args)
    counts = {
        "16KiB": (count_for(args.total_mb, 16 * KIB), count_for(args.recovery_mb, 16 * KIB)),
        "1KiB": (
            count_for(args.total_mb / SMALL_FRACTION, KIB),
            count_for(args.recovery_mb / SMALL_FRACTION, KIB),
        ),
    }
    pools = {}
    for seed, (label, size) in enumerate(BATCH_SIZES.items()):
        wanted = max(counts[label])
        pools[label] = build_pool(size, min(wanted, count_for(args.pool_mb, size)), seed)
        progress(f"built {len(pools[label])} distinct {label} batches")

    result: dict[str, Any] = {"append": {}, "read": {}, "recovery": {}}
    for label, size in BATCH_SIZES.items():
        batches = batch_sequence(pools[label], counts[label][0])
        result["append"][label] = bench_append(workdir, label, batches, size, args.reps)
        if args.profile:
            progress(f"cProfile of one log append run, {label} batches:\n")
            print(profile_append(workdir, label, batches, 20), file=sys.stderr)

    batches = batch_sequence(pools["16KiB"], counts["16KiB"][0])
    result["read"] = bench_read(workdir, batches, 16 * KIB, args.reps)

    for label in ("16KiB", "1KiB"):
        batches = batch_sequence(pools[label], counts[label][1])
        result["recovery"][label] = bench_recovery(
            workdir, label, batches, BATCH_SIZES[label], args.reps
        )
    del batches, pools

    env["loadavg_end"] = list(os.getloadavg())
    env["runtime_s"] = time.perf_counter() - started
    result["env"] = env
    result["bars"] = evaluate_bars(result)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = args.dir if args.dir is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=parent))
    try:
        result = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
