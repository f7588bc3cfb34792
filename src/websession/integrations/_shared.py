"""What every integration shares: the storage type, the 503 answer, the Vary rule, and the
rules for commits that no response can carry a cookie for (late changes, WebSockets).

Example::

    >>> has_cookie_vary(["Accept-Encoding, cookie"]), has_cookie_vary(["Accept"])
    (True, False)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Union

from ..errors import CookieNotDeliverableError, StoreUnavailableError
from ..session import Session
from ..storage import CookieSessionStorage, SessionStorage

#: Either kind of storage: store-backed (the id in the cookie) or cookie-only.
AnyStorage = Union[SessionStorage, CookieSessionStorage]  # noqa: UP007 - a runtime alias on 3.10

logger = logging.getLogger("websession")

#: The body of the default answer when the session store cannot be reached.
UNAVAILABLE_BODY = b"Service Unavailable: the session store cannot be reached. Please try again shortly.\n"

#: Seconds a client is asked to wait before retrying after a 503.
RETRY_AFTER = "5"


def log_unavailable(exc: StoreUnavailableError, status: int) -> None:
    """Log a store outage once per request, without a traceback: it is not a bug in the app."""
    cause = exc.__cause__
    detail = f"{exc} (caused by {type(cause).__name__}: {cause})" if cause is not None else str(exc)
    logger.warning("websession: session store unavailable, answered %d: %s", status, detail)


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


def has_cookie_vary(values: Iterable[str]) -> bool:
    """Whether ``Vary`` header values already cover the Cookie header (``*`` covers all)."""
    for value in values:
        for token in value.split(","):
            if token.strip().lower() in ("cookie", "*"):
                return True
    return False


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
