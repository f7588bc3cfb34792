"""The PostgreSQL server on 127.0.0.1:5432, used through a database of the test run's own.

The session fixture creates ``websession_test_<random>`` and drops it at the end, so tests
never touch another database on the server. ``temporary_database`` does the same for code
that needs a database of its own outside a fixture (the docs test gives each page one).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN_DSN = os.environ.get(
    "WEBSESSION_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.contextmanager
def temporary_database(prefix: str = "websession_test") -> Iterator[str]:
    """DSN of a fresh database ``<prefix>_<random>``, dropped on exit; an error (not a skip)
    when PostgreSQL is down."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {exc}; run the tests with "
            "`python3 scripts/test.py`, which starts it"
        )
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_conninfo("", **{**conninfo_to_dict(POSTGRES_ADMIN_DSN), "dbname": name})
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a fresh database for this test run; an error (not a skip) when PostgreSQL is down."""
    with temporary_database() as dsn:
        yield dsn


@pytest.fixture
def postgres_table() -> str:
    """A table name of one test's own in the run's database (dropped with the database), so a
    test that scans or counts sees only its own rows."""
    return f"t_{secrets.token_hex(4)}"
