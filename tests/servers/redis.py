"""The shared Redis on 127.0.0.1:6379, used with a key prefix of the test's own.

Tests never flush the database: they write under ``websession-test:<random>:`` and delete
only those keys afterwards.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator

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
