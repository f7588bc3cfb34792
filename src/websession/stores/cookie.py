"""The cookie store: all session data lives in the signed cookie itself.

No server-side state at all. The data is limited to what fits in 4096 bytes of Set-Cookie,
and concurrent requests cannot be merged (the browser keeps the last cookie it receives).

Example::

    >>> from websession import create_cookie, create_cookie_session_storage
    >>> storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"]))
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

from ..cookie import CookieLike, as_cookie
from ..storage import CookieSessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options
from .base import Clock, utcnow


def create_cookie_session_storage(
    *,
    cookie: CookieLike = None,
    rolling: bool = True,
    save_uninitialized: bool = False,
    clock: Clock = utcnow,
) -> CookieSessionStorage:
    """Sessions stored entirely in a signed cookie (no server-side store).

    Example::

        >>> from websession import create_cookie
        >>> storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> session = storage.get_session(None)
        >>> session["n"] = 1
        >>> storage.get_session(storage.commit_session(session))["n"]
        1
    """
    return CookieSessionStorage(
        cookie=as_cookie(cookie), rolling=rolling, save_uninitialized=save_uninitialized, clock=clock
    )


def open_url(url: SplitResult, options: dict[str, Any]) -> CookieSessionStorage:
    """``cookie://`` (data in the cookie; pass ``secrets``)."""
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    reject_unknown("cookie", options)
    return create_cookie_session_storage(cookie=cookie, **shared)
