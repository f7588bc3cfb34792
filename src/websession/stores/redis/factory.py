"""The Redis storage factory and its URL: ``create_redis_session_storage`` and ``open_url``.

A storage is a :class:`~websession.stores.redis.RedisStore` behind a cookie of the same
format ("remix" or "remix-v3"), with the options every storage shares
(:class:`~websession.options.StorageOptions`). Records live 7 days when neither ``ttl`` nor
the cookie gives a lifetime: Redis expires them itself, so a store that never expired would
grow until ``maxmemory`` evicts sessions at random. Redis guarantees the expiry to the second
(each read moves it); it does not guarantee a record outlives memory pressure or a failover
(see the store).

Example::

    >>> from websession import create_cookie
    >>> storage = create_redis_session_storage(
    ...     cookie=create_cookie("__session", secrets=["s3cret"]), url="redis://localhost:6379/0")
    >>> storage.store.default_ttl
    604800
    >>> storage.close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import SplitResult, urlunsplit

from ...cookie import Cookie, CookieLike, as_cookie
from ...errors import ConfigurationError
from ...options import StorageOptions, assemble, store_arguments, url_options
from ...storage import SessionStorage
from ...urls import cookie_from_options, reject_unknown
from ..redis_records import Format, Layout
from .store import RedisStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: How long Redis keeps a record when neither ``ttl`` nor the cookie says (seconds): 7 days.
FALLBACK_TTL = 604800


def create_redis_session_storage(
    *,
    cookie: CookieLike = None,
    url: str | None = None,
    client: Any = None,
    prefix: str = "session:",
    format: Format = "remix",
    layout: Layout = "string",
    timeout: float | None = 5.0,
    max_connections: int = 100,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions in Redis (or Redis Cluster), wire-compatible with Remix's Redis storages.

    ``ttl`` (seconds) is how long Redis keeps the record, refreshed on every use, whatever the
    cookie's lifetime (as Remix's ``ttl``). Not given, records live as long as the cookie, or
    7 days for a cookie without ``max_age``/``expires``; None: no expiry of its own.
    ``format="remix-v3"`` needs a
    cookie made with ``create_cookie(..., format="remix-v3")`` (cookie options as a dict get it
    automatically). See :class:`RedisStore` for ``url``/``client``, ``timeout`` and
    ``max_connections``. The other shared options (``rolling``, ``absolute_timeout``,
    ``storage_key_secret``, ...) are :class:`~websession.options.StorageOptions`
    (docs/security.md).

    Example::

        >>> from websession import create_cookie
        >>> storage = create_redis_session_storage(
        ...     cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
        ...     url="redis://localhost:6379/0", prefix="doctest:session:")
        >>> session = storage.get_session(None)
        >>> session["user_id"] = 42
        >>> header = storage.commit_session(session)
        >>> storage.get_session(header.split(";")[0])["user_id"]
        42
        >>> storage.destroy_session(session).split(";")[0]
        '__session='
        >>> storage.close()
    """
    store = RedisStore(
        url=url,
        client=client,
        prefix=prefix,
        format=format,
        layout=layout,
        timeout=timeout,
        max_connections=max_connections,
        **store_arguments(options, fallback_ttl=FALLBACK_TTL),
    )
    return assemble("create_redis_session_storage", store, _cookie_for(cookie, format), options)


def _cookie_for(cookie: CookieLike, format: Format) -> Cookie:
    """The storage's cookie: options given as a dict get the store's format."""
    made = cookie if isinstance(cookie, Cookie) else as_cookie({"format": format, **(cookie or {})})
    if made.format != format:
        raise ConfigurationError(
            f"a {format!r} redis storage needs a {format!r} cookie, not a {made.format!r} one",
            solution=f"create the cookie with create_cookie(..., format={format!r})",
        )
    return made


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``redis://[:password@]host:6379/0?prefix=app:&ttl=3600&format=remix&layout=string``;
    also ``rediss://`` (TLS), ``redis+cluster://`` and ``rediss+cluster://``."""
    explicit_cookie = "cookie" in options
    cookie = cookie_from_options(options)
    shared = url_options(options)
    prefix = options.pop("prefix", "session:")
    format = options.pop("format", "remix")
    layout = options.pop("layout", "string")
    timeout = options.pop("timeout", 5.0)
    max_connections = int(options.pop("max_connections", 100))
    reject_unknown(url.scheme, options)
    if not explicit_cookie and format in get_args(Format) and cookie.format != format:
        cookie = Cookie(cookie.name, cookie.secrets, cookie.options, format=format)
    return create_redis_session_storage(
        cookie=cookie,
        url=urlunsplit((url.scheme, url.netloc, url.path, "", "")),
        prefix=prefix,
        format=format,
        layout=layout,
        timeout=None if timeout in (None, "", "none") else float(timeout),
        max_connections=max_connections,
        **shared,
    )


__all__ = ["FALLBACK_TTL", "create_redis_session_storage", "open_url"]
