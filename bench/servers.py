"""Private servers the bench starts for itself: redis-server (one, or a 3-master cluster) and
memcached, each on a free loopback port in a temporary directory, stopped at the end.

A private Redis keeps INFO commandstats clean (CONFIG RESETSTAT is allowed on it) and never
touches anybody's data on the shared server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class ServerError(RuntimeError):
    """A server binary is missing or did not come up."""


def free_port(*, plus: int | None = None) -> int:
    """A loopback port nobody listens on (and ``port + plus`` free too, for cluster buses)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if plus is None or (port + plus < 65536 and not listening(port + plus)):
            return port
    raise ServerError("no free port found")


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServerError(
            f"{name} is not installed (apt-get install {name.split('-')[0]}; scripts/devenv.py does it)"
        )
    return path


class Process:
    """A server process on a port of its own, logging to a file in its own directory."""

    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        directory: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / f"{name}.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd or directory, env=env
            )
        deadline = time.monotonic() + 20
        while not listening(port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-1500:]
                raise ServerError(f"{name} on port {port} did not start:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Servers:
    """Everything the bench starts, torn down by :meth:`close` (or the ``with`` block)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="websession-bench-"))
        self.processes: list[Process] = []
        self._redis_port: int | None = None
        self._memcached_port: int | None = None
        self._cluster_ports: list[int] | None = None

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def _redis(self, name: str, port: int, *args: str) -> Process:
        command = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.root / name), *args]
        process = Process(name, command, port, self.root / name)
        self.processes.append(process)
        return process

    @property
    def redis_port(self) -> int:
        """The private redis-server, started on first use."""
        if self._redis_port is None:
            port = free_port()
            self._redis(f"redis-{port}", port)
            self._redis_port = port
        return self._redis_port

    def another_redis(self) -> str:
        """The URL of one more private redis-server, with a keyspace of its own."""
        port = free_port()
        self._redis(f"redis-{port}", port)
        return f"redis://127.0.0.1:{port}/0"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def memcached_port(self) -> int:
        """A private memcached (64 MB), started on first use."""
        if self._memcached_port is None:
            port = free_port()
            command = [_binary("memcached"), "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "256"]
            command += ["-u", "root"]  # memcached refuses to run as root without it
            self.processes.append(Process(f"memcached-{port}", command, port, self.root / "memcached"))
            self._memcached_port = port
        return self._memcached_port

    @property
    def cluster_ports(self) -> list[int]:
        """The masters of the private cluster (started by :attr:`cluster_url`)."""
        return list(self._cluster_ports or [])

    @property
    def cluster_url(self) -> str:
        """``redis+cluster://`` of a private 3-master Redis Cluster, started on first use."""
        if self._cluster_ports is None:
            ports = []
            for index in range(3):
                port = free_port(plus=10000)
                self._redis(
                    f"cluster{index}-{port}",
                    port,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                )
                ports.append(port)
            nodes = [f"127.0.0.1:{port}" for port in ports]
            created = subprocess.run(
                [
                    _binary("redis-cli"),
                    "--cluster",
                    "create",
                    *nodes,
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if created.returncode != 0:
                raise ServerError(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
            _wait_for_cluster(ports)
            self._cluster_ports = ports
        return f"redis+cluster://127.0.0.1:{self._cluster_ports[0]}"


def _wait_for_cluster(ports: list[int]) -> None:
    import redis

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = []
        for port in ports:
            client = redis.Redis(port=port, socket_timeout=2)
            try:
                info = client.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                states.append("cluster_state:ok" in text)
            except redis.RedisError:
                states.append(False)
            finally:
                client.close()
        if all(states):
            return
        time.sleep(0.2)
    raise ServerError("the Redis Cluster did not reach cluster_state:ok within 30 s")
