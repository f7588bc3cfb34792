"""The PostgreSQL store: psycopg 3 with connection pools, sync and async.

One table (``websession_sessions`` by default) holds ``id`` (text, primary key), ``data``
(``jsonb``) and ``expires`` (``timestamptz``, indexed); users and their devices
(websession.users) live in two more tables beside it. All are created by
:meth:`PostgresStore.setup` / :meth:`PostgresStore.asetup`, or on first use.

What PostgreSQL guarantees, and the store relies on: each operation is one statement (one
round trip), atomic, under row locks, in READ COMMITTED; a change set never undoes a
concurrent one and never brings back a destroyed or expired session. What it does not: expire
rows (they stay until :meth:`PostgresStore.purge_expired`, treated as absent meanwhile), keep
``-0.0``, key order or U+0000 in ``jsonb``, or wait for ever for a connection (a full pool is
:class:`~websession.errors.StoreUnavailableError` after its timeout).

Where things are, one module per concept:

- :mod:`.store`: :class:`PostgresStore` and its records (create, read, update, delete, take).
- :mod:`.users`: the user index tables and their operations.
- :mod:`.maintenance`: scan, count, bulk writes, purging expired rows.
- :mod:`.pools`: connections, pools, setup on first use, error translation, pipelines.
- :mod:`.queries`: every SQL statement, and why none is outrun by another.
- :mod:`.jsonb`: what ``jsonb`` does to JSON, and :func:`jsonb_text`.
- :mod:`.factory`: :func:`create_postgres_session_storage` and ``postgresql://`` URLs.

Example (needs a server, so not run as a doctest)::

    from websession import create_cookie, create_postgres_session_storage

    storage = create_postgres_session_storage(
        cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
        dsn="postgresql://app@localhost/app",
    )
    storage.store.setup()          # optional: the table is also created on first use
"""

from __future__ import annotations

from .factory import _URL_OPTIONS as _URL_OPTIONS
from .factory import create_postgres_session_storage
from .factory import open_url as open_url
from .jsonb import jsonb_text
from .pools import DEFAULT_POOL_OPTIONS
from .queries import sibling_table as sibling_table
from .store import PostgresStore

__all__ = ["DEFAULT_POOL_OPTIONS", "PostgresStore", "create_postgres_session_storage", "jsonb_text"]
