"""Workers KV: Cloudflare's REST API served locally by Miniflare's KV (tests/servers/workers_kv.py).

The store declares ``atomic_changes = False`` (KV has no compare-and-set), so the suite's
concurrency tests report it as a declared exception instead of running.
"""

from __future__ import annotations

import secrets

import pytest

from websession import create_workers_kv_session_storage

from ..harness import Options
from . import StoreCase, ttl_option


def make_workers_kv(request: pytest.FixtureRequest, options: Options):
    server = request.getfixturevalue("kv_server")
    return create_workers_kv_session_storage(
        base_url=server.base_url,
        api_token=server.api_token,
        prefix=f"test-{secrets.token_hex(4)}:",
        cookie=options.cookie,
        clock=options.clock,
        rolling=options.rolling,
        save_uninitialized=options.save_uninitialized,
        **ttl_option(options, "default_ttl"),
    )


# KV's own expiry is at least 60 s ahead; the exact expiry is checked on read with the store's
# clock, so the fake clock applies.
CASES = [StoreCase("workers-kv", make_workers_kv)]
