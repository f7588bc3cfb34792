"""WSGI middleware: server-side sessions for any WSGI framework (Bottle, Falcon, Pyramid, ...).

The middleware reads the session through the storage's sync door and puts it in
``environ["websession.session"]``. When the app calls ``start_response``, it commits the
session and appends a ``Set-Cookie`` header only when the browser's cookie must change; the
app's own ``Set-Cookie`` headers are kept. What the app changes while its body iterable runs is
committed when the server closes the body after sending it in full, if the browser's cookie can
stay as it is (else a warning says why it was not saved). A request without the session cookie
does no store I/O. When the store cannot be reached, the client gets a plain 503
(``unavailable_status``) instead of the app's response, and its cookie is left alone.

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

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Optional, Protocol

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
    status_line,
)

ExcInfo = tuple[type[BaseException], BaseException, Optional[TracebackType]]  # noqa: UP045 - runtime alias on 3.10
Headers = list[tuple[str, str]]
Write = Callable[[bytes], object]


class StartResponse(Protocol):
    def __call__(self, status: str, headers: Headers, exc_info: ExcInfo | None = ..., /) -> Write: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

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


class SessionMiddleware:
    """Load the session into ``environ["websession.session"]`` and commit it at ``start_response``.

    ``vary_cookie`` adds ``Vary: Cookie`` to every response so that shared caches never hand
    one visitor's page to another. A 5xx response (or an app that raised) commits nothing the
    request changed, unless ``commit_on_error=True``.
    """

    def __init__(
        self,
        app: WSGIApp,
        storage: AnyStorage,
        *,
        environ_key: str = SESSION_ENVIRON_KEY,
        unavailable_status: int = 503,
        vary_cookie: bool = True,
        commit_on_error: bool = False,
    ) -> None:
        self.app = app
        self.storage = storage
        self.environ_key = environ_key
        self.unavailable_status = unavailable_status
        self.vary_cookie = vary_cookie
        self.commit_on_error = commit_on_error

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            session = self.storage.get_session(environ.get("HTTP_COOKIE"))
        except StoreUnavailableError as exc:
            return self._unavailable(start_response, exc)
        environ[self.environ_key] = session
        environ[STORAGE_ENVIRON_KEY] = self.storage
        call = _Call(self, session, start_response, environ.get("PATH_INFO", ""))
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
        log_unavailable(exc, self.unavailable_status)
        start_response(status_line(self.unavailable_status), _unavailable_headers())
        return [UNAVAILABLE_BODY]


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
        self, middleware: SessionMiddleware, session: Session, start_response: StartResponse, path: str
    ) -> None:
        self.middleware = middleware
        self.session = session
        self.outer = start_response
        self.path = path
        self.started = False
        self.failed = False
        self.committed = False  # the session was committed at start_response
        self.errored = False  # start_response was called again with exc_info: the response failed
        self.set_cookie: str | None = None

    def start_response(self, status: str, headers: Headers, exc_info: ExcInfo | None = None, /) -> Write:
        if self.failed:
            # The 503 is already on its way; the app's response is dropped.
            return _discard
        if not self.started:
            # The first call commits. A second call (with exc_info, after an error) replaces the
            # headers, so it carries the same Set-Cookie again.
            self.started = True
            if exc_info is None and commits(_status_code(status), self.middleware.commit_on_error):
                end_if_emptied(self.session)
                try:
                    self.set_cookie = self.middleware.storage.commit_session(self.session)
                except StoreUnavailableError as exc:
                    self.failed = True
                    log_unavailable(exc, self.middleware.unavailable_status)
                    self.outer(
                        status_line(self.middleware.unavailable_status), _unavailable_headers(), exc_info
                    )
                    return _discard
                self.committed = True
        elif exc_info is not None:
            self.errored = True
        headers = list(headers)
        if self.set_cookie is not None:
            headers.append(("Set-Cookie", self.set_cookie))
        if self.middleware.vary_cookie and not has_cookie_vary(v for k, v in headers if k.lower() == "vary"):
            headers.append(("Vary", "Cookie"))
        return self.outer(status, headers, exc_info)

    def commit_late(self) -> None:
        """Commit what the body changed while it was sent, when the browser's cookie can stay
        as it is; else log why it was not saved. Errors are logged: the headers have gone."""
        session = self.session
        end_if_emptied(session)
        if not has_pending(session):
            return
        reason = needs_new_cookie(session, self.middleware.storage)
        if reason is not None:
            log_not_saved(reason, self.path)
            return
        try:
            self.middleware.storage.commit_session(session)
        except Exception as exc:
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
        for chunk in self.result:
            if self.call.failed:
                yield UNAVAILABLE_BODY
                return
            yield chunk
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
