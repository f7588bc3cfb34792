"""WSGI middleware: server-side sessions for any WSGI framework (Bottle, Falcon, Pyramid, ...).

The middleware reads the session through the storage's sync door and puts it in
``environ["websession.session"]``. When the app calls ``start_response``, it commits the
session and appends a ``Set-Cookie`` header only when the browser's cookie must change; the
app's own ``Set-Cookie`` headers are kept. What the app changes while its body iterable runs is
committed when the server closes the body after sending it in full, if the browser's cookie can
stay as it is (else a warning says why it was not saved). A request without the session cookie
does no store I/O. When the store cannot be reached, the client gets a plain 503
(``unavailable_status``) instead of the app's response, and its cookie is left alone.

``lazy=True`` reads the store only when the app first touches the session, so a request that
never does costs no store I/O even with a cookie. ``header="X-Session"`` carries the session
id in that header instead of a cookie (for API and mobile clients), and ``cookie_options``
gives each request its own cookie attributes.

Flask has its own, closer integration: :mod:`websession.integrations.flask`.

Example::

    >>> from wsgiref.util import setup_testing_defaults
    >>> from websession import create_cookie, create_memory_session_storage
    >>> def app(environ, start_response):
    ...     session = environ["websession.session"]
    ...     session["visits"] = session.get("visits", 0) + 1
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [str(session["visits"]).encode()]
    >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    >>> wrapped = SessionMiddleware(app, storage)
    >>> environ = {}; setup_testing_defaults(environ)
    >>> sent = []
    >>> body = wrapped(environ, lambda status, headers, exc_info=None: sent.append(headers))
    >>> b"".join(body), [value.split("=")[0] for name, value in sent[0] if name == "Set-Cookie"]
    (b'1', ['s'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Protocol

from ..errors import StoreUnavailableError
from ..session import Session
from ._lazy import LazySession, fill, is_loaded, load_error
from ._shared import (
    RETRY_AFTER,
    UNAVAILABLE_BODY,
    AnyStorage,
    Integration,
    commits,
    end_if_emptied,
    log_late_failure,
    status_line,
    varies_on,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._shared import IntegrationOptions

ExcInfo = tuple[type[BaseException], BaseException, Optional[TracebackType]]  # noqa: UP045 - runtime alias on 3.10
Headers = list[tuple[str, str]]
Write = Callable[[bytes], object]


class StartResponse(Protocol):
    def __call__(self, status: str, headers: Headers, exc_info: ExcInfo | None = ..., /) -> Write: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
#: What ``cookie_options`` is: the request's environ in, cookie option overrides (or None) out.
CookieOptionsFor = Callable[[dict[str, Any]], Optional[Mapping[str, Any]]]  # noqa: UP045 - runtime alias

#: The environ key under which the session is found.
SESSION_ENVIRON_KEY = "websession.session"
#: The environ key under which the storage is found.
STORAGE_ENVIRON_KEY = "websession.storage"


def get_session(environ: dict[str, Any]) -> Session:
    """The request's session, from a WSGI environ the middleware has seen.

    Example::

        >>> get_session({"websession.session": Session({"a": 1})})["a"]
        1
    """
    session = environ.get(SESSION_ENVIRON_KEY)
    if not isinstance(session, Session):
        raise KeyError(
            "no websession session in environ: wrap the app in websession.integrations.wsgi.SessionMiddleware"
        )
    return session


class SessionMiddleware(Integration[dict[str, Any]]):
    """Load the session into ``environ["websession.session"]`` and commit it at ``start_response``.

    ``unavailable_status`` (503) is the status answered when the store cannot be reached.
    ``environ_key`` (``"websession.session"``) is where the session is put in the environ.
    ``vary_cookie`` adds ``Vary: Cookie`` to every response so that shared caches never hand
    one visitor's page to another. A 5xx response (or an app that raised) commits nothing the
    request changed, unless ``commit_on_error`` is True (False by default).

    ``lazy`` (False) reads the store on the first use of the session instead of before the
    app runs; a request that never uses it does no store I/O and commits nothing. ``header``
    (say ``"X-Session"``) carries the session id in that header instead of the cookie: the
    value is exactly the cookie's, the Cookie header is ignored, and the response carries the
    header only when the value changes (empty: forget it). ``cookie_options``, given the
    environ, returns cookie option overrides for this response (``{"domain": ...}``).

    Example::

        >>> from websession import create_cookie, create_memory_session_storage
        >>> def app(environ, start_response):
        ...     if environ["PATH_INFO"] == "/login":
        ...         environ["websession.session"]["user"] = "ada"
        ...     start_response("200 OK", [])
        ...     return [b"ok"]
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> api = SessionMiddleware(app, storage, header="X-Session", lazy=True)
        >>> sent = []
        >>> _ = api({"PATH_INFO": "/login"}, lambda status, headers, exc_info=None: sent.append(headers))
        >>> [name for name, value in sent[0]]
        ['X-Session', 'Vary']
    """

    def __init__(
        self,
        app: WSGIApp,
        storage: AnyStorage,
        *,
        environ_key: str = SESSION_ENVIRON_KEY,
        vary_cookie: bool = True,
        **options: Unpack[IntegrationOptions[dict[str, Any]]],
    ) -> None:
        super().__init__(storage, **options)
        self.app = app
        self.environ_key = environ_key
        self.vary_cookie = vary_cookie
        self._header_key = None if self.header is None else "HTTP_" + self.header.upper().replace("-", "_")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        carried = self._carried(environ)
        session: Session
        if self.lazy:
            session = LazySession.deferred(_Loader(self.storage, carried))
        else:
            try:
                session = self.storage.get_session(carried)
            except StoreUnavailableError as exc:
                return self._unavailable(start_response, exc)
        environ[self.environ_key] = session
        environ[STORAGE_ENVIRON_KEY] = self.storage
        call = _Call(self, session, start_response, environ)
        try:
            result = self.app(environ, call.start_response)
        except StoreUnavailableError as exc:
            if call.started:
                raise
            return self._unavailable(start_response, exc)
        if call.failed:
            _close(result)
            return [UNAVAILABLE_BODY]
        return _Body(result, call)

    def _unavailable(self, start_response: StartResponse, exc: StoreUnavailableError) -> list[bytes]:
        self._outage(exc)
        start_response(status_line(self.unavailable_status), _unavailable_headers())
        return [UNAVAILABLE_BODY]

    def _carried(self, environ: dict[str, Any]) -> str | None:
        """The Cookie header the session is read from (in header mode, what the header stands for)."""
        if self._header_key is None:
            cookie: str | None = environ.get("HTTP_COOKIE")
            return cookie
        return self._carried_cookie(environ.get(self._header_key))

    def _id_header(self, set_cookie: str | None, environ: dict[str, Any]) -> tuple[str, str] | None:
        """Set-Cookie, or in header mode the header itself, only when its value changes."""
        if set_cookie is None:
            return None
        if self.header is None or self._header_key is None:
            return ("Set-Cookie", set_cookie)
        value = self._changed_id(set_cookie, environ.get(self._header_key))
        return None if value is None else (self.header, value)


class _Loader:
    """Loads a lazy session through the sync door on its first use."""

    __slots__ = ("cookie", "error", "storage")

    def __init__(self, storage: AnyStorage, cookie: str | None) -> None:
        self.storage = storage
        self.cookie = cookie
        #: The outage met by the load, raised again on any later use (never retried).
        self.error: StoreUnavailableError | None = None

    def load(self, session: LazySession) -> None:
        if self.error is not None:
            raise self.error
        try:
            found = self.storage.get_session(self.cookie)
        except StoreUnavailableError as exc:
            self.error = exc
            raise
        fill(session, found)


def _unavailable_headers() -> Headers:
    return [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(UNAVAILABLE_BODY))),
        ("Retry-After", RETRY_AFTER),
        ("Cache-Control", "no-store"),
    ]


class _Call:
    """One request's state: the session, whether it was committed, whether the store failed."""

    def __init__(
        self,
        middleware: SessionMiddleware,
        session: Session,
        start_response: StartResponse,
        environ: dict[str, Any],
    ) -> None:
        self.middleware = middleware
        self.session = session
        self.outer = start_response
        self.environ = environ
        self.path = environ.get("PATH_INFO", "")
        self.started = False
        self.failed = False
        self.id_header: tuple[str, str] | None = None
        self.committed = False  # start_response allowed a commit: late changes may follow
        self.errored = False  # start_response was called again with exc_info: the response failed

    def start_response(self, status: str, headers: Headers, exc_info: ExcInfo | None = None, /) -> Write:
        if self.failed:
            # The 503 is already on its way; the app's response is dropped.
            return _discard
        if not self.started:
            # The first call commits. A second call (with exc_info, after an error) replaces the
            # headers, so it carries the same Set-Cookie again.
            self.started = True
            code = _status_code(status)
            outage = load_error(self.session)
            if isinstance(outage, StoreUnavailableError) and code >= 500:
                # The lazy load failed and the app answered with an error: the client gets the 503.
                return self.unavailable(outage, exc_info)
            # A lazy session never used was never read: there is nothing to commit.
            middleware = self.middleware
            if exc_info is None and is_loaded(self.session) and commits(code, middleware.commit_on_error):
                end_if_emptied(self.session)
                try:
                    set_cookie = middleware.storage.commit_session(
                        self.session, **middleware._requested_overrides(self.environ)
                    )
                except StoreUnavailableError as exc:
                    return self.unavailable(exc, exc_info)
                self.id_header = middleware._id_header(set_cookie, self.environ)
            # Late changes may follow, even to a lazy session first loaded by the body.
            self.committed = exc_info is None and commits(code, middleware.commit_on_error)
        elif exc_info is not None:
            self.errored = True
        headers = list(headers)
        if self.id_header is not None:
            headers.append(self.id_header)
        varies = self.middleware.header or "Cookie"
        vary = (v for k, v in headers if k.lower() == "vary")
        if self.middleware.vary_cookie and not varies_on(vary, varies):
            headers.append(("Vary", varies))
        return self.outer(status, headers, exc_info)

    def unavailable(self, exc: StoreUnavailableError, exc_info: ExcInfo | None = None) -> Write:
        """Answer the 503 instead of the app's response (whose status line has not gone yet)."""
        self.failed = True
        self.middleware._outage(exc)
        self.outer(status_line(self.middleware.unavailable_status), _unavailable_headers(), exc_info)
        return _discard

    def commit_late(self) -> None:
        """Commit what the body changed while it was sent, when the browser's cookie can stay
        as it is; else log why it was not saved. Errors are logged: the headers have gone."""
        session = self.session
        if not is_loaded(session):
            return  # never touched: nothing to commit
        middleware = self.middleware
        try:
            end_if_emptied(session)
            if middleware._ready_to_commit_late(session, self.path):
                middleware.storage.commit_session(session, **middleware._requested_overrides(self.environ))
        except Exception as exc:  # a value that no longer encodes, a store error, cookie_options
            log_late_failure(exc, self.path)


def _status_code(status: str) -> int:
    """``"200 OK"`` -> 200; a status line that does not start with digits counts as a 500."""
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        return 500


def _discard(data: bytes) -> None:
    return None


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class _Body:
    """The app's response body. Apps may call start_response while the first chunk is made;
    when that commit fails, the rest of the app's body is dropped for the 503's. Once the body
    was sent in full and closed, what it changed in the session is committed."""

    def __init__(self, result: Iterable[bytes], call: _Call) -> None:
        self.result = result
        self.call = call
        self.completed = False

    def __iter__(self) -> Iterator[bytes]:
        if self.call.failed:
            yield UNAVAILABLE_BODY
            return
        try:
            for chunk in self.result:
                if self.call.failed:
                    yield UNAVAILABLE_BODY
                    return
                yield chunk
        except StoreUnavailableError as exc:
            # A generator app that met the outage (a lazy load, its own store call) before its
            # status line: the 503 can still take its place.
            if self.call.started:
                raise
            self.call.unavailable(exc)
        if self.call.failed:
            yield UNAVAILABLE_BODY
            return
        self.completed = True

    def close(self) -> None:
        try:
            _close(self.result)  # a generator's finally blocks run here, and may change the session
        finally:
            call = self.call
            # A body that raised, or that the client stopped reading, is a failed response.
            if self.completed and call.committed and not call.errored:
                call.commit_late()


__all__ = ["SESSION_ENVIRON_KEY", "STORAGE_ENVIRON_KEY", "SessionMiddleware", "get_session"]
