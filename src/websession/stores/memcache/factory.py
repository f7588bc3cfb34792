"""The memcached storage factory and its URL: ``memcache://host:port,host:port?prefix=...``.

What memcached guarantees once this is done: the settings have been checked (the servers, a
prefix that keeps every key within memcached's 250 bytes, an item size big enough for a record) and
records will live ``ttl``, else the cookie's lifetime, else 7 days: memcached drops them
itself then, and nothing needs purging.

What it does not: connect here. Both doors connect on first use, so an unreachable server
shows on the first request whose session lives there, as
:class:`~websession.errors.StoreUnavailableError`. Nor can it check that ``max_item_size``
matches the servers' ``-I``: set larger, records the servers refuse fail when written, as
:class:`~websession.errors.RecordTooLargeError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from ...cookie import CookieLike
from ...options import StorageOptions, assemble, store_arguments, url_options
from ...storage import SessionStorage
from ...urls import cookie_from_options, reject_unknown
from .store import DEFAULT_ITEM_SIZE, DEFAULT_TIMEOUT, DEFAULT_TTL, MemcacheStore

if TYPE_CHECKING:
    from typing_extensions import Unpack


def create_memcache_session_storage(
    *,
    cookie: CookieLike = None,
    servers: Sequence[str | tuple[str, int]] = ("127.0.0.1:11211",),
    prefix: str = "session:",
    max_item_size: int = DEFAULT_ITEM_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    pool_size: int = 10,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions in memcached (one or several servers), both doors on one storage.

    ``ttl`` (seconds) is the record lifetime, whatever the cookie's; not given, the cookie's
    lifetime or 7 days; None keeps records until memcached evicts them (cookie without a lifetime).
    ``max_item_size`` must match memcached's
    ``-I`` (1 MiB by default). ``timeout`` bounds connecting and each operation; ``pool_size``
    is the number of connections per server for the async door.

    The other shared options (``rolling``, ``absolute_timeout``, ``storage_key_secret``, ...)
    are :class:`~websession.options.StorageOptions`.

    Example::

        >>> from websession import create_cookie
        >>> storage = create_memcache_session_storage(
        ...     cookie=create_cookie("s", secrets=["k"]), servers=["127.0.0.1:11211"])
        >>> storage.get_session(None).is_new  # no cookie: no round trip at all
        True
    """
    store = MemcacheStore(
        servers,
        prefix=prefix,
        max_item_size=max_item_size,
        timeout=timeout,
        pool_size=pool_size,
        **store_arguments(options, fallback_ttl=DEFAULT_TTL),
    )
    return assemble("create_memcache_session_storage", store, cookie, options)


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``memcache://10.0.0.5:11211,10.0.0.6:11211?prefix=app:&ttl=3600&max_item_size=2097152``"""
    cookie = cookie_from_options(options)
    shared = url_options(options)
    servers = [spec for spec in url.netloc.split(",") if spec] or ["127.0.0.1:11211"]
    prefix = options.pop("prefix", "session:")
    max_item_size = int(options.pop("max_item_size", DEFAULT_ITEM_SIZE))
    timeout = float(options.pop("timeout", DEFAULT_TIMEOUT))
    pool_size = int(options.pop("pool_size", 10))
    reject_unknown("memcache", options)
    return create_memcache_session_storage(
        cookie=cookie,
        servers=servers,
        prefix=prefix,
        max_item_size=max_item_size,
        timeout=timeout,
        pool_size=pool_size,
        **shared,
    )


__all__ = ["create_memcache_session_storage", "open_url"]
