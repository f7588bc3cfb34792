"""What every storage factory shares: one options object, so a factory is its store's own
arguments plus this.

:class:`StorageOptions` names the settings that belong to the storage rather than to one
backend: rolling, save_uninitialized, absolute_timeout, storage_key_secret, clock, ttl and
codec. Every ``create_*_session_storage`` takes them as keyword arguments, and a dict of them
can be built once and passed to any factory with ``**``.

Example::

    >>> from websession import StorageOptions, create_cookie, create_memory_session_storage
    >>> shared = StorageOptions(rolling=False, absolute_timeout=86400, ttl=3600)
    >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]), **shared)
    >>> storage.rolling, storage.absolute_timeout.days, storage.store.default_ttl
    (False, 1, 3600.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from .codec import CodecLike
from .cookie import CookieLike, as_cookie
from .stores.base import UNSET, Clock, Store, StoreArguments, TtlOption, given_ttl, url_ttl, utcnow

if TYPE_CHECKING:
    from .storage import SessionStorage


class StorageOptions(TypedDict, total=False):
    """The settings every storage factory accepts besides its store's own.

    - ``rolling`` (default True): every request moves the expiry forward (Remix's behaviour).
    - ``save_uninitialized`` (default False): store and send a cookie for a session nobody
      wrote to.
    - ``absolute_timeout`` (seconds, default None): end a session that long after its id was
      issued, however active it is.
    - ``storage_key_secret`` (default None): keep records under a keyed hash of the id, so a
      dump of the store holds no live ids (docs/security.md).
    - ``clock`` (default: UTC now): the time source; tests pass a fake one.
    - ``ttl`` (seconds): the record's lifetime whatever the cookie says. Not given: the
      cookie's lifetime, or the store's own default for cookies without one. None: no
      lifetime of the store's own.
    - ``default_ttl``: the older spelling of ``ttl`` (a number, or None for not given).
    - ``codec`` (default plain JSON): which values sessions may hold (``"tagged"``,
      docs/codecs.md).
    """

    rolling: bool
    save_uninitialized: bool
    absolute_timeout: float | None
    storage_key_secret: str | bytes | None
    clock: Clock
    ttl: TtlOption
    default_ttl: float | None
    codec: CodecLike


_NAMES = frozenset(StorageOptions.__annotations__)


def check_options(factory: str, options: StorageOptions) -> None:
    """Refuse, as Python refuses an unknown keyword, any option a factory does not take.

    Example::

        >>> check_options("create_memory_session_storage", {"roling": False})
        Traceback (most recent call last):
        ...
        TypeError: create_memory_session_storage() got an unexpected keyword argument 'roling'
    """
    for name in options:
        if name not in _NAMES:
            raise TypeError(f"{factory}() got an unexpected keyword argument {name!r}")
    if "ttl" in options and "default_ttl" in options:
        raise TypeError(f"{factory}() takes ttl= or its older spelling default_ttl=, not both")


def resolved_ttl(options: StorageOptions, fallback: float | None = None) -> tuple[float | None, bool]:
    """``(default_ttl, explicit)`` for a store: an explicit lifetime wins over the cookie's,
    and ``fallback`` serves cookies without one when no ``ttl`` was given.

    Example::

        >>> resolved_ttl({"ttl": 60}), resolved_ttl({}, 604800), resolved_ttl({"default_ttl": None})
        ((60.0, True), (604800, False), (None, False))
    """
    if "default_ttl" in options:
        legacy = options["default_ttl"]
        return given_ttl(UNSET if legacy is None else legacy, fallback)
    return given_ttl(options.get("ttl", UNSET), fallback)


def store_arguments(options: StorageOptions, fallback_ttl: float | None = None) -> StoreArguments:
    """The part of ``options`` a store's constructor takes (``default_ttl``, ``clock``,
    ``storage_key_secret``), with ``fallback_ttl`` for cookies without a lifetime.

    Example::

        >>> from websession.stores.memory import MemoryStore
        >>> MemoryStore(max_entries=10, **store_arguments({"ttl": 60})).default_ttl
        60.0
    """
    return StoreArguments(
        default_ttl=resolved_ttl(options, fallback_ttl)[0],
        clock=options.get("clock", utcnow),
        storage_key_secret=options.get("storage_key_secret"),
    )


def assemble(factory: str, store: Store, cookie: CookieLike, options: StorageOptions) -> SessionStorage:
    """The storage a factory returns: ``store`` behind ``cookie``, with the shared ``options``.

    Marks the store's ``explicit_ttl`` when ``ttl`` was given, so the lifetime wins over the
    cookie's. ``factory`` names the caller in errors about unknown options.

    Example::

        >>> from websession.stores.memory import MemoryStore
        >>> options = StorageOptions(ttl=60, rolling=False)
        >>> from websession import create_cookie
        >>> cookie = create_cookie("s", secrets=["k"])
        >>> storage = assemble("mine", MemoryStore(**store_arguments(options)), cookie, options)
        >>> storage.rolling, storage.store.explicit_ttl
        (False, True)
    """
    from .storage import SessionStorage

    check_options(factory, options)
    store.explicit_ttl = resolved_ttl(options)[1]
    return SessionStorage(
        cookie=as_cookie(cookie),
        store=store,
        rolling=options.get("rolling", True),
        save_uninitialized=options.get("save_uninitialized", False),
        absolute_timeout=options.get("absolute_timeout"),
        codec=options.get("codec"),
    )


def url_options(options: dict[str, Any]) -> StorageOptions:
    """Pop the shared options a store URL may carry (``rolling``, ``save_uninitialized``,
    ``codec``, ``ttl``, ``absolute_timeout``) from its query options.

    Example::

        >>> url_options({"rolling": "false", "codec": "tagged", "ttl": "60", "table": "t"})
        {'rolling': False, 'codec': TaggedJSON(), 'ttl': 60.0}
    """
    from .codec import as_codec

    shared = StorageOptions()
    if "rolling" in options:
        shared["rolling"] = _flag(options.pop("rolling"))
    if "save_uninitialized" in options:
        shared["save_uninitialized"] = _flag(options.pop("save_uninitialized"))
    if "codec" in options:
        shared["codec"] = as_codec(options.pop("codec"))
    # A keyword ttl=None passed to open_store has always meant "not given" (the store's own
    # default), while "none" in the URL itself means no lifetime.
    ttl = options.pop("ttl", None)
    if ttl is not None:
        shared["ttl"] = url_ttl(ttl) if isinstance(ttl, str) else ttl
    if "absolute_timeout" in options:
        absolute = options.pop("absolute_timeout")
        shared["absolute_timeout"] = None if absolute in (None, "", "none") else float(absolute)
    return shared


def _flag(value: object) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


__all__ = [
    "StorageOptions",
    "StoreArguments",
    "assemble",
    "check_options",
    "resolved_ttl",
    "store_arguments",
    "url_options",
]
