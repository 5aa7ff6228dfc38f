"""A real redis-server for the tests, on a free loopback port in a temporary directory.

scripts/test installs Debian's redis-server where it is missing; without one the tests that need it skip
with a line saying so (never a fake Redis).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

SKIP_REASON = "redis-server is not installed (scripts/test installs it: apt-get install redis-server)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` as a child process; ``url`` is its redis:// address."""

    def __init__(self, directory: Path, *args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError(SKIP_REASON)
        self.binary = binary
        self.directory = directory
        self.args = args
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        """Start the server (again, after :meth:`kill`: same port, same directory, so an AOF given in
        ``args`` is loaded back)."""
        directory = self.directory
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory), "--logfile", str(directory / "redis.log"), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start: see {directory / 'redis.log'}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the server goes away at once, as in a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RedisClusterServers:
    """A three-node Redis Cluster on loopback (no replicas): each node a ``redis-server
    --cluster-enabled yes`` given a third of the hash slots, met, and waited for until all agree."""

    def __init__(self, directory: Path, nodes: int = 3, *node_args: str) -> None:
        import redis

        self.nodes: list[RedisServer] = []
        try:
            bus: list[int] = []
            for i in range(nodes):
                d = directory / f"node{i}"
                d.mkdir()
                bus.append(free_port())  # the default, port + 10000, may be past 65535
                self.nodes.append(RedisServer(d, "--cluster-enabled", "yes", "--cluster-config-file",
                                              str(d / "nodes.conf"), "--cluster-port", str(bus[-1]),
                                              *node_args))
            clients = [redis.Redis(port=n.port) for n in self.nodes]
            for i, c in enumerate(clients):
                first, last = 16384 * i // nodes, 16384 * (i + 1) // nodes - 1
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for n, cport in zip(self.nodes[1:], bus[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", n.port, cport)
            deadline = time.monotonic() + 30
            while not all(self._settled(c, nodes) for c in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Redis Cluster did not settle: see {directory}/node*/redis.log")
                time.sleep(0.05)
            for c in clients:
                c.close()
        except BaseException:
            self.stop()
            raise
        self.port = self.nodes[0].port

    @staticmethod
    def _settled(client: object, nodes: int) -> bool:
        info = client.cluster("INFO")  # type: ignore[attr-defined]
        text = info if isinstance(info, str) else info.decode() if isinstance(info, bytes) else str(info)
        if isinstance(info, dict):
            ok = info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == nodes
            return ok and int(info.get("cluster_slots_ok", 0)) == 16384
        return ("cluster_state:ok" in text and f"cluster_known_nodes:{nodes}" in text
                and "cluster_slots_ok:16384" in text)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def serve(directory: Path, *args: str) -> Iterator[RedisServer]:
    """A fixture's body: a redis-server with ``args`` for one test (skipped where none is installed)."""
    try:
        server = RedisServer(directory, *args)
    except FileNotFoundError:
        pytest.skip(SKIP_REASON)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server for one test."""
    yield from serve(tmp_path)


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[object]:
    """A redis.asyncio client of :func:`redis_server` (bytes responses)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_cluster(tmp_path: Path) -> AsyncIterator[object]:
    """A redis.asyncio ``RedisCluster`` client of a fresh three-node Redis Cluster (bytes responses)."""
    if shutil.which("redis-server") is None:
        pytest.skip(SKIP_REASON)
    from redis.asyncio.cluster import RedisCluster

    servers = RedisClusterServers(tmp_path)
    client = RedisCluster(host="127.0.0.1", port=servers.port)
    try:
        await client.initialize()
        yield client
    finally:
        await client.aclose()
        servers.stop()
