"""memcached through pymemcache (sync door) and aiomcache (async door), against a real
memcached that tests/servers/memcached.py starts."""

from __future__ import annotations

import pytest

from websession import create_memcache_session_storage

from ..harness import Options
from . import StoreCase, ttl_option


def make_memcache(request: pytest.FixtureRequest, options: Options):
    server = request.getfixturevalue("memcached_server")
    return create_memcache_session_storage(
        servers=[server.address],
        prefix=request.getfixturevalue("memcache_prefix"),
        cookie=options.cookie,
        clock=options.clock,
        rolling=options.rolling,
        save_uninitialized=options.save_uninitialized,
        **ttl_option(options),
    )


CASES = [StoreCase("memcache", make_memcache, fake_clock=False)]
