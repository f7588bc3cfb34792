"""Flask: a ``SessionInterface`` so that ``flask.session`` keeps its data in any websession store.

``app.session_interface = SessionInterface(storage)`` is the whole setup. ``flask.session``
then works unchanged, including ``session.permanent``, ``flash()`` with
``get_flashed_messages()``, and ``session.modified = True``. Unlike a snapshot-writing
backend, a commit applies only the keys this request changed, so concurrent requests never
undo each other.

- The cookie is the storage's own (name, secrets, attributes); Flask's ``SESSION_COOKIE_*``
  settings and ``secret_key`` are not used for it.
- ``session.permanent = True`` gives the cookie and the record the app's
  ``PERMANENT_SESSION_LIFETIME``; otherwise the storage's cookie settings apply.
- ``session.modified = True`` re-saves every key, as Flask's own sessions do: use it after
  changing a value that was not read through the session (in-place edits of values read from
  the session are detected without it).
- A request that fails with a server error (an unhandled exception, which Flask turns into a
  500, or any 5xx response) commits nothing the view changed, and sends no Set-Cookie.
  ``SessionInterface(storage, commit_on_error=True)`` commits them anyway, for apps whose
  ``@app.errorhandler(500)`` changes the session on purpose.
- A streamed body (``stream_with_context``) runs after the session was saved: what it changes
  is committed when the body has been sent in full and closed, if the browser's cookie can
  stay as it is; a change that would need a new cookie is logged and not saved. A body that
  raised, or that the client stopped reading, commits nothing late.
- When the store cannot be reached, the request gets a 503 (``unavailable_status``), through
  Flask's error handlers: ``@app.errorhandler(503)`` customises the page. Views that never touch
  the session keep working while the store is down.
- ``SessionInterface(storage, lazy=True)`` reads the store on the first use of ``flask.session``
  rather than when the request starts: a request that never uses it does no store I/O.
- ``header="X-Session"`` carries the session id in that header instead of a cookie (API and
  mobile clients); ``cookie_options``, given the request, returns per-request cookie options.
- ``SessionInterface(storage, migrate_flask_cookie=True)`` carries sessions over from Flask's
  own signed cookie sessions: a visitor who has no websession session yet but still holds
  Flask's ``session`` cookie gets its data, read by Flask's own
  ``SecureCookieSessionInterface`` with the app's ``secret_key``, in a new websession session,
  and the old cookie is expired. A cookie that does not verify is ignored. Give the storage
  ``codec="tagged"`` so every value Flask's cookie could hold (datetime, tuples, ...) is kept.

Example::

    >>> import flask
    >>> from websession import create_cookie, create_memory_session_storage
    >>> app = flask.Flask("example")
    >>> app.session_interface = SessionInterface(
    ...     create_memory_session_storage(cookie=create_cookie("s", secrets=["k"])))
    >>> @app.post("/save")
    ... def save():
    ...     flask.session["name"] = "ada"
    ...     flask.flash("Saved")
    ...     return "ok"
    >>> @app.get("/")
    ... def show():
    ...     return f"{flask.session.get('name')} {flask.get_flashed_messages()}"
    >>> client = app.test_client()
    >>> client.post("/save").text, client.get("/").text, client.get("/").text
    ('ok', "ada ['Saved']", 'ada []')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, cast

from flask import request as current_request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask.sessions import SessionInterface as FlaskSessionInterface
from werkzeug.exceptions import HTTPException, ServiceUnavailable, default_exceptions

from ..codec import logger
from ..errors import ConfigurationError, StoreUnavailableError
from ..session import Session
from ._lazy import SESSION_SLOTS, Deferred, is_loaded
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

if TYPE_CHECKING:
    from flask import Flask
    from flask.wrappers import Request, Response
    from typing_extensions import Unpack
    from werkzeug.sansio.response import Response as BaseResponse

    from ._shared import IntegrationOptions


class FlaskSession(Session, SessionMixin):
    """A websession :class:`~websession.Session` that is also Flask's ``SessionMixin``.

    ``modified`` can be set to True to force a save of every key; ``new`` is True until the
    session is stored.
    """

    def __init__(self, session: Session) -> None:
        super().__init__(session.data, session.id, record=session.record, codec=session.codec)
        self.stale_cookie = session.stale_cookie
        self.resign = session.resign
        self._force = False
        # The request still carries Flask's own session cookie, to be expired (migration).
        self._flask_cookie = False

    @property
    def modified(self) -> bool:
        """True when this request changed the data, or the app said so."""
        return self._force or super().modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self._force = bool(value)

    @property
    def permanent(self) -> bool:
        """Whether the session lives for ``PERMANENT_SESSION_LIFETIME`` (the ``_permanent`` key)."""
        return bool(self.get("_permanent", False))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        # Apps often set this on every request; writing an unchanged value would cost a store write.
        if self.get("_permanent", False) != bool(value):
            self["_permanent"] = bool(value)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """True when no stored record backs this session yet."""
        return self.is_new

    def _force_save(self) -> None:
        """Mark every key as set, so that a commit writes them all (``modified = True``)."""
        for key, value in self.data.items():
            self[key] = value


class LazyFlaskSession(Deferred, FlaskSession):
    """A :class:`FlaskSession` that reads the store on its first use (``lazy=True``), then
    becomes an ordinary one. Until then it holds only how to load it."""

    _triggers: ClassVar[frozenset[str]] = SESSION_SLOTS | {"_force"}

    @classmethod
    def deferred(cls, load: Callable[[], Session]) -> LazyFlaskSession:
        """A session with no data yet; ``load()`` reads it on first use."""
        session = cls.__new__(cls)
        object.__setattr__(session, "_loader", load)
        return session

    def _load(self) -> None:
        found = object.__getattribute__(self, "_loader")()
        object.__setattr__(self, "__class__", FlaskSession)
        FlaskSession.__init__(self, found)

    def __repr__(self) -> str:
        return "<LazyFlaskSession (not loaded yet)>"


class SessionUnavailable(ServiceUnavailable):
    """The session store cannot be reached. Flask answers it like any 503, so
    ``@app.errorhandler(503)`` customises the page."""

    description = UNAVAILABLE_BODY.decode().strip()

    def get_headers(self, environ: Any = None, scope: dict[str, Any] | None = None) -> list[tuple[str, str]]:
        return [
            *super().get_headers(environ, scope),
            ("Retry-After", RETRY_AFTER),
            ("Cache-Control", "no-store"),
        ]


class UnavailableSession(SessionMixin):
    """Stands in for the session when the store could not be read. Any use of it raises
    :class:`SessionUnavailable`, so Flask answers 503; pages that never touch the session
    still render."""

    def __init__(self, error: HTTPException) -> None:
        self._error = error

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise self._error

    __getitem__ = __setitem__ = __delitem__ = __iter__ = __len__ = __contains__ = _fail
    get = setdefault = pop = popitem = clear = update = keys = items = values = _fail


class SessionInterface(Integration["Request"], FlaskSessionInterface):
    """Keep ``flask.session`` in a websession storage.

    Set it with ``app.session_interface = SessionInterface(storage)``. ``unavailable_status``
    is the status answered when the store cannot be reached. ``commit_on_error`` also commits
    the session of 5xx responses (by default they store nothing the request changed).

    ``lazy`` (False) reads the store on the first use of ``flask.session`` instead of when the
    request starts; a request that never uses it does no store I/O and commits nothing.
    ``header`` (say ``"X-Session"``) carries the session id in that header instead of the
    cookie: the value is exactly the cookie's, the Cookie header is ignored, and the response
    carries the header only when the value changes (empty: forget it). ``cookie_options``,
    given the request, returns cookie option overrides for this response
    (``{"domain": ...}``); they win over ``PERMANENT_SESSION_LIFETIME``.

    ``migrate_flask_cookie=True`` imports, once, the session a visitor holds in Flask's own
    signed cookie (read with Flask's ``SecureCookieSessionInterface`` and the app's
    ``secret_key`` and ``SECRET_KEY_FALLBACKS``) into a new websession session, and expires
    that cookie; pass a ``SecureCookieSessionInterface`` instead of True if the app used a
    customised one. A cookie that does not verify, or has outlived
    ``PERMANENT_SESSION_LIFETIME``, is ignored (and expired). Under ``lazy=True``, a request
    that carries Flask's cookie is read up front, so that its import happens.

    Example::

        >>> import flask
        >>> from websession import create_cookie, create_memory_session_storage
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> app = flask.Flask("api")
        >>> app.session_interface = SessionInterface(storage, header="X-Session", lazy=True)
        >>> @app.post("/login")
        ... def login():
        ...     flask.session["user"] = "ada"
        ...     return "ok"
        >>> @app.get("/me")
        ... def me():
        ...     return flask.session.get("user") or "nobody"
        >>> client = app.test_client()
        >>> token = client.post("/login").headers["X-Session"]
        >>> client.get("/me", headers={"X-Session": token}).text, client.get("/me").text
        ('ada', 'nobody')
        >>> old = flask.Flask("old"); old.secret_key = "flask-key"
        >>> @old.get("/")
        ... def sign_in():
        ...     flask.session["user"] = "ada"
        ...     return "ok"
        >>> before = old.test_client(); _ = before.get("/")
        >>> new = flask.Flask("new"); new.secret_key = "flask-key"
        >>> storage = create_memory_session_storage(cookie=create_cookie("__session", secrets=["k"]))
        >>> new.session_interface = SessionInterface(storage, migrate_flask_cookie=True)
        >>> @new.get("/")
        ... def whoami():
        ...     return flask.session.get("user", "nobody")
        >>> after = new.test_client(); after.set_cookie("session", before.get_cookie("session").value)
        >>> after.get("/").text, after.get_cookie("session"), after.get("/").text
        ('ada', None, 'ada')
    """

    def __init__(
        self,
        storage: AnyStorage,
        *,
        migrate_flask_cookie: bool | SecureCookieSessionInterface = False,
        **options: Unpack[IntegrationOptions[Request]],
    ) -> None:
        super().__init__(storage, **options)
        #: Flask's own cookie sessions, to import from (None: no migration).
        self.flask_cookie_sessions: SecureCookieSessionInterface | None = (
            SecureCookieSessionInterface() if migrate_flask_cookie is True else migrate_flask_cookie or None
        )

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        carried = self._carried(request)
        legacy = self.flask_cookie_sessions
        if self.lazy and (legacy is None or not self._carries_flask_cookie(app, request, legacy)):
            return LazyFlaskSession.deferred(_Loader(self, carried).load)
        try:
            session = self.storage.get_session(carried)
        except StoreUnavailableError as exc:
            self._outage(exc)
            return UnavailableSession(self._error())
        flask_session = FlaskSession(session)
        if self.flask_cookie_sessions is not None:
            self._migrate(app, request, flask_session, self.flask_cookie_sessions)
        return flask_session

    def _carries_flask_cookie(
        self, app: Flask, request: Request, legacy: SecureCookieSessionInterface
    ) -> bool:
        """Whether the request may hold a Flask cookie session to import: under lazy=True such a
        request is read up front. A cookie of the same name that is ours is not one."""
        name = legacy.get_cookie_name(app)
        if name not in request.cookies:
            return False
        if name != self.storage.cookie.name:
            return True
        return self.storage.cookie.read(request.headers.get("Cookie")) is None

    def _migrate(
        self, app: Flask, request: Request, session: FlaskSession, legacy: SecureCookieSessionInterface
    ) -> None:
        """Import the data of Flask's own session cookie into a session that is new."""
        name = legacy.get_cookie_name(app)
        if name not in request.cookies:
            return
        # A cookie of the same name is replaced by ours at commit; any other is expired then.
        session._flask_cookie = name != self.storage.cookie.name
        if not session.is_new:
            return  # imported before: the old cookie is only expired
        old = legacy.open_session(app, request)  # Flask's own reading: signature, max age, tags
        if old is None:
            raise ConfigurationError(
                "migrate_flask_cookie needs the app's secret_key to read Flask's session cookie",
                solution="set app.secret_key (and SECRET_KEY_FALLBACKS) to what the app used before",
            )
        for key, value in old.items():
            try:
                session[key] = value
            except TypeError as exc:
                logger.warning("websession: left out of the imported Flask session: %s", exc)

    def _expire_flask_cookie(self, app: Flask, response: Response) -> None:
        """Expire Flask's session cookie with Flask's own attributes (path, domain, ...)."""
        assert self.flask_cookie_sessions is not None
        emptied = self.flask_cookie_sessions.session_class()
        emptied.modified = True
        self.flask_cookie_sessions.save_session(app, emptied, response)

    def _carried(self, request: Request) -> str | None:
        """The Cookie header the session is read from (in header mode, what the header stands for)."""
        if self.header is None:
            return request.headers.get("Cookie")
        return self._carried_cookie(request.headers.get(self.header))

    def is_null_session(self, obj: object) -> bool:
        return isinstance(obj, UnavailableSession) or super().is_null_session(obj)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        if not commits(response.status_code, self.commit_on_error):
            return
        # The request, for cookie_options at a late commit: by then stream_with_context has
        # popped the request context.
        request: Request = cast(Any, current_request)._get_current_object()
        self._commit_streamed_later(app, session, request, response)
        if not is_loaded(session):
            # Lazy and never used (so far: a streamed body may still): never read, nothing to commit.
            if session.accessed:
                _vary_on(response, self.header or "Cookie")
            return
        overrides = self._prepare(app, session, request)
        try:
            set_cookie = self.storage.commit_session(session, **overrides)
        except StoreUnavailableError as exc:
            self._outage(exc)
            _replace(response, _error_response(app, self._error()))
            return
        self._send_id(response, set_cookie)
        if session._flask_cookie:
            self._expire_flask_cookie(app, response)
        if session.accessed or set_cookie is not None:
            _vary_on(response, self.header or "Cookie")

    def _commit_streamed_later(
        self, app: Flask, session: FlaskSession, request: Request, response: Response
    ) -> None:
        """A streamed body runs after this save (stream_with_context): commit what it changes
        once it was sent in full, even to a lazy session it is the first to use."""
        if response.is_streamed and not response.direct_passthrough:
            response.response = _LateCommit(
                response.response, lambda: self._commit_late(app, session, request)
            )

    def _send_id(self, response: Response, set_cookie: str | None) -> None:
        """Set-Cookie, or in header mode the header itself, only when its value changes."""
        if set_cookie is None:
            return
        if self.header is None:
            response.headers.add("Set-Cookie", set_cookie)
            return
        value = self._changed_id(set_cookie, current_request.headers.get(self.header))
        if value is not None:
            response.headers[self.header] = value

    def _prepare(self, app: Flask, session: FlaskSession, request: Request) -> dict[str, Any]:
        """Ready a session for its commit; return the cookie overrides it needs."""
        end_if_emptied(session)
        overrides = {**self._overrides(app, session), **self._requested_overrides(request)}
        if session._force and not session.destroyed:
            session._force_save()
        session._force = False
        return overrides

    def _commit_late(self, app: Flask, session: FlaskSession, request: Request) -> None:
        """Commit what the streamed body changed, when the browser's cookie can stay as it is;
        else log why it was not saved. Errors are logged: the headers have gone."""
        if not is_loaded(session):
            return  # never touched: nothing to commit, and no store read for it now
        try:
            overrides = self._prepare(app, session, request)
            if self._ready_to_commit_late(session, request.path):
                self.storage.commit_session(session, **overrides)
        except Exception as exc:  # a value that no longer encodes, a store error, cookie_options
            log_late_failure(exc, request.path)

    def _overrides(self, app: Flask, session: FlaskSession) -> dict[str, Any]:
        """A permanent session lives for PERMANENT_SESSION_LIFETIME, as in Flask."""
        if not session.permanent or session.destroyed:
            return {}
        lifetime = app.permanent_session_lifetime.total_seconds()
        if self.storage.cookie.options.max_age == lifetime:
            return {}
        return {"max_age": lifetime}

    def _error(self) -> HTTPException:
        other = default_exceptions.get(self.unavailable_status)
        if other is not None and self.unavailable_status != 503:
            # Another status: raise Flask's own class for it, so its error handler applies.
            return other(description=SessionUnavailable.description)
        error = SessionUnavailable()
        error.code = self.unavailable_status
        return error


class _Loader:
    """Reads a lazy session through the sync door on its first use; an outage becomes the
    503 (an HTTPException, so Flask's error handlers answer it), again on every later use."""

    __slots__ = ("cookie", "error", "interface")

    def __init__(self, interface: SessionInterface, cookie: str | None) -> None:
        self.interface = interface
        self.cookie = cookie
        self.error: HTTPException | None = None

    def load(self) -> Session:
        if self.error is not None:
            raise self.error
        interface = self.interface
        try:
            return interface.storage.get_session(self.cookie)
        except StoreUnavailableError as exc:
            interface._outage(exc)
            self.error = interface._error()
            raise self.error from exc


class _LateCommit:
    """A streamed response body that, once sent in full and closed, commits what it changed in
    the session. A body that raised, or that the client stopped reading, commits nothing."""

    def __init__(self, body: Iterable[Any], commit: Callable[[], None]) -> None:
        self.body = body
        self.commit = commit
        self.completed = False

    def __iter__(self) -> Iterator[Any]:  # str or bytes, as the app's body
        yield from self.body
        self.completed = True

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        try:
            if close is not None:
                close()  # stream_with_context's generator ends here, and its request context
        finally:
            if self.completed:
                self.commit()


def _vary_on(response: Response, header: str) -> None:
    """``response.vary.add(header)``, without parsing and rewriting Vary when there is none
    (werkzeug's header set costs more than the rest of a session commit)."""
    values = response.headers.getlist("Vary")
    if not values:
        response.headers.add("Vary", header)
    elif not varies_on(values, header):
        response.vary.add(header)


def _error_response(app: Flask, error: HTTPException) -> BaseResponse:
    """The response Flask's error handlers give for ``error`` (the app's own 503 page if any)."""
    handled = app.handle_user_exception(error)
    return app.make_response(handled)


def _replace(response: Response, replacement: BaseResponse) -> None:
    """Turn ``response`` into ``replacement``: save_session can only change it in place."""
    response.status = replacement.status
    response.headers.clear()
    response.headers.extend(replacement.headers)
    response.response = replacement.response  # type: ignore[attr-defined]
    response.direct_passthrough = False


__all__ = ["FlaskSession", "LazyFlaskSession", "SessionInterface", "SessionUnavailable", "UnavailableSession"]
