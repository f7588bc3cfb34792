"""Store URLs: ``open_store("redis://localhost:6379/0?prefix=app:")`` gives a ready storage.

Each scheme maps to an opener in the module of its store; the module is imported only when
its scheme is used, so optional client libraries are needed only by those who use them. A store
module adds its scheme with one line in ``SCHEMES`` (or at run time with :func:`register_scheme`).

Example::

    >>> from websession import open_store
    >>> storage = open_store("memory://", secrets=["s3cret"])
    >>> type(storage.store).__name__
    'MemoryStore'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

from .errors import ConfigurationError

#: An opener receives the parsed URL and the options (query parameters merged with keyword
#: arguments) and returns a storage.
Opener = Callable[[SplitResult, dict[str, Any]], Any]

#: scheme -> "module:function". The function has the :data:`Opener` signature.
SCHEMES: dict[str, str] = {
    "memory": "websession.stores.memory:open_url",
    "file": "websession.stores.file:open_url",
    "sqlite": "websession.stores.sqlite:open_url",
    "postgresql": "websession.stores.postgres:open_url",
    "postgres": "websession.stores.postgres:open_url",
    "dynamodb": "websession.stores.dynamodb:open_url",
    "workers-kv": "websession.stores.workers_kv:open_url",
    "cookie": "websession.stores.cookie:open_url",
    "redis": "websession.stores.redis:open_url",
    "rediss": "websession.stores.redis:open_url",
    "redis+cluster": "websession.stores.redis:open_url",
    "rediss+cluster": "websession.stores.redis:open_url",
    "upstash+https": "websession.stores.upstash:open_url",
    "upstash+http": "websession.stores.upstash:open_url",
    "memcache": "websession.stores.memcache:open_url",
}

_runtime: dict[str, Opener] = {}


def register_scheme(scheme: str, opener: Opener) -> None:
    """Teach :func:`open_store` a new URL scheme.

    Example::

        >>> register_scheme("mine", lambda url, options: ("mine", url.netloc))
        >>> open_store("mine://db")
        ('mine', 'db')
    """
    _runtime[scheme] = opener


def open_store(url: str, **options: Any) -> Any:
    """Open the storage a URL names. Query parameters become options; keyword arguments win.

    Common options: ``secrets`` (list), ``cookie`` (a Cookie or its options), ``max_age``,
    ``prefix``, ``ttl``, ``format``, ``codec`` (``tagged`` for datetime, UUID, ... values).
    Unknown schemes raise ConfigurationError.

    Example::

        >>> open_store("sqlite:///tmp/websession-doctest.db", secrets=["k"]).store.path
        '/tmp/websession-doctest.db'
    """
    parsed = urlsplit(url)
    scheme = parsed.scheme.lower()
    merged: dict[str, Any] = dict(parse_qsl(parsed.query))
    merged.update(options)
    return _opener(scheme)(parsed, merged)


def _opener(scheme: str) -> Opener:
    if scheme in _runtime:
        return _runtime[scheme]
    target = SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(sorted({*SCHEMES, *_runtime}))
        raise ConfigurationError(f"unknown store URL scheme {scheme!r}", solution=f"use one of: {known}")
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"the {scheme}:// store needs a package that is not installed: {exc.name}",
            solution="install websession with the extra for this store, e.g. pip install 'websession[redis]'",
        ) from exc
    opener: Opener = getattr(module, function)
    return opener


def cookie_from_options(options: dict[str, Any]) -> Any:
    """Build the session cookie from URL options: ``cookie``, or ``secrets``/``max_age``/``name``.

    ``secrets`` may be a list or a comma-separated string.
    """
    from .cookie import as_cookie, create_cookie

    if "cookie" in options:
        return as_cookie(options.pop("cookie"))
    secrets = options.pop("secrets", ())
    if isinstance(secrets, str):
        secrets = [s for s in secrets.split(",") if s]
    max_age = options.pop("max_age", None)
    return create_cookie(
        options.pop("cookie_name", "__session"),
        secrets=list(secrets),
        max_age=None if max_age is None else float(max_age),
    )


def reject_unknown(scheme: str, options: dict[str, Any]) -> None:
    """Raise ConfigurationError naming the options a store's URL does not understand."""
    if options:
        names = ", ".join(sorted(options))
        raise ConfigurationError(f"the {scheme}:// store does not take: {names}")


def url_path(url: SplitResult) -> str:
    """The file-system path of ``file:///abs/path`` or ``file://./relative/path`` URLs."""
    if url.netloc in ("", "localhost"):
        return url.path
    return url.netloc + url.path
