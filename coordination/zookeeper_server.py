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

``ZooKeeperEnsemble(root, size=3).start()`` runs a replicated ensemble on
loopback instead: one ``ZooKeeperProcess`` per member (``members``), each with
``server.N=127.0.0.1:PEER:ELECTION`` lines for all of them in its ``zoo.cfg``
and its ``myid`` in its data dir, run by ``QuorumPeerMain``. ``start`` launches
every member, then waits (bounded) until each answers ``srvr`` as ``leader`` or
``follower``; ``address`` is the connect string naming every member. A member
killed with ``kill`` comes back on the same ports with ``start`` and rejoins.
``leader()`` and ``followers()`` say who is which, from ``srvr``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ZOOKEEPER_JAR",
    "QuorumMember",
    "ZooKeeperEnsemble",
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
QUORUM_MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
QUORUM_MODES = ("leader", "follower")
# Leader election backs off between notification rounds up to this (60 s by default): a
# member started a second after the others must not wait a minute for them to answer.
_QUORUM_JVM_FLAGS = ("-Dzookeeper.fastleader.maxNotificationInterval=1000",)
_MODE = re.compile(r"^Mode: (\w+)", re.MULTILINE)
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


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together so none repeats)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclasses.dataclass(frozen=True, slots=True)
class QuorumMember:
    """One member of a replicated ensemble: its ``myid`` and its three loopback ports."""

    server_id: int
    client_port: int
    peer_port: int  # followers connect to the leader here
    election_port: int  # leader election

    @property
    def server_line(self) -> str:
        """The ``server.N`` line every member's ``zoo.cfg`` has for this one."""
        return f"server.{self.server_id}={HOST}:{self.peer_port}:{self.election_port}"


class ZooKeeperProcess:
    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        tick_time_ms: int = 500,
        startup_timeout_s: float = 20.0,
        quorum: Sequence[QuorumMember] = (),
        server_id: int | None = None,
    ) -> None:
        """A standalone server; with ``quorum`` (every member, this one included) and
        ``server_id`` (this one's), a member of that replicated ensemble on its ports."""
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="zookeeper-"))
        self.tick_time_ms = tick_time_ms
        self.startup_timeout_s = startup_timeout_s
        self.quorum = tuple(quorum)
        self.server_id = server_id
        self.port = 0
        if self.quorum:
            mine = [m for m in self.quorum if m.server_id == server_id]
            if len(mine) != 1:
                raise ValueError(f"server_id {server_id} is not one of the quorum {self.quorum}")
            self.port = mine[0].client_port
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

    @property
    def mode(self) -> str | None:
        """``standalone``, ``leader`` or ``follower`` as ``srvr`` says; None when it does not
        serve (not running, paused, or an ensemble member without a quorum)."""
        if not self.running or self.paused:
            return None
        try:
            found = _MODE.search(self.four_letter_word("srvr"))
        except OSError:
            return None
        return found.group(1) if found else None

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
            *(_QUORUM_JVM_FLAGS if self.quorum else ()),
            "-cp",
            f"{ZOOKEEPER_CONF_DIR}:{ZOOKEEPER_JAR}",
            QUORUM_MAIN_CLASS if self.quorum else MAIN_CLASS,
            str(self.data_dir / "zoo.cfg"),
        ]

    def start(self) -> ZooKeeperProcess:
        """Start the server (on a new free port unless it ran before) and wait until it serves.

        Raises ``ZooKeeperNotInstalledError`` or ``ZooKeeperStartError``.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        command = self.command()
        keep_port = self.port != 0  # a restart, or an ensemble member: its ports are known
        failure = ""
        for _ in range(1 if keep_port else _PORT_ATTEMPTS):
            if not keep_port:
                self.port = _free_port()
            self._write_config()
            self._spawn(command)
            failure = self._wait_ready(time.monotonic() + self.startup_timeout_s)
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
        if self.quorum:
            settings |= {"initLimit": 10, "syncLimit": 5}  # in ticks
            (self.data_dir / "data" / "myid").write_text(f"{self.server_id}\n")
        lines = [f"{key}={value}\n" for key, value in settings.items()]
        lines += [f"{member.server_line}\n" for member in self.quorum]
        (self.data_dir / "zoo.cfg").write_text("".join(lines))

    def _ready(self, answer: str) -> bool:
        found = _MODE.search(answer)
        if found is None:
            return False
        return found.group(1) in (QUORUM_MODES if self.quorum else ("standalone",))

    def _spawn(self, command: list[str]) -> None:
        """Run the JVM (and return at once)."""
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

    def _wait_ready(self, deadline: float) -> str:
        """Wait until the server serves (an ensemble member: in a quorum) or ``deadline``
        (``time.monotonic``) passes; "" on success, else what went wrong (then it is killed)."""
        assert self._process is not None
        answer = ""
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return (
                    f"ZooKeeper exited with {self._process.returncode} before serving on "
                    f"{self.address} (a port may have been taken)\n{self.output()}"
                )
            with contextlib.suppress(OSError):
                answer = self.four_letter_word("srvr")
                if self._ready(answer):
                    return ""
            time.sleep(0.05)
        self.kill()
        return (
            f"ZooKeeper not serving on {self.address} in time "
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


class ZooKeeperEnsemble:
    """A replicated ZooKeeper of ``size`` members on loopback (see the module doc)."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        size: int = 3,
        tick_time_ms: int = 500,
        startup_timeout_s: float = 30.0,
    ) -> None:
        if size < 1:
            raise ValueError(f"an ensemble needs at least one member, not {size}")
        self._own_dir = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="zookeeper-ensemble-"))
        self.size = size
        self.tick_time_ms = tick_time_ms
        self.startup_timeout_s = startup_timeout_s
        self.members: list[ZooKeeperProcess] = []

    def __repr__(self) -> str:
        return f"ZooKeeperEnsemble({', '.join(map(repr, self.members))})"

    @property
    def address(self) -> str:
        """The connect string naming every member: ``127.0.0.1:P1,127.0.0.1:P2,…``."""
        return ",".join(member.address for member in self.members)

    def member(self, server_id: int) -> ZooKeeperProcess:
        return next(m for m in self.members if m.server_id == server_id)

    def leader(self) -> ZooKeeperProcess | None:
        """The member that says it leads (``srvr``), or None while there is no quorum."""
        return next((m for m in self.members if m.mode == "leader"), None)

    def followers(self) -> list[ZooKeeperProcess]:
        return [m for m in self.members if m.mode == "follower"]

    def start(self) -> ZooKeeperEnsemble:
        """Start every member and wait (``startup_timeout_s`` in all) until each is a leader or
        a follower. On new ports each time, a few times over if a member cannot bind one.

        Raises ``ZooKeeperNotInstalledError`` or ``ZooKeeperStartError``.
        """
        if any(m.running for m in self.members):
            raise RuntimeError(f"{self!r} is already running")
        failure = ""
        for _ in range(_PORT_ATTEMPTS):
            ports = _free_ports(3 * self.size)
            quorum = [QuorumMember(i + 1, *ports[3 * i : 3 * i + 3]) for i in range(self.size)]
            for member in self.members:
                member.close()
            for m in quorum:  # a fresh ensemble: no data from an attempt on other ports
                shutil.rmtree(self.root / f"zookeeper-{m.server_id}" / "data", ignore_errors=True)
            self.members = [
                ZooKeeperProcess(
                    self.root / f"zookeeper-{m.server_id}",
                    tick_time_ms=self.tick_time_ms,
                    startup_timeout_s=self.startup_timeout_s,
                    quorum=quorum,
                    server_id=m.server_id,
                )
                for m in quorum
            ]
            commands = [m.command() for m in self.members]  # not installed: before any JVM
            deadline = time.monotonic() + self.startup_timeout_s
            for member, command in zip(self.members, commands, strict=True):
                member._write_config()
                member._spawn(command)
            failure = next(filter(None, (m._wait_ready(deadline) for m in self.members)), "")
            if not failure:
                return self
            self.kill()
        raise ZooKeeperStartError(f"the ensemble did not form: {failure}")

    def wait_for_quorum(self, timeout_s: float = 20.0) -> ZooKeeperProcess:
        """Wait until every running member is a leader or a follower, with one leader; return
        the leader. Raises ``TimeoutError`` naming each member's mode."""
        deadline = time.monotonic() + timeout_s
        while True:
            running = [m for m in self.members if m.running]
            modes = [m.mode for m in running]
            if all(mode in QUORUM_MODES for mode in modes) and modes.count("leader") == 1:
                return running[modes.index("leader")]
            if time.monotonic() > deadline:
                named = {m.server_id: m.mode for m in self.members}
                raise TimeoutError(f"no quorum within {timeout_s} s: modes {named}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL every member."""
        for member in self.members:
            member.kill()

    def close(self) -> None:
        """Kill every member and remove a root this object made (teardown)."""
        for member in self.members:
            member.close()
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ZooKeeperEnsemble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()
