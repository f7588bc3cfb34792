"""What every integration shares: the storage type, the 503 answer and the Vary rule.

Example::

    >>> has_cookie_vary(["Accept-Encoding, cookie"]), has_cookie_vary(["Accept"])
    (True, False)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Union

from ..errors import StoreUnavailableError
from ..session import Session
from ..storage import CookieSessionStorage, SessionStorage

#: Either kind of storage: store-backed (the id in the cookie) or cookie-only.
AnyStorage = Union[SessionStorage, CookieSessionStorage]  # noqa: UP007 - a runtime alias on 3.10

logger = logging.getLogger("websession")

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
