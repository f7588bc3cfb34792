"""PostgreSQL: a database of the test run's own on the local server (tests/servers/postgres.py)."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from websession import create_postgres_session_storage

from ..harness import Options
from . import StoreCase


def make_postgres(request: pytest.FixtureRequest, options: Options):
    dsn = request.getfixturevalue("postgres_dsn")
    # A table per test: the maintenance tests count and scan every record in the table.
    table = f"sessions_{secrets.token_hex(4)}"

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")

    request.addfinalizer(drop)
    return create_postgres_session_storage(
        dsn=dsn,
        table=table,
        cookie=options.cookie,
        clock=options.clock,
        rolling=options.rolling,
        save_uninitialized=options.save_uninitialized,
    )


# Expiry is checked with the store's clock (no server TTL), so the fake clock applies.
CASES = [StoreCase("postgres", make_postgres)]
