"""Making a PostgreSQL session storage: :func:`create_postgres_session_storage`, and
:func:`open_url` for ``postgresql://`` store URLs.

What PostgreSQL guarantees once this is done: the store's pools connect lazily, on the first
request of each door, and the tables are created then too (unless ``create_table=False``).

What it does not: check the connection here. A wrong DSN, an unreachable server or missing
privileges show on first use, as :class:`~websession.errors.StoreUnavailableError` or
:class:`~websession.errors.SessionStoreError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlunsplit

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ...cookie import CookieLike
from ...options import StorageOptions, assemble, store_arguments, url_options
from ...storage import SessionStorage
from ...urls import cookie_from_options, reject_unknown
from .store import PostgresStore

if TYPE_CHECKING:
    from typing_extensions import Unpack


def create_postgres_session_storage(
    *,
    cookie: CookieLike = None,
    dsn: str | None = None,
    pool: ConnectionPool[Any] | None = None,
    async_pool: AsyncConnectionPool[Any] | None = None,
    table: str = "websession_sessions",
    pool_options: Mapping[str, Any] | None = None,
    create_table: bool = True,
    touch_interval: float = 60.0,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions in a PostgreSQL table (``jsonb`` data, indexed ``timestamptz`` expiry).

    ``dsn`` opens pools lazily, one per door; or pass ``pool=`` / ``async_pool=`` that you
    own. ``pool_options`` go to the pools the store opens (default
    ``{"min_size": 1, "max_size": 10, "timeout": 5.0}``). ``create_table=False`` skips the
    first-use ``CREATE TABLE IF NOT EXISTS`` (call ``storage.store.setup()`` in a migration).
    ``touch_interval`` (seconds) is how far a rolling read must move the expiry before the row
    is rewritten.

    The shared options (``ttl`` or ``default_ttl``, ``rolling``, ``absolute_timeout``,
    ``storage_key_secret``, ``codec``, ...) are :class:`~websession.options.StorageOptions`.
    Without ``ttl`` a record lives as long as its cookie, and forever for a session cookie.

    Example (needs a server)::

        from websession import create_cookie, create_postgres_session_storage

        storage = create_postgres_session_storage(
            cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
            dsn="postgresql://app@localhost/app",
        )
        session = storage.get_session(None)
        session["user"] = 42
        header = storage.commit_session(session)   # INSERT, then Set-Cookie
    """
    store = PostgresStore(
        dsn=dsn,
        pool=pool,
        async_pool=async_pool,
        table=table,
        pool_options=pool_options,
        create_table=create_table,
        touch_interval=touch_interval,
        **store_arguments(options),
    )
    return assemble("create_postgres_session_storage", store, cookie, options)


#: URL parameter -> psycopg_pool argument, and its type.
_POOL_OPTIONS: tuple[tuple[str, str, type[Any]], ...] = (
    ("min_size", "min_size", int),
    ("max_size", "max_size", int),
    ("pool_timeout", "timeout", float),
)

#: The query parameters of a URL that are websession's (the cookie's, the shared options', the
#: store's own); every other one stays in the DSN for libpq.
_URL_OPTIONS = frozenset(
    {"secrets", "cookie", "cookie_name", "max_age"}
    | {"rolling", "save_uninitialized", "codec", "ttl", "absolute_timeout"}
    | {"table", "create_table", "touch_interval"}
    | {name for name, _, _ in _POOL_OPTIONS}
)


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``postgresql://user:pass@host:5432/db?table=sessions&sslmode=require`` (or ``postgres://``).

    websession's options (``table``, ``min_size``, ``max_size``, ``pool_timeout``,
    ``create_table``, ``touch_interval``, the cookie options and the shared ones: ``ttl``,
    ``rolling``, ``save_uninitialized``, ``absolute_timeout``, ``codec``) are taken out; every
    other query parameter stays in the DSN for libpq (``sslmode``, ``connect_timeout``, ...).
    """
    libpq = [(k, v) for k, v in parse_qsl(url.query) if k not in _URL_OPTIONS]
    for name, _ in libpq:
        options.pop(name, None)
    dsn = urlunsplit(("postgresql", url.netloc, url.path, urlencode(libpq), ""))
    cookie = cookie_from_options(options)
    shared = url_options(options)
    table = options.pop("table", "websession_sessions")
    touch_interval = float(options.pop("touch_interval", 60.0))
    create_table = str(options.pop("create_table", "true")).lower() in ("1", "true", "yes")
    pool_options = {key: kind(options.pop(name)) for name, key, kind in _POOL_OPTIONS if name in options}
    reject_unknown(url.scheme, options)
    return create_postgres_session_storage(
        dsn=dsn,
        cookie=cookie,
        table=table,
        pool_options=pool_options,
        create_table=create_table,
        touch_interval=touch_interval,
        **shared,
    )
