"""A real standalone ZooKeeper in a subprocess (Debian's ``zookeeper`` package): for
``logserver dev-cluster`` and the tests.

``ZooKeeperProcess(data_dir).start()`` writes a ``zoo.cfg`` into ``data_dir``,
runs ``ZooKeeperServerMain`` on a free loopback port, and returns once the
server answers the ``srvr`` four-letter word with ``Mode: standalone``; read
``address`` ("127.0.0.1:PORT") for a connect string. ``stop`` sends SIGTERM
(SIGKILL after ``timeout``), ``restart`` starts it again on the same port and
data (clients reconnect to it), ``pause``/``resume`` freeze and thaw it
(SIGSTOP/SIGCONT) for fault tests.

The config is tuned for tests: ``tickTime`` 500 ms (sessions may be as short
as 1 s), ``forceSync=no`` (no fsync per write: a killed JVM still loses
nothing the OS had, only a power cut would), no admin HTTP server (it would
take port 8080), and a few more four-letter words (``dump`` lists sessions
and ephemeral nodes, handy when a test fails).

The port comes from binding ``127.0.0.1:0`` and closing it again, so another
process can take it before ZooKeeper binds; a server that exits before it is
ready is retried on a new port. Every process started here is killed by its
PID at ``close`` and, as a last resort, when the interpreter exits.

The server logs through SLF4J without a binding, i.e. nowhere: its stdout and
stderr go to ``zookeeper.out`` in the data dir and are quoted in failures.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "ZOOKEEPER_JAR",
    "ZooKeeperNotInstalledError",
    "ZooKeeperProcess",
    "ZooKeeperStartError",
    "four_letter_word",
]

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
ZOOKEEPER_CONF_DIR = Path(
    "/etc/zookeeper/conf"
)  # log4j.properties; the jar's manifest has the rest
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
HOST = "127.0.0.1"
_PORT_ATTEMPTS = 3
_LIVE: set[ZooKeeperProcess] = set()  # strong refs: a lost object must not leak its JVM


class ZooKeeperNotInstalledError(RuntimeError):
    """Java or Debian's zookeeper package is missing."""


class ZooKeeperStartError(RuntimeError):
    """The server exited, or did not answer ``srvr``, before it was ready."""


def four_letter_word(address: str, word: str, *, timeout_s: float = 2.0) -> str:
    """Send ``word`` (``srvr``, ``ruok``, ``dump``, …) to ``address`` and return the answer.

    Raises ``OSError`` when nothing answers.
    """
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ZooKeeperProcess:
    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        tick_time_ms: int = 500,
        startup_timeout_s: float = 20.0,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="zookeeper-"))
        self.tick_time_ms = tick_time_ms
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self.paused = False
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"ZooKeeperProcess(pid={self.pid}, {self.address}, data_dir={self.data_dir})"

    # -- state ------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def output_path(self) -> Path:
        return self.data_dir / "zookeeper.out"

    def output(self, last: int = 40) -> str:
        """The last ``last`` lines the JVM printed, for failure messages."""
        try:
            lines = self.output_path.read_text("utf-8", "replace").splitlines()[-last:]
        except OSError:
            lines = []
        return "\n".join(f"    | {line}" for line in lines) or "    | (no output)"

    def four_letter_word(self, word: str) -> str:
        return four_letter_word(self.address, word)

    # -- lifecycle --------------------------------------------------------------------

    def command(self) -> list[str]:
        java = shutil.which("java")
        if java is None or not ZOOKEEPER_JAR.is_file():
            missing = "java" if java is None else str(ZOOKEEPER_JAR)
            raise ZooKeeperNotInstalledError(
                f"{missing} not found: the ZooKeeper tests run Debian's zookeeper package "
                "(apt-get install zookeeper; ./scripts/test installs it when run as root)"
            )
        return [
            java,
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-cp",
            f"{ZOOKEEPER_CONF_DIR}:{ZOOKEEPER_JAR}",
            MAIN_CLASS,
            str(self.data_dir / "zoo.cfg"),
        ]

    def start(self) -> ZooKeeperProcess:
        """Start the server (on a new free port unless it ran before) and wait until it serves.

        Raises ``ZooKeeperNotInstalledError`` or ``ZooKeeperStartError``.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        command = self.command()
        keep_port = self.port != 0  # a restart: clients are pointed at this port
        failure = ""
        for _ in range(1 if keep_port else _PORT_ATTEMPTS):
            if not keep_port:
                self.port = _free_port()
            self._write_config()
            failure = self._launch(command)
            if not failure:
                return self
        raise ZooKeeperStartError(failure)

    def _write_config(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        settings = {
            "tickTime": self.tick_time_ms,
            "dataDir": self.data_dir / "data",
            "clientPort": self.port,
            "clientPortAddress": HOST,
            "maxSessionTimeout": 60_000,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "srvr,ruok,stat,cons,dump,mntr",
            "forceSync": "no",
            "preAllocSize": 1024,  # KiB, not the 64 MiB default per transaction log
        }
        text = "".join(f"{key}={value}\n" for key, value in settings.items())
        (self.data_dir / "zoo.cfg").write_text(text)

    def _launch(self, command: list[str]) -> str:
        """Run the JVM and wait until it serves; "" on success, else what went wrong."""
        with open(self.output_path, "ab") as out:
            out.write(f"--- {' '.join(command)} (port {self.port})\n".encode())
            out.flush()
            self._process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a ^C aimed at pytest does not reach it
            )
        _LIVE.add(self)
        self.paused = False
        deadline = time.monotonic() + self.startup_timeout_s
        answer = ""
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return (
                    f"ZooKeeper exited with {self._process.returncode} before serving on "
                    f"{self.address} (the port may have been taken)\n{self.output()}"
                )
            with contextlib.suppress(OSError):
                answer = self.four_letter_word("srvr")
                if "Mode: standalone" in answer:
                    return ""
            time.sleep(0.05)
        self.kill()
        return (
            f"ZooKeeper not serving on {self.address} within {self.startup_timeout_s} s "
            f"(last srvr answer: {answer.strip()!r})\n{self.output()}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (SIGKILL after ``timeout`` seconds); return the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            self.resume()  # a stopped JVM cannot act on SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return process.returncode

    def kill(self) -> int | None:
        """SIGKILL the server (a crash) and reap it; return the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        self.paused = False
        return process.returncode

    def restart(self) -> ZooKeeperProcess:
        """Stop if running, then start again on the same port with the same data."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung node)."""
        if not self.running:
            raise RuntimeError(f"{self!r} is not running")
        os.kill(self._process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause``; harmless otherwise."""
        if self.paused and self.running:
            os.kill(self._process.pid, signal.SIGCONT)  # type: ignore[union-attr]
        self.paused = False

    def close(self) -> None:
        """Kill the server if it runs and remove a data dir this object made (teardown)."""
        self.kill()
        _LIVE.discard(self)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ZooKeeperProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()
