"""Upstash through the local REST server (tests/servers/upstash.py) in front of the real Redis,
once with websession's own httpx transport and once with the official upstash-redis client."""

from __future__ import annotations

import pytest

from websession import create_upstash_session_storage

from ..harness import Options
from . import StoreCase, ttl_option


def _common(options: Options) -> dict:
    return {
        "cookie": options.cookie,
        "clock": options.clock,
        "rolling": options.rolling,
        "save_uninitialized": options.save_uninitialized,
        **ttl_option(options),
    }


def make_httpx(request: pytest.FixtureRequest, options: Options):
    server = request.getfixturevalue("upstash_server")
    prefix = request.getfixturevalue("redis_prefix")
    return create_upstash_session_storage(
        url=server.url, token=server.token, prefix=prefix, **_common(options)
    )


def make_sdk(request: pytest.FixtureRequest, options: Options):
    """The official client serves one door, so the case hands in the one the test goes through."""
    import upstash_redis
    import upstash_redis.asyncio

    server = request.getfixturevalue("upstash_server")
    prefix = request.getfixturevalue("redis_prefix")
    # The maintenance tests run without a door: they are sync only.
    door = request.getfixturevalue("door") if "door" in request.fixturenames else None
    settings = {"rest_retries": 0, "allow_telemetry": False}
    if door is not None and door.name == "async":
        client = upstash_redis.asyncio.Redis(server.url, server.token, **settings)
        # The client is ours to close, on the door's loop, before the door closes it.
        request.addfinalizer(lambda: door.loop.is_closed() or door.run(client.close()))
    else:
        client = upstash_redis.Redis(server.url, server.token, **settings)
        request.addfinalizer(client.close)
    return create_upstash_session_storage(client=client, prefix=prefix, **_common(options))


CASES = [
    StoreCase("upstash-httpx", make_httpx, fake_clock=False),
    StoreCase("upstash-sdk", make_sdk, fake_clock=False),
]
