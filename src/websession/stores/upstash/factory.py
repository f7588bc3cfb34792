"""Building an Upstash storage: :func:`create_upstash_session_storage`, and :func:`open_url`
for ``upstash+https://`` store URLs.

What Upstash guarantees to a storage built here: every session operation is one HTTPS
request whose commands run atomically on the primary, records expire on the server, and each
client reads its own writes (the sync token) even from a replica of a global database.

What it does not: other processes may briefly read an older copy from a lagging replica;
requests are limited in size (1 MB on the free plan), so a session must stay well under it;
a request that times out may still have run. ``timeout`` bounds each request made through
``url``/``token``; a ``client=`` you pass keeps its own settings.

Example::

    >>> from websession import open_store
    >>> storage = open_store("upstash+https://eu1-example.upstash.io?token=AX...&prefix=app:",
    ...                      secrets=["s3cret"])
    >>> storage.store.prefix, storage.store.transport.url
    ('app:', 'https://eu1-example.upstash.io')
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlunsplit

from ...cookie import CookieLike
from ...errors import ConfigurationError
from ...options import StorageOptions, assemble, store_arguments, url_options
from ...storage import SessionStorage
from ...urls import cookie_from_options, reject_unknown
from .rest import DEFAULT_TIMEOUT, UpstashRestClient
from .store import DEFAULT_TTL, UpstashStore

if TYPE_CHECKING:
    from typing_extensions import Unpack


def create_upstash_session_storage(
    *,
    cookie: CookieLike = None,
    url: str | None = None,
    token: str | None = None,
    client: Any = None,
    prefix: str = "session:",
    timeout: float = DEFAULT_TIMEOUT,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions in Upstash Redis over its REST API.

    Pass ``url`` and ``token`` (``UPSTASH_REDIS_REST_URL`` / ``UPSTASH_REDIS_REST_TOKEN``) to
    serve both doors, or ``client=`` an ``upstash_redis.Redis`` (sync door) or
    ``upstash_redis.asyncio.Redis`` (async door). ``timeout`` (seconds) bounds each request
    made through ``url``/``token``.

    The shared options are :class:`~websession.options.StorageOptions`: ``ttl`` (seconds) is
    the record lifetime, whatever the cookie's; not given, the cookie's lifetime or 7 days;
    None keeps records until deleted when the cookie has no lifetime. ``absolute_timeout``
    (seconds) ends a session that long after its id was issued, however active;
    ``storage_key_secret`` keeps records under a keyed hash of the id, so a dump of the store
    holds no live ids (docs/security.md).

    Example::

        >>> from websession import create_cookie
        >>> storage = create_upstash_session_storage(
        ...     cookie=create_cookie("s", secrets=["k"]), url="https://x.upstash.io", token="t")
        >>> storage.get_session(None).is_new  # no cookie: no request at all
        True
    """
    transport = _transport(url, token, client, timeout)
    store = UpstashStore(transport, prefix=prefix, **store_arguments(options, fallback_ttl=DEFAULT_TTL))
    return assemble("create_upstash_session_storage", store, cookie, options)


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``upstash+https://eu1-example.upstash.io?token=AX...&prefix=app:&ttl=3600``.

    The token may also come from ``UPSTASH_REDIS_REST_TOKEN``. ``upstash+http://`` is for local
    servers that speak the REST protocol.
    """
    cookie = cookie_from_options(options)
    shared = url_options(options)
    token = options.pop("token", None) or os.environ.get("UPSTASH_REDIS_REST_TOKEN")
    prefix = options.pop("prefix", "session:")
    timeout = float(options.pop("timeout", DEFAULT_TIMEOUT))
    reject_unknown(url.scheme, options)
    scheme = url.scheme.lower().removeprefix("upstash+")
    rest_url = urlunsplit((scheme, url.netloc, url.path, "", ""))
    return create_upstash_session_storage(
        cookie=cookie, url=rest_url, token=token, prefix=prefix, timeout=timeout, **shared
    )


def _transport(url: str | None, token: str | None, client: Any, timeout: float) -> Any:
    """The client given, or a REST client for ``url`` and ``token``; one way, not both."""
    if client is not None:
        if url is not None or token is not None:
            raise ConfigurationError("pass either client= or url= and token=, not both")
        if timeout != DEFAULT_TIMEOUT:
            raise ConfigurationError(
                "timeout= applies to url= and token=; a client= you pass keeps its own settings"
            )
        return client
    if not url or not token:
        raise ConfigurationError(
            "the Upstash store needs url= and token=, or client=",
            solution="use UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN from the Upstash console",
        )
    return UpstashRestClient(url, token, timeout=timeout)


__all__ = ["create_upstash_session_storage", "open_url"]
