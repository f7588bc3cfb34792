"""The session of a WebSocket: loaded from the handshake's cookie, committed over the socket.

The ASGI middleware puts a :class:`WebSocketSession` in ``scope["session"]`` for WebSocket
scopes (``websocket.session`` in Starlette and FastAPI). The app changes it as it would in an
HTTP view and stores the changes with ``await websocket.session.commit()``; what is left is
committed when the socket closes. A commit applies only the changes, atomically, through the
storage's async door, so two sockets (or a socket and HTTP requests) of one session never
undo each other, and a session another request destroyed never comes back.

A socket cannot change the browser's cookie, so what would need a new one is refused with
:class:`~websession.errors.CookieNotDeliverableError`: ``regenerate()``, a new session with
data (no cookie came with the handshake), and any change to a cookie-stored session.
``destroy()`` works with a server-side store: the record is deleted, so the session ends for
every tab at once; the browser keeps a cookie that names nothing, which its next HTTP request
finds stale and clears (as after ``websession rm`` or an expiry).

Example::

    >>> import asyncio
    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    >>> first = storage.get_session(None)
    >>> first["user"] = "ada"
    >>> cookie = storage.commit_session(first).split(";")[0]
    >>> socket = WebSocketSession(storage.get_session(cookie), storage)
    >>> socket["room"] = "lobby"
    >>> asyncio.run(socket.commit())
    >>> storage.get_session(cookie).data
    {'user': 'ada', 'room': 'lobby'}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import anyio

from ..changes import Changes
from ..errors import CookieNotDeliverableError
from ..session import Data, Flash, Session
from ..stores.base import Record
from ._shared import (
    AnyStorage,
    end_if_emptied,
    has_pending,
    log_late_failure,
    log_not_saved,
    needs_new_cookie,
)

_MISSING: Any = object()


class HasScope(Protocol):
    """Anything that carries an ASGI scope: Starlette's and FastAPI's ``WebSocket``."""

    @property
    def scope(self) -> Mapping[str, Any]: ...


class WebSocketSession(Session[Data, Flash]):
    """The session of one WebSocket connection, with :meth:`commit`.

    The middleware builds it from the session the handshake's cookie named. Reads and changes
    work as on any :class:`~websession.Session`. ``regenerate()`` raises
    :class:`~websession.errors.CookieNotDeliverableError` at once (regenerate over HTTP before
    opening the socket); a new session with data, or a changed cookie-stored session, raises it
    at :meth:`commit`. ``websocket_session(websocket)`` returns it typed.

    Example::

        >>> from websession import create_cookie, create_memory_session_storage
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> socket = WebSocketSession(Session(), storage)
        >>> socket.regenerate()
        Traceback (most recent call last):
        ...
        websession.errors.CookieNotDeliverableError: regenerate() needs a new session cookie, ...
    """

    __slots__ = ("_committing", "_gave_up", "_lock", "_overrides", "_storage", "path")

    def __init__(
        self,
        session: Session[Data, Flash],
        storage: AnyStorage,
        path: str = "",
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(session.data, session.id, record=session.record, codec=session.codec)
        self.stale_cookie = session.stale_cookie
        self.resign = session.resign
        self.binding = session.binding
        self._storage = storage
        #: The handshake's cookie option overrides (the middleware's ``cookie_options``): a
        #: ``max_age`` there is the record's lifetime at every commit, as over HTTP.
        self._overrides = dict(overrides or {})
        #: The path of the socket, for log lines.
        self.path = path
        self._lock: anyio.Lock | None = None
        self._committing: Changes | None = None
        self._gave_up = False

    def regenerate(self) -> None:
        """Refused: a new id needs a new cookie, and a WebSocket cannot send one."""
        raise CookieNotDeliverableError(
            "regenerate() needs a new session cookie, which a WebSocket cannot send"
        )

    async def commit(self) -> None:
        """Store what changed since the handshake (or the last commit), atomically.

        Only the changes are applied, to what is stored now: another socket's or request's
        changes to other keys are kept, and afterwards this session holds them too. When
        another request destroyed the session meanwhile, nothing is written and
        :attr:`destroyed` becomes true. An unchanged session costs no store I/O.

        Raises :class:`~websession.errors.CookieNotDeliverableError` for a change that needs a
        new cookie, and :class:`~websession.errors.StoreUnavailableError` when the store cannot
        be reached; then nothing was written, and the changes stay pending for the next commit.
        """
        if self._lock is None:
            self._lock = anyio.Lock()  # asyncio or trio, as the server runs
        # One commit at a time: two tasks of one socket must not apply the same changes twice.
        async with self._lock:
            end_if_emptied(self)
            reason = needs_new_cookie(self, self._storage)
            if reason is not None:
                raise CookieNotDeliverableError(f"cannot commit the session of this WebSocket: {reason}")
            if not has_pending(self):
                return
            self._committing = self.changes
            try:
                # The Set-Cookie it may return (rolling, re-signing) has nowhere to go; the id,
                # and so the browser's cookie, stays valid.
                await self._storage.acommit_session(self, **self._overrides)
            finally:
                self._committing = None

    async def _commit_at_close(self) -> None:
        """The commit when the socket closes: nobody can catch an error here, so it is logged
        (once: after a failure, later closing events do not try again)."""
        if self._gave_up:
            return
        try:
            await self.commit()
        except CookieNotDeliverableError as exc:
            self._gave_up = True
            reason = needs_new_cookie(self, self._storage) or str(exc)
            log_not_saved(reason, self.path, websocket=True)
        except Exception as exc:
            self._gave_up = True
            log_late_failure(exc, self.path)

    def _committed(self, id: str | None, record: Record | None, data: dict[str, Any] | None = None) -> None:
        """After a commit: keep the changes other tasks made while the store was busy."""
        committing = self._committing
        if committing is None or record is None:
            super()._committed(id, record, data)
            return
        later_set = {k: v for k, v in self._set.items() if committing.set.get(k, _MISSING) is not v}
        later_removed = self._removed - committing.removed
        super()._committed(id, record, data)
        for key, value in later_set.items():
            self[key] = value
        for key in later_removed:
            if key in self._data:
                del self[key]


def websocket_session(websocket: HasScope, scope_key: str = "session") -> WebSocketSession:
    """The :class:`WebSocketSession` of a WebSocket connection, typed (Starlette types
    ``websocket.session`` as a plain dict).

    Raises ``TypeError`` when the connection has no websession WebSocket session: the
    middleware is missing, or it is an HTTP request.

    Example::

        >>> from types import SimpleNamespace
        >>> from websession import create_cookie, create_memory_session_storage
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> socket = WebSocketSession(Session(), storage)
        >>> websocket_session(SimpleNamespace(scope={"session": socket})) is socket
        True
    """
    session = websocket.scope.get(scope_key)
    if not isinstance(session, WebSocketSession):
        raise TypeError(
            "no websession WebSocket session in this connection: add "
            "websession.integrations.asgi.SessionMiddleware to the app"
        )
    return session
