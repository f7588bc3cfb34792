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
- ``lazy=True`` reads the store only when the request touches the session: a request that
  never does costs no store I/O even with a cookie (see :func:`load_session`).
- ``header="X-Session"`` carries the session id in that header instead of a cookie (API and
  mobile clients); ``cookie_options`` gives each request its own cookie attributes.

Example::

    >>> from starlette.applications import Starlette
    >>> from starlette.middleware import Middleware
    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("__session", secrets=["s3cret"]))
    >>> app = Starlette(middleware=[Middleware(SessionMiddleware, storage=storage)])
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, StoreUnavailableError
from ..session import Session
from ..storage import CookieSessionStorage
from ._lazy import Deferred, LazySession, fill, is_loaded, load_error
from ._shared import (
    RETRY_AFTER,
    UNAVAILABLE_BODY,
    AnyStorage,
    Integration,
    commits,
    end_if_emptied,
    log_late_failure,
    varies_on,
)
from ._websocket import WebSocketSession, websocket_session

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._shared import IntegrationOptions

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The messages that carry (the end of) an HTTP response body: pathsend and zerocopysend are
#: the ASGI extensions some servers offer for files.
_BODY_MESSAGES = frozenset({"http.response.body", "http.response.pathsend", "http.response.zerocopysend"})

#: The scope key under which the middleware leaves its storage, for helpers that need it
#: (``destroy``-style calls, the FastAPI ``StorageDep``).
STORAGE_SCOPE_KEY = "websession.storage"

#: What ``cookie_options`` is: the request's scope in, cookie option overrides (or None) out.
CookieOptionsFor = Callable[[Scope], "Mapping[str, Any] | None"]

_SOLUTION = (
    "add websession.integrations.asgi.SessionMiddleware to the app: "
    "app.add_middleware(SessionMiddleware, storage=...)"
)


class SessionNotLoadedError(ConfigurationError):
    """A lazy session (``SessionMiddleware(..., lazy=True)``) was used in async code before it
    was loaded. Loading reads the store; doing that inside ``request.session`` would block the
    event loop, and every other request with it."""

    solution = (
        "await websession.integrations.asgi.load_session(request) before using request.session "
        "(FastAPI: take `session: SessionDep`), or make the endpoint a plain `def` (it runs in a "
        "thread and loads on first use), or leave lazy=True off the middleware"
    )


async def load_session(connection: Any, *, scope_key: str = "session") -> Session:
    """Load the request's session, if the middleware deferred it (``lazy=True``), and return it.

    ``connection`` is a Starlette ``Request``/``WebSocket`` (anything with a ``scope``) or an
    ASGI scope. A session already loaded is returned at once, without I/O; so is every session
    of a middleware that is not lazy. After it, ``request.session`` works in async code.

    Example::

        >>> from starlette.applications import Starlette
        >>> from starlette.middleware import Middleware
        >>> from starlette.responses import PlainTextResponse
        >>> from starlette.routing import Route
        >>> from websession import create_cookie, create_memory_session_storage
        >>> async def visits(request):
        ...     session = await load_session(request)
        ...     session["n"] = session.get("n", 0) + 1
        ...     return PlainTextResponse(str(request.session["n"]))
        >>> async def static(request):
        ...     return PlainTextResponse("no session needed")
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> app = Starlette(
        ...     routes=[Route("/", visits), Route("/static", static)],
        ...     middleware=[Middleware(SessionMiddleware, storage=storage, lazy=True)])
        >>> from starlette.testclient import TestClient
        >>> with TestClient(app) as client:
        ...     [client.get("/").text, client.get("/static").text, client.get("/").text]
        ['1', 'no session needed', '2']
    """
    scope = getattr(connection, "scope", connection)
    session = scope.get(scope_key) if isinstance(scope, Mapping) else None
    if isinstance(session, LazySession):
        loader = session.loader
        if isinstance(loader, _Loader):
            return await loader.aload(session)
    if not isinstance(session, Session):
        raise ConfigurationError("no websession session in this request", solution=_SOLUTION)
    return session


class _Loader:
    """Loads one request's lazy session: awaited through the async door (:func:`load_session`),
    or on first use from a worker thread (Starlette runs plain ``def`` endpoints in one)."""

    __slots__ = ("cookie", "error", "storage")

    def __init__(self, storage: AnyStorage, cookie: str | bytes | None) -> None:
        self.storage = storage
        self.cookie = cookie
        #: The outage met by the load, raised again on any later touch (never retried).
        self.error: StoreUnavailableError | None = None

    async def aload(self, session: LazySession) -> Session:
        if is_loaded(session):
            return session
        if self.error is not None:
            raise self.error
        try:
            found = await self.storage.aget_session(self.cookie)
        except StoreUnavailableError as exc:
            self.error = exc
            raise
        fill(session, found)  # two concurrent loads both read; the first to finish is kept
        return session

    def load(self, session: LazySession) -> None:
        """First use of the session from synchronous code."""
        if self.error is not None:
            raise self.error
        storage = self.storage
        if isinstance(storage, CookieSessionStorage):
            # The data is the cookie: loading is a signature check, no I/O to wait for.
            fill(session, storage.get_session(self.cookie))
            return
        if _on_event_loop():
            raise SessionNotLoadedError("request.session was used before it was loaded, in async code")
        if _in_worker_thread(self.aload, session):
            return
        # A thread of the app's own, with no event loop: the sync door blocks only this thread.
        try:
            found = storage.get_session(self.cookie)
        except StoreUnavailableError as exc:
            self.error = exc
            raise
        fill(session, found)


def _on_event_loop() -> bool:
    """Whether this thread runs an event loop (asyncio, or trio), where blocking I/O stalls it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return True
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _in_worker_thread(aload: Callable[[LazySession], Awaitable[Session]], session: LazySession) -> bool:
    """Run ``aload(session)`` on the event loop when this is one of its AnyIO worker threads
    (Starlette's threadpool) and wait for it; False, having done nothing, when it is not."""
    try:
        from anyio import from_thread
    except ImportError:  # pragma: no cover - Starlette and FastAPI depend on AnyIO
        return False
    entered = False

    async def load() -> None:
        nonlocal entered
        entered = True
        await aload(session)

    try:
        from_thread.run(load)
    except RuntimeError:
        if entered:
            raise
        return False
    return True


def cookie_header(scope: Scope) -> bytes | None:
    """The request's Cookie header; several Cookie fields (HTTP/2) are joined with ``; ``.

    Example::

        >>> cookie_header({"headers": [(b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")]})
        b'a=1; b=2'
    """
    found: bytes | None = None
    for name, value in scope.get("headers", ()):
        # ASGI servers send names in lowercase: only a name of the right length is lowered.
        if name == b"cookie" or (len(name) == 6 and name.lower() == b"cookie"):
            found = value if found is None else found + b"; " + value
    return found


def _may_have_changed(session: Session) -> bool:
    """A cheap first look before a late commit: a loaded session with tracked changes, values
    lent out (an in-place edit shows only in their JSON), or a regenerate or destroy pending.
    Most requests have none, and skip the late commit's own checks altogether."""
    if isinstance(session, Deferred):
        return False  # never touched
    return (
        bool(session._set or session._removed or session._lent) or session.regenerating or session.destroyed
    )


def _varies_on(headers: list[tuple[bytes, bytes]], header: str) -> bool:
    vary = [value.decode("latin-1") for name, value in headers if len(name) == 4 and name.lower() == b"vary"]
    return bool(vary) and varies_on(vary, header)


class SessionMiddleware(Integration[Scope]):
    """Load the session into ``scope["session"]`` and commit it when the response starts.

    ``storage`` is any websession storage (``create_*_session_storage`` or ``open_store``).
    ``unavailable_status`` (503) is the status sent when the store cannot be reached, and
    ``on_unavailable``, an ASGI app, replaces the default plain-text answer. ``vary_cookie``
    adds ``Vary: Cookie`` to every HTTP response, so a shared cache never serves one
    visitor's page to another; turn it off only when no shared cache sits in front.
    ``commit_on_error`` (False) also commits the session of 5xx responses (and what a WebSocket
    app that raised left uncommitted); by default a request that failed with a server error, or
    raised, stores nothing it changed.

    ``lazy`` (False) defers the store read to the first use of the session: a request that
    never touches it costs no store I/O, cookie or not, and commits nothing. Async code loads
    it with ``await load_session(request)`` first (FastAPI's ``SessionDep`` does); plain ``def``
    endpoints, which Starlette runs in a thread, load it on first use. WebSockets are always
    loaded up front. ``header`` (say ``"X-Session"``) carries the session id in that request
    and response header instead of the cookie, for API and mobile clients: the value is
    exactly the cookie's, the Cookie header is ignored, and the response carries the header
    only when the value changes (an empty one tells the client to forget it).
    ``cookie_options``, a callable given the request's scope, returns cookie option overrides
    for this response (``{"domain": ...}`` per tenant); they reach ``acommit_session``.

    Example::

        >>> from starlette.applications import Starlette
        >>> from starlette.responses import PlainTextResponse
        >>> from starlette.routing import Route
        >>> from websession import create_cookie, create_memory_session_storage
        >>> async def count(request):
        ...     request.session["n"] = request.session.get("n", 0) + 1
        ...     return PlainTextResponse(str(request.session["n"]))
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> app = SessionMiddleware(Starlette(routes=[Route("/", count)]), storage=storage)
        >>> from starlette.testclient import TestClient
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
        on_unavailable: ASGIApp | None = None,
        vary_cookie: bool = True,
        **options: Unpack[IntegrationOptions[Scope]],
    ) -> None:
        super().__init__(storage, **options)
        self.app = app
        self.scope_key = scope_key
        self.on_unavailable = on_unavailable
        self.vary_cookie = vary_cookie
        self._header_key = None if self.header is None else self.header.lower().encode("latin-1")
        # Built once: every response names the same header in Vary.
        self._varies = self.header or "Cookie"
        self._vary_header = (b"vary", self._varies.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        carried = self._carried(scope)
        session: Session
        if self.lazy and kind == "http":
            session = LazySession.deferred(_Loader(self.storage, carried))
        else:
            try:
                session = await self.storage.aget_session(carried)
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
                unloaded = isinstance(session, Deferred)  # lazy, and not touched so far
                if unloaded:
                    outage = load_error(session)
                    if isinstance(outage, StoreUnavailableError) and message["status"] >= 500:
                        # The lazy load failed and the app did not recover (an error middleware
                        # inside ours may have made it a 500): the client gets the 503.
                        failed = True
                        await self._unavailable(scope, receive, send, outage)
                        return
                permitted = commits(message["status"], self.commit_on_error)
                # A lazy session never touched was never read: there is nothing to commit.
                if permitted and not unloaded:
                    end_if_emptied(session)
                    try:
                        if self.cookie_options is None:
                            set_cookie = await self.storage.acommit_session(session)
                        else:
                            set_cookie = await self.storage.acommit_session(
                                session, **self._requested_overrides(scope)
                            )
                    except StoreUnavailableError as exc:
                        failed = True
                        await self._unavailable(scope, receive, send, exc)
                        return
                # Late changes may follow, even to a lazy session first loaded by the body.
                committed = permitted
                message = self._with_headers(message, set_cookie, scope)
            elif committed and message["type"] in _BODY_MESSAGES:
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
        if finished and _may_have_changed(session):
            # Background tasks ran inside the app call, after the body. A body cut short (the
            # client went away) is a response that failed: nothing is committed late.
            await self._commit_late(scope, session)

    async def _commit_late(self, scope: Scope, session: Session) -> None:
        """Commit what changed after the response started (a streaming body, a background
        task) when the browser's cookie can stay as it is; else log why it was not saved.
        Errors are logged: the response has gone, so they cannot become a 503."""
        if not is_loaded(session):
            return  # never touched, even late: nothing to commit (and no load on the loop)
        path = scope.get("path", "")
        try:
            end_if_emptied(session)
            if self._ready_to_commit_late(session, path):
                # Its Set-Cookie (rolling) cannot be sent any more; the id, and so the cookie, is unchanged.
                await self.storage.acommit_session(session, **self._requested_overrides(scope))
        except Exception as exc:  # a value that no longer encodes, a store error, cookie_options
            log_late_failure(exc, path)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, session: Session) -> None:
        """Run a WebSocket app with a :class:`WebSocketSession`, committing what is left when
        the socket closes: the client disconnects, the app closes it, or the app returns."""
        socket_session: WebSocketSession = WebSocketSession(
            session, self.storage, scope.get("path", ""), self._requested_overrides(scope)
        )
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

    def _carried(self, scope: Scope) -> str | bytes | None:
        """The Cookie header the session is read from (in header mode, what the header stands for)."""
        if self._header_key is None:
            return cookie_header(scope)
        return self._carried_cookie(self._header_value(scope))

    def _header_value(self, scope: Scope) -> str | None:
        """The session id header the request sent (the first one), or None."""
        key = self._header_key
        for name, value in scope.get("headers", ()):
            if name.lower() == key:
                return str(value.decode("latin-1"))
        return None

    def _id_header(self, set_cookie: str | None, scope: Scope) -> tuple[bytes, bytes] | None:
        """The header that sends the session id: Set-Cookie, or in header mode the header itself,
        only when its value changes (a rolling cookie's fresh Max-Age means nothing there)."""
        if set_cookie is None:
            return None
        if self._header_key is None:
            return (b"set-cookie", set_cookie.encode("latin-1"))
        value = self._changed_id(set_cookie, self._header_value(scope))
        return None if value is None else (self._header_key, value.encode("latin-1"))

    def _with_headers(self, message: Message, set_cookie: str | None, scope: Scope) -> Message:
        id_header = self._id_header(set_cookie, scope)
        if id_header is None and not self.vary_cookie:
            return message
        # A copy: apps may send the same headers list with every response.
        headers = list(message.get("headers", ()))
        if id_header is not None:
            headers.append(id_header)
        if self.vary_cookie and not _varies_on(headers, self._varies):
            headers.append(self._vary_header)
        message = dict(message)
        message["headers"] = headers
        return message

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, exc: StoreUnavailableError
    ) -> None:
        self._outage(exc)
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


__all__ = [
    "STORAGE_SCOPE_KEY",
    "CookieOptionsFor",
    "SessionMiddleware",
    "SessionNotLoadedError",
    "WebSocketSession",
    "cookie_header",
    "load_session",
    "websocket_session",
]
