"""The SQLite storage factory and its URL: ``sqlite:///var/lib/app/sessions.db``.

What SQLite guarantees once this is done: the database file is open (created, for its owner
only, if it was missing), in WAL mode, with its tables, so a path that cannot be opened fails
here, with :class:`~websession.errors.StoreUnavailableError`, not on the first request.

What it does not: check that the file is on a local disk (SQLite's locks do not work on
network file systems), or share it between machines. ``:memory:`` is one database per
connection, so per thread: only the thread that made the store has the tables, and is the only
one that can use it (tests).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from ...cookie import CookieLike
from ...options import StorageOptions, assemble, check_options, store_arguments, url_options
from ...storage import SessionStorage
from ...urls import cookie_from_options, reject_unknown, url_path
from .store import SqliteStore

if TYPE_CHECKING:
    from typing_extensions import Unpack


def create_sqlite_session_storage(
    *,
    path: str | os.PathLike[str],
    cookie: CookieLike = None,
    table: str = "websession_sessions",
    touch_interval: float = 60.0,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions in a SQLite database file: the embedded default.

    ``table`` names the sessions table (a plain SQL identifier), to share a database;
    ``touch_interval`` limits rolling rewrites of the expiry. The shared options (``ttl`` or
    its older spelling ``default_ttl``, ``rolling``, ``absolute_timeout``,
    ``storage_key_secret``, ...) are :class:`~websession.options.StorageOptions`.

    Example::

        >>> import os, tempfile
        >>> from websession import create_cookie
        >>> path = os.path.join(tempfile.mkdtemp(), "sessions.db")
        >>> storage = create_sqlite_session_storage(path=path, cookie=create_cookie("s", secrets=["k"]))
        >>> session = storage.get_session(None)
        >>> session["n"] = 1
        >>> storage.get_session(storage.commit_session(session))["n"]
        1
    """
    # Before the store opens (and creates) the database, as Python refuses a wrong keyword.
    check_options("create_sqlite_session_storage", options)
    store = SqliteStore(path, table=table, touch_interval=touch_interval, **store_arguments(options))
    return assemble("create_sqlite_session_storage", store, cookie, options)


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``sqlite:///var/lib/app/sessions.db`` (absolute) or ``sqlite://./sessions.db``."""
    cookie = cookie_from_options(options)
    shared = url_options(options)
    table = options.pop("table", "websession_sessions")
    reject_unknown("sqlite", options)
    return create_sqlite_session_storage(path=url_path(url), cookie=cookie, table=table, **shared)
