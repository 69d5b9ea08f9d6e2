"""A real crash: a child appends in a loop and is SIGKILLed after N acknowledgements.

The child prints one line per append after it returns, so every line read here
is an acknowledged append. After the kill the log is reopened (by the next
child and by the test): every acknowledged offset must be there with its value,
the log end must be past the last acknowledgement, and every offset that is
served must hold exactly what the child wrote there.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from logserver.log import PartitionLog
from tests.support.damage import read_all
from tests.support.kill9_child import CONFIG, value_for

REPO = Path(__file__).resolve().parents[3]
CHILD = REPO / "tests" / "support" / "kill9_child.py"
ACK_TIMEOUT_S = 30.0
REAP_TIMEOUT_S = 10.0

# (acknowledgements before the kill, flush every N appends: 0 = never)
ROUNDS = [(1, 0), (23, 0), (160, 7), (400, 1), (75, 0), (5, 3)]


@dataclass
class Round:
    opened_at: int = -1  # the log end the child found at open
    bytes_cut_at_open: int = -1
    acks: list[tuple[int, int]] = field(default_factory=list)
    returncode: int | None = None


def _parse(line: bytes, result: Round) -> None:
    kind, *fields = line.decode().split()
    if kind == "open":
        result.opened_at, result.bytes_cut_at_open = int(fields[0]), int(fields[1])
    elif kind == "ack":
        result.acks.append((int(fields[0]), int(fields[1])))
    else:
        raise AssertionError(f"unexpected line from the child: {line!r}")


def _run_and_kill(
    directory: Path, seed: int, flush_every: int, kill_after: int, log: Path
) -> Round:
    """Start the child, SIGKILL it after ``kill_after`` acks, reap it, return what it said."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = Round()
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(directory), str(seed), str(flush_every)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env=env,
        )
    assert proc.stdout is not None
    buffer = b""
    try:
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            deadline = time.monotonic() + ACK_TIMEOUT_S
            while len(result.acks) < kill_after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"only {len(result.acks)} acks in {ACK_TIMEOUT_S}s")
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    proc.wait(timeout=REAP_TIMEOUT_S)
                    pytest.fail(
                        f"the child exited ({proc.returncode}) after {len(result.acks)} acks:\n"
                        f"{log.read_text(errors='replace')}"
                    )
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    _parse(line, result)
        os.kill(proc.pid, signal.SIGKILL)
        result.returncode = proc.wait(timeout=REAP_TIMEOUT_S)
        # Lines written before the kill are acknowledgements too; a cut-off last line is not.
        rest = proc.stdout.read()
        *lines, _ = (buffer + rest).split(b"\n")
        for line in lines:
            _parse(line, result)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=REAP_TIMEOUT_S)
        proc.stdout.close()
    return result


def _check_log(directory: Path, acks: list[tuple[int, int]]) -> PartitionLog:
    log = PartitionLog.open(directory, CONFIG)
    records = read_all(log)  # validates every batch it serves
    assert log.log_start_offset == 0
    assert set(records) == set(range(log.log_end_offset))
    wrong = [o for o, v in records.items() if v != value_for(o)]
    assert wrong == [], f"offsets with the wrong value: {wrong[:10]}"
    last_ack = max(last for _, last in acks)
    assert log.log_end_offset >= last_ack + 1
    missing = [o for first, last in acks for o in range(first, last + 1) if o not in records]
    assert missing == []
    return log


def test_kill9_loses_no_acknowledged_append(tmp_path: Path) -> None:
    directory = tmp_path / "topic-0"
    all_acks: list[tuple[int, int]] = []
    for i, (kill_after, flush_every) in enumerate(ROUNDS):
        previous_end = max((last + 1 for _, last in all_acks), default=0)
        result = _run_and_kill(directory, i, flush_every, kill_after, tmp_path / f"child-{i}.err")
        assert result.returncode == -signal.SIGKILL
        assert len(result.acks) >= kill_after
        # The child recovered what the previous one left: nothing acknowledged was lost.
        assert result.opened_at >= previous_end
        assert result.acks[0][0] == result.opened_at
        for (_, last), (first, _) in zip(result.acks, result.acks[1:], strict=False):
            assert first == last + 1
        all_acks += result.acks

        log = _check_log(directory, all_acks)
        report = log.recovery_report
        assert not report.clean_shutdown
        # Only what was never acknowledged may be cut.
        if report.truncation is not None:
            assert report.truncation.first_lost_offset > all_acks[-1][1]
        # Leave it as found for the next child half the time, clean the other half.
        if i % 2:
            log.close()
        else:
            log.close_handlers()

    with PartitionLog.open(directory, CONFIG, full_recovery=True) as log:
        assert log.recovery_report.truncation is None
        assert log.log_end_offset >= all_acks[-1][1] + 1
