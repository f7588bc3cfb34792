"""The SQLite store: the embedded default, on the standard library's sqlite3.

One database file holds one table (``websession_sessions`` by default) of ``id``, ``data``
(JSON text) and ``expires`` (Unix seconds, indexed), and the user index beside it
(:mod:`.users`).

What it guarantees:

- **Writers are serialised.** Every change that reads before it writes runs in one
  ``BEGIN IMMEDIATE`` transaction, so concurrent requests, in threads or in processes on this
  machine, apply their changes one after the other and never undo each other.
- **Readers never wait for writers**: the database runs in WAL mode, and each thread has its
  own connection.
- **Expired rows are invisible** to every query, though they stay in the file until
  ``purge_expired()`` deletes them (in batches).

What it does not:

- **Not a network database.** One file on a local disk: SQLite's locking does not work on a
  network file system, and machines cannot share it.
- **A busy database is unavailable, not waited on forever.** A writer waits ``timeout``
  (5 seconds) for the lock, then gets :class:`~websession.errors.StoreUnavailableError`, as
  it does for a database that cannot be opened; other SQLite errors are
  :class:`~websession.errors.SessionStoreError`.
- **Expired rows take space** until a purge: run ``purge_expired()`` (or ``websession purge``)
  from time to time.

Example::

    >>> import tempfile, os
    >>> from websession import create_cookie, create_sqlite_session_storage
    >>> path = os.path.join(tempfile.mkdtemp(), "sessions.db")
    >>> storage = create_sqlite_session_storage(cookie=create_cookie("s", secrets=["k"]), path=path)
"""

from .factory import create_sqlite_session_storage, open_url
from .store import SqliteStore

__all__ = ["SqliteStore", "create_sqlite_session_storage", "open_url"]
