"""A real broker in a subprocess (``python -m logserver``), for the integration tests.

``BrokerProcess(data_dir, flags=[...]).start()`` runs a standalone broker on
``127.0.0.1:0`` with its logs in ``data_dir``, reads its output on a thread
(kept in ``lines`` for assertions and quoted in every failure message), and
returns once the broker logs ``serving on HOST:PORT``. ``stop`` sends SIGTERM
and returns the exit code, ``kill9`` kills it outright, ``restart`` starts it
again on the same data directory (on a new port: read ``port`` again).

Every process started here is killed by its PID at ``close`` and, as a last
resort, when the interpreter exits, so a failing test never leaves a broker
running. Settings given to the broker through the environment (``LOG_DIRS``,
``LOGSERVER_CONFIG``, …) are removed from the child's environment, so the
flags a test passes are the whole configuration.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from client.connection import BrokerConnection
from logserver.config import CONFIG_ENV, SETTINGS

__all__ = ["BrokerProcess", "BrokerStartError", "connect"]

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"broker \d+ serving on ([^\s,:]+):(\d+)")
_SETTING_ENV = frozenset({s.env for s in SETTINGS} | {CONFIG_ENV})
_LIVE: set[BrokerProcess] = set()  # strong refs: a lost object must not leak its process


class BrokerStartError(RuntimeError):
    """The broker exited or stayed silent before it logged ``serving on``."""


class BrokerProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 20.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.flags = list(flags)
        self.env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.host = "127.0.0.1"
        self.port = 0
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._lines: list[str] = []
        self._changed = threading.Condition()

    def __repr__(self) -> str:
        pid = self._process.pid if self._process else None
        return f"BrokerProcess(pid={pid}, {self.address}, data_dir={self.data_dir})"

    # -- state ------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def lines(self) -> list[str]:
        """Every output line so far, across restarts (a copy)."""
        with self._changed:
            return list(self._lines)

    def output(self, last: int = 60) -> str:
        """The last ``last`` output lines, for failure messages."""
        lines = self.lines[-last:]
        return "\n".join(f"    | {line}" for line in lines) or "    | (no output)"

    def tracebacks(self) -> list[str]:
        """Output lines that hold a Python traceback (an unexpected failure in the broker).

        A plain-text line that starts one, or a ``log.format=json`` line with a ``traceback``.
        """
        return [
            line
            for line in self.lines
            if line.startswith("Traceback") or (line.startswith("{") and '"traceback": ' in line)
        ]

    # -- lifecycle --------------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "logserver",
            "--listeners",
            f"PLAINTEXT://{self.host}:0",
            "--log-dirs",
            str(self.data_dir),
            *self.flags,
        ]

    def start(self) -> BrokerProcess:
        """Start the broker and wait until it serves; raise ``BrokerStartError`` otherwise."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _SETTING_ENV}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        with self._changed:
            mark = len(self._lines)
            self._lines.append(f"--- start #{self.starts + 1}: {' '.join(self.command()[3:])}")
        self._process = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a ^C aimed at pytest does not race our SIGTERM
        )
        _LIVE.add(self)
        self.starts += 1
        self._reader = threading.Thread(
            target=self._read, args=(self._process,), name=f"broker-{self._process.pid}-output"
        )
        self._reader.daemon = True
        self._reader.start()
        try:
            self.host, self.port = self._wait_ready(mark)
        except BaseException:
            self.kill9()
            raise
        return self

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _wait_ready(self, mark: int) -> tuple[str, int]:
        deadline = time.monotonic() + self.startup_timeout_s
        with self._changed:
            while True:
                for line in self._lines[mark:]:
                    found = READY.search(line)
                    if found:
                        return found.group(1), int(found.group(2))
                if not self.running:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BrokerStartError(
                        f"broker not serving within {self.startup_timeout_s} s\n{self.output()}"
                    )
                self._changed.wait(min(remaining, 0.1))
        self._join_reader()  # its last words, for the message
        code = self._process.returncode if self._process else None
        raise BrokerStartError(f"broker exited with {code} before serving\n{self.output()}")

    def wait_for_line(self, pattern: str, *, timeout_s: float = 10.0, since: int = 0) -> str:
        """The first output line from index ``since`` matching the regex ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for line in self._lines[since:]:
                    if regex.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no broker line matching {pattern!r} within {timeout_s} s\n{self.output()}"
                    )
                self._changed.wait(min(remaining, 0.1))

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait up to ``timeout`` seconds; return the exit code.

        Raises ``TimeoutError`` (after killing the process) when it does not exit in time.
        """
        process = self._process
        if process is None:
            raise RuntimeError("the broker was never started")
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise TimeoutError(
                    f"broker did not exit within {timeout} s of SIGTERM\n{self.output()}"
                ) from None
        self._join_reader()
        return process.returncode

    def kill9(self) -> int | None:
        """SIGKILL the process (if it runs) and reap it; return the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        self._join_reader()
        return process.returncode

    def restart(self, *, flags: Sequence[str] | None = None) -> BrokerProcess:
        """Stop (SIGTERM) if running, then start again on the same data directory."""
        if self.running:
            self.stop()
        if flags is not None:
            self.flags = list(flags)
        return self.start()

    def close(self) -> None:
        """Kill the process if it still runs (teardown: never raises for a dead process)."""
        self.kill9()
        _LIVE.discard(self)

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()

    # -- async conveniences (blocking waits run in a thread, the loop keeps going) ------

    async def stop_async(self, timeout: float = 10.0) -> int:
        return await asyncio.to_thread(self.stop, timeout)

    async def kill9_async(self) -> int | None:
        return await asyncio.to_thread(self.kill9)

    async def restart_async(self, *, flags: Sequence[str] | None = None) -> BrokerProcess:
        return await asyncio.to_thread(self.restart, flags=flags)

    async def start_async(self) -> BrokerProcess:
        return await asyncio.to_thread(self.start)

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def connect(
    broker: BrokerProcess, *, client_id: str = "integration-test", timeout_ms: int = 5_000
) -> BrokerConnection:
    """A ``BrokerConnection`` to the broker's current address."""
    return await BrokerConnection.open(
        broker.host, broker.port, client_id=client_id, timeout_ms=timeout_ms
    )


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_LIVE):
        with contextlib.suppress(Exception):
            broker.kill9()
