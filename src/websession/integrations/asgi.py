"""ASGI middleware: server-side sessions for Starlette, FastAPI and any other ASGI app.

The middleware reads the session before the app runs and puts it in ``scope["session"]``,
where Starlette's and FastAPI's ``request.session`` find it, so code written for Starlette's
own ``SessionMiddleware`` runs unchanged. When the response starts, it commits the session
through the storage's async door and appends a ``Set-Cookie`` header only when the browser's
cookie must change. Other ``Set-Cookie`` headers the app sent are kept.

- A request without the session cookie does no store I/O.
- Lifespan scopes pass straight through.
- WebSocket scopes get a :class:`WebSocketSession`, loaded from the handshake's cookie: the app
  commits its changes with ``await websocket.session.commit()``, and what is left is committed
  when the socket closes (the client disconnects, the app closes it, or the app returns; an
  error there is logged). A socket cannot change the browser's cookie, so ``regenerate()`` and
  a new session with data raise :class:`~websession.errors.CookieNotDeliverableError`.
- When the store cannot be reached (:class:`~websession.errors.StoreUnavailableError`), the
  client gets a plain 503 (``unavailable_status``) and the app's response is dropped; the
  browser keeps its cookie, and no other session is ever used in its place.
- A response with a 5xx status (an unhandled exception that Starlette's error middleware
  turned into a 500, or any other server error) commits nothing: what the view changed before
  it failed is dropped and no Set-Cookie is sent. Pass ``commit_on_error=True`` for apps whose
  error handlers change the session on purpose.
- Changes made after the response started (in a streaming body or a background task) are
  committed late, before the last chunk of a streamed body and again when the app returns,
  when the browser's cookie can stay as it is. One that would need a new cookie (a new session,
  ``regenerate()``, cookie storage) is logged as a warning naming the path, and not saved; a
  store error there is logged too, as the response has gone. A response that failed (5xx, the
  app raised, or the body was cut short) commits nothing late either.

Example::

    >>> from starlette.applications import Starlette
    >>> from starlette.middleware import Middleware
    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("__session", secrets=["s3cret"]))
    >>> app = Starlette(middleware=[Middleware(SessionMiddleware, storage=storage)])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import StoreUnavailableError
from ..session import Session
from ._shared import (
    RETRY_AFTER,
    UNAVAILABLE_BODY,
    AnyStorage,
    commits,
    end_if_emptied,
    has_cookie_vary,
    has_pending,
    log_late_failure,
    log_not_saved,
    log_unavailable,
    needs_new_cookie,
)
from ._websocket import WebSocketSession, websocket_session

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope key under which the middleware leaves its storage, for helpers that need it
#: (``destroy``-style calls, the FastAPI ``StorageDep``).
STORAGE_SCOPE_KEY = "websession.storage"


def cookie_header(scope: Scope) -> bytes | None:
    """The request's Cookie header; several Cookie fields (HTTP/2) are joined with ``; ``.

    Example::

        >>> cookie_header({"headers": [(b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")]})
        b'a=1; b=2'
    """
    values = [value for name, value in scope.get("headers", ()) if name.lower() == b"cookie"]
    if not values:
        return None
    return values[0] if len(values) == 1 else b"; ".join(values)


def _varies_on_cookie(headers: list[tuple[bytes, bytes]]) -> bool:
    vary = [value.decode("latin-1") for name, value in headers if len(name) == 4 and name.lower() == b"vary"]
    return bool(vary) and has_cookie_vary(vary)


class SessionMiddleware:
    """Load the session into ``scope["session"]`` and commit it when the response starts.

    ``storage`` is any websession storage (``create_*_session_storage`` or ``open_store``).
    ``unavailable_status`` (503) is the status sent when the store cannot be reached, and
    ``on_unavailable``, an ASGI app, replaces the default plain-text answer. ``vary_cookie``
    adds ``Vary: Cookie`` to every HTTP response, so a shared cache never serves one
    visitor's page to another; turn it off only when no shared cache sits in front.
    ``commit_on_error`` (False) also commits the session of 5xx responses (and what a WebSocket
    app that raised left uncommitted); by default a request that failed with a server error, or
    raised, stores nothing it changed.

    Example::

        >>> from starlette.applications import Starlette
        >>> from starlette.responses import PlainTextResponse
        >>> from starlette.routing import Route
        >>> from starlette.testclient import TestClient
        >>> from websession import create_cookie, create_memory_session_storage
        >>> async def count(request):
        ...     request.session["n"] = request.session.get("n", 0) + 1
        ...     return PlainTextResponse(str(request.session["n"]))
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> app = SessionMiddleware(Starlette(routes=[Route("/", count)]), storage=storage)
        >>> with TestClient(app) as client:
        ...     [client.get("/").text for _ in range(3)]
        ['1', '2', '3']
    """

    def __init__(
        self,
        app: ASGIApp,
        storage: AnyStorage,
        *,
        scope_key: str = "session",
        unavailable_status: int = 503,
        on_unavailable: ASGIApp | None = None,
        vary_cookie: bool = True,
        commit_on_error: bool = False,
    ) -> None:
        self.app = app
        self.storage = storage
        self.scope_key = scope_key
        self.unavailable_status = unavailable_status
        self.on_unavailable = on_unavailable
        self.vary_cookie = vary_cookie
        self.commit_on_error = commit_on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            session = await self.storage.aget_session(cookie_header(scope))
        except StoreUnavailableError as exc:
            await self._unavailable(scope, receive, send, exc)
            return
        scope[self.scope_key] = session
        scope[STORAGE_SCOPE_KEY] = self.storage
        if kind == "websocket":
            await self._websocket(scope, receive, send, session)
        else:
            await self._http(scope, receive, send, session)

    async def _http(self, scope: Scope, receive: Receive, send: Send, session: Session) -> None:
        started = False
        failed = False
        committed = False  # the session was committed when the response started
        streamed = False  # the body comes in several messages
        finished = False  # the last chunk of the body went: the response was delivered in full

        async def send_with_cookie(message: Message) -> None:
            nonlocal started, failed, committed, streamed, finished
            if failed:
                # The client already has the 503; whatever the app still sends is dropped.
                return
            if message["type"] == "http.response.start":
                started = True
                set_cookie = None
                if commits(message["status"], self.commit_on_error):
                    end_if_emptied(session)
                    try:
                        set_cookie = await self.storage.acommit_session(session)
                    except StoreUnavailableError as exc:
                        failed = True
                        await self._unavailable(scope, receive, send, exc)
                        return
                    committed = True
                message = self._with_headers(message, set_cookie)
            elif committed and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    streamed = True
                else:
                    if streamed:
                        # Before the last chunk goes: a client that saw the stream end finds its changes.
                        await self._commit_late(scope, session)
                    finished = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_cookie)
        except StoreUnavailableError as exc:
            # The app itself called the store (destroy_session, a second storage) and it
            # failed before any response: still a 503, not a 500.
            if started:
                raise
            await self._unavailable(scope, receive, send, exc)
            return
        if finished:
            # Background tasks ran inside the app call, after the body. A body cut short (the
            # client went away) is a response that failed: nothing is committed late.
            await self._commit_late(scope, session)

    async def _commit_late(self, scope: Scope, session: Session) -> None:
        """Commit what changed after the response started (a streaming body, a background
        task) when the browser's cookie can stay as it is; else log why it was not saved.
        Errors are logged: the response has gone, so they cannot become a 503."""
        end_if_emptied(session)
        if not has_pending(session):
            return
        path = scope.get("path", "")
        reason = needs_new_cookie(session, self.storage)
        if reason is not None:
            log_not_saved(reason, path)
            return
        try:
            # Its Set-Cookie (rolling) cannot be sent any more; the id, and so the cookie, is unchanged.
            await self.storage.acommit_session(session)
        except Exception as exc:
            log_late_failure(exc, path)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, session: Session) -> None:
        """Run a WebSocket app with a :class:`WebSocketSession`, committing what is left when
        the socket closes: the client disconnects, the app closes it, or the app returns."""
        socket_session: WebSocketSession = WebSocketSession(session, self.storage, scope.get("path", ""))
        scope[self.scope_key] = socket_session

        async def receive_closing() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await socket_session._commit_at_close()
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] == "websocket.close":
                # Before the close frame: a client that saw it close finds the changes stored.
                await socket_session._commit_at_close()
            try:
                await send(message)
            except OSError:
                # ASGI servers raise an OSError when the client has gone: the socket closed.
                await socket_session._commit_at_close()
                raise

        try:
            await self.app(scope, receive_closing, send_closing)
        except Exception:
            # A failed app commits nothing more, as a failed HTTP request (changes it
            # committed itself, or that a close committed, stay).
            if self.commit_on_error:
                await socket_session._commit_at_close()
            raise
        await socket_session._commit_at_close()

    def _with_headers(self, message: Message, set_cookie: str | None) -> Message:
        if set_cookie is None and not self.vary_cookie:
            return message
        # A copy: apps may send the same headers list with every response.
        headers = list(message.get("headers", ()))
        if set_cookie is not None:
            headers.append((b"set-cookie", set_cookie.encode("latin-1")))
        if self.vary_cookie and not _varies_on_cookie(headers):
            headers.append((b"vary", b"Cookie"))
        message = dict(message)
        message["headers"] = headers
        return message

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, exc: StoreUnavailableError
    ) -> None:
        log_unavailable(exc, self.unavailable_status)
        if self.on_unavailable is not None:
            await self.on_unavailable(scope, receive, send)
            return
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(UNAVAILABLE_BODY)).encode("ascii")),
            (b"retry-after", RETRY_AFTER.encode("ascii")),
            (b"cache-control", b"no-store"),
        ]
        if scope["type"] == "websocket":
            if "websocket.http.response" in scope.get("extensions", {}):
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": self.unavailable_status,
                        "headers": headers,
                    }
                )
                await send({"type": "websocket.http.response.body", "body": UNAVAILABLE_BODY})
            else:
                # 1013 "Try Again Later"; before the handshake the server turns it into a 403.
                await send({"type": "websocket.close", "code": 1013})
            return
        await send({"type": "http.response.start", "status": self.unavailable_status, "headers": headers})
        await send({"type": "http.response.body", "body": UNAVAILABLE_BODY})


__all__ = ["STORAGE_SCOPE_KEY", "SessionMiddleware", "WebSocketSession", "cookie_header", "websocket_session"]
