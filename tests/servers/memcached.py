"""memcached servers the tests start themselves (``/usr/bin/memcached`` on a free port).

``memcached_server`` is shared by the whole run; ``private_memcached`` belongs to one test,
which may stop and restart it. Keys go under a prefix of the test's own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from ._processes import ServerProcess, running_as_root


class MemcachedProcess(ServerProcess):
    """``memcached -l 127.0.0.1 -p <port> -U 0``: TCP on loopback only, no UDP."""

    binary_name = "memcached"

    def __init__(self, item_size: str = "1m", memory_mb: int = 64) -> None:
        super().__init__()
        self.item_size = item_size
        self.memory_mb = memory_mb

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def arguments(self) -> list[str]:
        arguments = ["-l", "127.0.0.1", "-p", str(self.port), "-U", "0"]
        arguments += ["-m", str(self.memory_mb), "-I", self.item_size]
        if running_as_root():
            arguments += ["-u", "root"]  # memcached refuses to run as root without it
        return arguments


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[MemcachedProcess]:
    """A memcached for the whole test run."""
    server = MemcachedProcess()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def private_memcached() -> Iterator[MemcachedProcess]:
    """A memcached of this test's own, which it may stop and restart."""
    server = MemcachedProcess()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def memcache_prefix() -> str:
    """A key prefix owned by one test."""
    return f"websession-test:{secrets.token_hex(4)}:"
