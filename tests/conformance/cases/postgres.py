"""PostgreSQL: a database of the test run's own on the local server (tests/servers/postgres.py)."""

from __future__ import annotations

import pytest

from websession import create_postgres_session_storage

from ..harness import Options
from . import StoreCase, ttl_option


def make_postgres(request: pytest.FixtureRequest, options: Options):
    return create_postgres_session_storage(
        dsn=request.getfixturevalue("postgres_dsn"),
        # A table per test: scans and counts see only the test's own rows.
        table=request.getfixturevalue("postgres_table"),
        cookie=options.cookie,
        clock=options.clock,
        rolling=options.rolling,
        save_uninitialized=options.save_uninitialized,
        **ttl_option(options, "default_ttl"),
    )


# Expiry is checked with the store's clock (no server TTL), so the fake clock applies.
CASES = [StoreCase("postgres", make_postgres)]
