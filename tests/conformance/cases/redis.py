"""Redis: the string layout, the hash layout, the remix-v3 format, and Redis Cluster.

All rely on the server's TTLs, so they run with the real clock (``fake_clock=False``).
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import pytest

from websession import create_redis_session_storage
from websession.cookie import Cookie

from ..harness import Options
from . import StoreCase, ttl_option


def _storage(url: str, prefix: str, options: Options, **extra: Any) -> Any:
    return create_redis_session_storage(
        url=url,
        prefix=prefix,
        cookie=options.cookie,
        rolling=options.rolling,
        save_uninitialized=options.save_uninitialized,
        clock=options.clock,
        **ttl_option(options),
        **extra,
    )


def make_string(request: pytest.FixtureRequest, options: Options) -> Any:
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return _storage(url, prefix, options)


def make_hash(request: pytest.FixtureRequest, options: Options) -> Any:
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return _storage(url, prefix, options, layout="hash")


def make_v3(request: pytest.FixtureRequest, options: Options) -> Any:
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    cookie = options.cookie
    v3 = dataclasses.replace(
        options, cookie=Cookie(cookie.name, cookie.secrets, cookie.options, format="remix-v3")
    )
    return _storage(url, prefix, v3, format="remix-v3")


def make_cluster(request: pytest.FixtureRequest, options: Options) -> Any:
    url = request.getfixturevalue("redis_cluster_url")
    return _storage(url, f"conformance:{secrets.token_hex(4)}:", options)


CASES = [
    StoreCase("redis", make_string, fake_clock=False),
    StoreCase("redis-hash", make_hash, fake_clock=False),
    StoreCase("redis-v3", make_v3, fake_clock=False),
    StoreCase("redis-cluster", make_cluster, fake_clock=False),
]
