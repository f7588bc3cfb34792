"""What every integration shares: the storage type, the options every integration takes
(:class:`Integration`), the 503 answer, the Vary rule, the session id in a header,
per-request cookie options, and the rules for commits that no response can carry a cookie for
(late changes, WebSockets).

Example::

    >>> varies_on(["Accept-Encoding, cookie"], "Cookie"), varies_on(["Accept"], "Cookie")
    (True, False)
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

from ..cookie import CookieOptions
from ..errors import ConfigurationError, CookieNotDeliverableError, StoreUnavailableError
from ..session import Session
from ..storage import CookieSessionStorage, SessionStorage

#: Either kind of storage: store-backed (the id in the cookie) or cookie-only.
AnyStorage = Union[SessionStorage, CookieSessionStorage]  # noqa: UP007 - a runtime alias on 3.10

logger = logging.getLogger("websession")

#: What an integration's ``cookie_options`` is given: an ASGI scope, a WSGI environ, a request.
RequestT = TypeVar("RequestT")

if TYPE_CHECKING:
    from typing_extensions import TypedDict

    class IntegrationOptions(TypedDict, Generic[RequestT], total=False):
        """The keywords every integration takes, passed on to :class:`Integration`."""

        unavailable_status: int
        commit_on_error: bool
        lazy: bool
        header: str | None
        cookie_options: Callable[[RequestT], Mapping[str, Any] | None] | None


#: The body of the default answer when the session store cannot be reached.
UNAVAILABLE_BODY = b"Service Unavailable: the session store cannot be reached. Please try again shortly.\n"

#: Seconds a client is asked to wait before retrying after a 503.
RETRY_AFTER = "5"


#: Called with every outage an integration answers, after it is logged: how
#: :mod:`websession.telemetry` counts them. Empty (nothing to call) until telemetry is on.
unavailable_listeners: list[Callable[[StoreUnavailableError, int], None]] = []


def log_unavailable(exc: StoreUnavailableError, status: int) -> None:
    """Log a store outage once per request, without a traceback: it is not a bug in the app."""
    cause = exc.__cause__
    detail = f"{exc} (caused by {type(cause).__name__}: {cause})" if cause is not None else str(exc)
    logger.warning("websession: session store unavailable, answered %d: %s", status, detail)
    for listener in unavailable_listeners:
        listener(exc, status)


def end_if_emptied(session: Session) -> None:
    """Destroy a stored session that this request emptied (``session.clear()`` to sign out):
    its record is deleted and the cookie expired, as Starlette, Flask and Django do.

    Example::

        >>> from websession.stores.base import Record
        >>> session = Session({"user": 7}, "x" * 22, record=Record({"user": 7}))
        >>> session.clear(); end_if_emptied(session); session.destroyed
        True
    """
    if session.is_new or session.destroyed or session.regenerating or session:
        return
    if session.modified:
        session.destroy()


def has_pending(session: Session) -> bool:
    """Whether a commit of ``session`` now would change anything in the store: it was changed,
    regenerated or destroyed since it was read or last committed.

    Example::

        >>> from websession.stores.base import Record
        >>> session = Session({"a": 1}, "x" * 40, record=Record({"a": 1}))
        >>> before = has_pending(session)
        >>> session["b"] = 2
        >>> before, has_pending(session)
        (False, True)
    """
    # A destroyed session whose commit went through has no id left: nothing more to delete.
    return session.modified or session.regenerating or (session.destroyed and session.id is not None)


def needs_new_cookie(session: Session, storage: AnyStorage) -> str | None:
    """Why committing ``session`` now would need a new cookie, or None when the browser's
    cookie can stay as it is: for commits that no response can carry a cookie for (a
    WebSocket, a change made after the response started).

    A store-backed session keeps its id through changes and destroy (the record goes, the
    cookie then names nothing, and the next request clears it); a new session with data and
    ``regenerate()`` need an id cookie the browser does not have. A cookie-stored session
    lives in the cookie itself, so any change needs a new one.

    Example::

        >>> from websession import create_cookie, create_memory_session_storage
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> session = storage.get_session(None)
        >>> needs_new_cookie(session, storage) is None
        True
        >>> session["user"] = 7
        >>> needs_new_cookie(session, storage)
        'the session is new: its id must reach the browser in a cookie'
    """
    if isinstance(storage, CookieSessionStorage):
        if session.modified or session.destroyed or session.regenerating:
            return "cookie storage keeps the data in the cookie itself"
        return None
    if session.regenerating:
        return "regenerate() moves the session to a new id, which only a new cookie can carry"
    if session.is_new and len(session):
        return "the session is new: its id must reach the browser in a cookie"
    return None


def log_not_saved(reason: str, path: str, *, websocket: bool = False) -> None:
    """Say why a change that no response could carry a cookie for was dropped, and where."""
    if websocket:
        where, advice = f"over the WebSocket {path}", CookieNotDeliverableError.solution
    else:
        where, advice = f"at {path} after the response started", "make it before the response starts"
    logger.warning("websession: a session change made %s was not saved: %s (%s)", where, reason, advice)


def log_late_failure(exc: Exception, path: str) -> None:
    """Log a commit that failed where nobody could be told (the headers had gone, or the
    socket had closed): a store outage in one line, anything else with its traceback."""
    if isinstance(exc, StoreUnavailableError):
        cause = exc.__cause__
        detail = f"{exc} (caused by {type(cause).__name__}: {cause})" if cause is not None else str(exc)
        logger.warning(
            "websession: session store unavailable, a change made at %s was not saved: %s", path, detail
        )
    else:
        logger.error("websession: a change to the session made at %s was not saved", path, exc_info=exc)


def commits(status: int, commit_on_error: bool) -> bool:
    """Whether a response with ``status`` commits the session: not when it is a server error.

    A 5xx answer means the request failed, often half-way (a transfer that debited and then
    raised): keeping what the view changed before the error would store a half-done session.
    Django's own middleware skips the save on a 5xx for the same reason. ``commit_on_error``
    is the opt-in for apps whose 5xx error handlers change the session on purpose.

    Example::

        >>> commits(200, False), commits(404, False), commits(500, False), commits(500, True)
        (True, True, False, True)
    """
    return commit_on_error or status < 500


def varies_on(values: Iterable[str], header: str) -> bool:
    """Whether ``Vary`` header values already cover ``header`` (``*`` covers all).

    Example::

        >>> varies_on(["Accept, X-Session"], "x-session"), varies_on(["Cookie"], "X-Session")
        (True, False)
    """
    wanted = header.lower()
    for value in values:
        for token in value.split(","):
            if token.strip().lower() in (wanted, "*"):
                return True
    return False


# -- the session id in a header (API and mobile clients) -------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Headers that carry something else already: a session id there would be read as that.
_RESERVED_HEADERS = frozenset({"cookie", "set-cookie", "authorization", "vary", "host", "content-length"})


def checked_header_name(name: str) -> str:
    """``name`` when it can carry the session id, else :class:`~websession.errors.ConfigurationError`.

    Example::

        >>> checked_header_name("X-Session")
        'X-Session'
    """
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ConfigurationError(
            f"header={name!r} is not a valid HTTP header name", solution='use a name such as "X-Session"'
        )
    if name.lower() in _RESERVED_HEADERS:
        raise ConfigurationError(
            f"header={name!r} already means something else in HTTP", solution='use a name such as "X-Session"'
        )
    return name


# -- per-request cookie options ----------------------------------------------------------------

COOKIE_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(CookieOptions))


def cookie_overrides(storage: AnyStorage, value: object) -> dict[str, Any]:
    """Check what a ``cookie_options`` callable returned: a mapping of cookie options (or None)
    that the storage's cookie accepts. Anything else raises a
    :class:`~websession.errors.ConfigurationError` that says what was wrong.

    Example::

        >>> from websession import create_cookie, create_memory_session_storage
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> cookie_overrides(storage, {"domain": "a.example"}), cookie_overrides(storage, None)
        ({'domain': 'a.example'}, {})
        >>> cookie_overrides(storage, {"domian": "a.example"})
        Traceback (most recent call last):
        ...
        websession.errors.ConfigurationError: cookie_options returned an unknown cookie option 'domian' (...)
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"cookie_options returned {type(value).__name__}, not a mapping of cookie options",
            solution='return a dict such as {"domain": "example.com"}, or None',
        )
    overrides = dict(value)
    unknown = sorted(str(name) for name in overrides if name not in COOKIE_OPTION_NAMES)
    if unknown:
        raise ConfigurationError(
            f"cookie_options returned an unknown cookie option {', '.join(map(repr, unknown))}",
            solution=f"use only {', '.join(sorted(COOKIE_OPTION_NAMES))}",
        )
    try:
        storage.cookie.with_overrides(overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"cookie_options returned an invalid cookie option: {exc}",
            solution="return values create_cookie(...) would accept",
        ) from exc
    return overrides


def status_line(status: int) -> str:
    """``503`` -> ``"503 Service Unavailable"``, for WSGI.

    Example::

        >>> status_line(503), status_line(599)
        ('503 Service Unavailable', '599 Error')
    """
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


# -- what every integration is configured with -------------------------------------------------


class Integration(Generic[RequestT]):
    """The storage and the options that the ASGI and WSGI middleware and Flask's session
    interface all take, and what they do alike with them. ``RequestT`` is what
    ``cookie_options`` is given (an ASGI scope, a WSGI environ, a Flask request).

    Example::

        >>> from websession import create_cookie, create_memory_session_storage
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> tenant = Integration(storage, header="X-Session", cookie_options=lambda host: {"domain": host})
        >>> tenant.header, tenant._requested_overrides("a.example")
        ('X-Session', {'domain': 'a.example'})
    """

    def __init__(
        self,
        storage: AnyStorage,
        *,
        unavailable_status: int = 503,
        commit_on_error: bool = False,
        lazy: bool = False,
        header: str | None = None,
        cookie_options: Callable[[RequestT], Mapping[str, Any] | None] | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            # The keywords reach here through a subclass's **options: refuse the stray one as
            # Python refuses it, naming the class the caller wrote, not this base.
            raise TypeError(
                f"{type(self).__name__}.__init__() got an unexpected keyword argument {next(iter(unknown))!r}"
            )
        self.storage = storage
        self.unavailable_status = unavailable_status
        self.commit_on_error = commit_on_error
        self.lazy = lazy
        self.header = None if header is None else checked_header_name(header)
        self.cookie_options = cookie_options

    def _requested_overrides(self, request: RequestT) -> dict[str, Any]:
        """This response's cookie option overrides from ``cookie_options``, checked (a clear
        error when they are wrong)."""
        if self.cookie_options is None:
            return {}
        return cookie_overrides(self.storage, self.cookie_options(request))

    def _outage(self, exc: StoreUnavailableError) -> None:
        """Log the outage that this request is answered ``unavailable_status`` for."""
        log_unavailable(exc, self.unavailable_status)

    def _carried_cookie(self, value: str | None) -> str | None:
        """In header mode: the Cookie header that the session id sent in the header stands
        for, so the storage reads (and verifies) it exactly as it reads its cookie. An empty
        value is no value.

        A value holding ``;`` cannot smuggle in a second cookie: the first pair named after the
        cookie wins, and that is the whole text before the ``;``, which then fails to verify.

        Example::

            >>> from websession import create_cookie, create_memory_session_storage
            >>> api = Integration(create_memory_session_storage(cookie=create_cookie("s", secrets=["k"])))
            >>> api._carried_cookie("abc.def"), api._carried_cookie(""), api._carried_cookie(None)
            ('s=abc.def', None, None)
        """
        if not value:
            return None
        return f"{self.storage.cookie.name}={value}"

    @staticmethod
    def _changed_id(set_cookie: str, sent: str | None) -> str | None:
        """In header mode: what the session id header carries instead of ``set_cookie`` (the
        cookie's value, byte for byte what a browser would send back; ``""`` for an expiring
        one), or None when the client sent that value already (a rolling cookie's fresh
        Max-Age means nothing there).

        Example::

            >>> changed_id = Integration._changed_id
            >>> changed_id("s=YWJj.sig%2B; Path=/", None), changed_id("s=; Expires=Thu, 01 Jan 1970", "a.b")
            ('YWJj.sig%2B', '')
            >>> changed_id("s=a.b; Path=/; Max-Age=9", "a.b") is None
            True
        """
        value = set_cookie.split(";", 1)[0].partition("=")[2]
        return None if value == (sent or "") else value

    def _ready_to_commit_late(self, session: Session, path: str) -> bool:
        """Whether a change made after the response started (at ``path``) is committed now:
        there is something to commit and the browser's cookie can stay as it is. A change that
        would need a new cookie is logged as not saved."""
        if not has_pending(session):
            return False
        reason = needs_new_cookie(session, self.storage)
        if reason is not None:
            log_not_saved(reason, path)
            return False
        return True
