"""The PostgreSQL server on 127.0.0.1:5432, used through a database of the test run's own.

The session fixture creates ``websession_test_<random>`` and drops it at the end, so tests
never touch another database on the server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN_DSN = os.environ.get(
    "WEBSESSION_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a fresh database for this test run; an error (not a skip) when PostgreSQL is down."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {exc}; run the tests with "
            "`python3 scripts/test.py`, which starts it"
        )
    name = f"websession_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_conninfo(**{**conninfo_to_dict(POSTGRES_ADMIN_DSN), "dbname": name})
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_table() -> str:
    """A table name of one test's own in the run's database (dropped with the database), so a
    test that scans or counts sees only its own rows."""
    return f"t_{secrets.token_hex(4)}"
