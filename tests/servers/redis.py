"""The shared Redis on 127.0.0.1:6379, used with a key prefix of the test's own, and private
redis-server processes that a test owns (to stop, restart, or watch with MONITOR).

Tests never flush the shared database: they write under ``websession-test:<random>:`` and
delete only those keys afterwards.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

REDIS_HOST = os.environ.get("WEBSESSION_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("WEBSESSION_TEST_REDIS_PORT", "6379"))


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared Redis server; an error (not a skip) when it is not running."""
    if not _reachable(REDIS_HOST, REDIS_PORT):
        pytest.fail(
            f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}; run the tests with "
            "`python3 scripts/test.py`, which starts it"
        )
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix owned by one test; its keys are deleted afterwards."""
    import redis

    prefix = f"websession-test:{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- private servers that a test owns: stopped, restarted, counted ----------------------------


def free_port(*, plus: int | None = None) -> int:
    """A loopback port nobody listens on (and ``port + plus`` free too, for cluster buses)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if plus is None or (port + plus < 65536 and not _reachable("127.0.0.1", port + plus)):
            return port
    raise RuntimeError("no free port pair found")


class RedisServer:
    """A redis-server process on a port of its own, in a directory of its own.

    ``stop()`` kills it (as a crash would) and ``start()`` brings it back on the same port,
    empty: nothing is saved to disk.
    """

    def __init__(self, directory: pathlib.Path, port: int | None = None, *args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; `python3 scripts/test.py` installs it")
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory), *self.args]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"redis-server on port {self.port} did not start:\n{output}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def ping(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self) -> Any:
        """A plain sync client to look at what the server holds."""
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture
def private_redis(tmp_path: pathlib.Path) -> Iterator[RedisServer]:
    """A redis-server owned by one test: it may stop and restart it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
