"""The exception hierarchy.

Every exception websession raises derives from :class:`SessionError`. Each one can carry a
``solution``: one sentence on how to fix the cause, shown after the message.

Example::

    try:
        storage.commit_session(session)
    except StoreUnavailableError:
        ...  # answer 503 and let the client retry
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class of every websession error."""

    solution: str | None = None

    def __init__(self, message: str, *, solution: str | None = None) -> None:
        super().__init__(message)
        if solution is not None:
            self.solution = solution

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.solution})" if self.solution else message


class ConfigurationError(SessionError):
    """The storage or cookie was built with options that cannot work together."""


class CookieTooLargeError(SessionError):
    """A Set-Cookie header would exceed the 4096 bytes browsers keep."""

    solution = "store less in the session, or use a server-side store"


class CookieNotDeliverableError(SessionError):
    """A change needs a new session cookie, and nothing can carry one to the browser.

    Raised over a WebSocket, which cannot change the browser's cookie: by ``regenerate()``, and
    by ``commit()`` of a new session with data (no cookie came with the handshake) or of any
    change to a cookie-stored session. The same changes made after an HTTP response started
    are logged as not saved instead, as nobody could catch an error there.

    Example::

        >>> error = CookieNotDeliverableError("regenerate() needs a new session cookie")
        >>> error.solution
        'regenerate or start the session over HTTP before opening the socket'
    """

    solution = "regenerate or start the session over HTTP before opening the socket"


class SessionStoreError(SessionError):
    """The store answered, but refused or failed the operation."""


class StoreUnavailableError(SessionStoreError):
    """The store could not be reached: connection refused, timeout, or a restart.

    Middleware turns it into a 503 response. The original exception is ``__cause__``.
    """


class RecordTooLargeError(SessionStoreError):
    """A session record is larger than the store's item limit."""

    solution = "store less in the session"


class UserIndexUnsupportedError(SessionError):
    """The store cannot keep a per-user index atomically (memcached, Workers KV, custom
    callbacks), so sessions cannot be signed in as users, listed or revoked by user there."""

    solution = (
        "keep sessions that sign users in on a store with a user index: memory, file, SQLite, "
        "Redis, Upstash, PostgreSQL or DynamoDB"
    )
