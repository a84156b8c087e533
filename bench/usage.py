"""CPU time a service spends, and the PostgreSQL backends serving it spend, during a round.

A service's CPU is its process tree's user + system time. Its backends are found through its
connections: the local ports of the tree's TCP connections to PostgreSQL are the
`client_port`s of their backends in `pg_stat_activity`; over a Unix socket (an embedded
cluster) every backend of the benchmark's database is counted, the other services being idle
during the round. Backends are sampled every `SAMPLE_S` while the round runs (pools that close
and reopen connections replace their backends within a round); one first seen after the
round's start counts from its own start. A backend that lives between two samples is missed
(`Meter.churned` says when that may have happened), and only a PostgreSQL on this machine can
be read (psutil).
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

import asyncpg
import psutil

SAMPLE_S = 0.05
BACKENDS = """
SELECT pid, client_port, leader_pid FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type IN ('client backend', 'parallel worker')
"""
"""The database's backends and parallel workers (a worker counts for its leader's service)."""


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_s(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return times.user + times.system


def tree_cpu_s(pid: int) -> float:
    """CPU seconds so far of a process and its descendants."""
    return sum(filter(None, map(_cpu_s, _tree(pid))))


def _client_ports(pid: int, pg_port: int) -> set[int]:
    """Local ports of the process tree's TCP connections to PostgreSQL's port."""
    ports = set()
    for process in _tree(pid):
        try:
            connections = process.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ports.update(c.laddr.port for c in connections if c.raddr and c.raddr.port == pg_port)
    return ports


class Meter:
    """`with Meter(...) as meter:` around a round; then `meter.server_s`, `meter.pg_s`."""

    def __init__(self, pid: int, url: str, pg_port: int | None, *, local: bool) -> None:
        self.pid, self.url, self.pg_port, self.local = pid, url, pg_port, local
        self.server_s = 0.0
        self._started: dict[int, float] = {}
        self._latest: dict[int, float] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._error: BaseException | None = None

    @property
    def churned(self) -> bool:
        """Whether backends came during the round (a pool reconnecting): some may have come
        and gone between samples, so pg_s is then a lower bound."""
        return any(start == 0.0 for start in self._started.values())

    @property
    def pg_s(self) -> float | None:
        """CPU seconds the service's backends spent in the round; None when none was seen."""
        if not self._latest:
            return None
        return sum(cpu - self._started[pid] for pid, cpu in self._latest.items())

    def __enter__(self) -> Meter:
        if self.local:
            self._thread.start()
            self._ready.wait()
            if self._error is not None:
                raise self._error
        self.server_s = -tree_cpu_s(self.pid)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server_s += tree_cpu_s(self.pid)
        if self.local:
            self._stop.set()
            self._thread.join()

    def _sample_until_stopped(self) -> None:
        """The sampling thread: a first sample (the baseline), then one every SAMPLE_S."""
        loop = asyncio.new_event_loop()
        try:
            connection = loop.run_until_complete(asyncpg.connect(self.url))
        except (OSError, asyncpg.PostgresError) as error:
            self._error = error
            self._ready.set()
            loop.close()
            return
        try:
            self._sample(loop, connection, first=True)
            self._ready.set()
            while not self._stop.wait(SAMPLE_S):
                self._sample(loop, connection, first=False)
            self._sample(loop, connection, first=False)
        finally:
            loop.run_until_complete(connection.close())
            loop.close()

    def _sample(
        self, loop: asyncio.AbstractEventLoop, connection: asyncpg.Connection, *, first: bool
    ) -> None:
        """The CPU so far of each backend serving the service now."""
        ports = None if self.pg_port is None else _client_ports(self.pid, self.pg_port)
        rows = loop.run_until_complete(connection.fetch(BACKENDS))
        serving = {r["pid"] for r in rows if ports is None or r["client_port"] in ports}
        for row in rows:
            if row["pid"] not in serving and row["leader_pid"] not in serving:
                continue
            try:
                cpu = _cpu_s(psutil.Process(row["pid"]))
            except psutil.NoSuchProcess:
                continue
            if cpu is None:
                continue
            self._started.setdefault(row["pid"], cpu if first else 0.0)
            self._latest[row["pid"]] = cpu
