"""Custom stores from four CRUD callables, as Remix's ``createSessionStorage``.

The callables may be plain functions or coroutine functions. Plain ones serve both doors (the
async door runs them in a worker thread); coroutine functions serve only the async door.

``update_data`` receives the whole data, so this store applies the request's changes to the
data *as it was read*: concurrent requests can overwrite each other. It says so through
``atomic_changes = False``. Write a :class:`~websession.stores.base.Store` subclass when your
database can apply changes atomically.

Example::

    >>> from websession import create_cookie, create_session_storage, generate_id
    >>> db = {}
    >>> def create_data(data, expires):
    ...     id = generate_id(); db[id] = dict(data); return id
    >>> storage = create_session_storage(
    ...     cookie=create_cookie("s", secrets=["k"]),
    ...     create_data=create_data,
    ...     read_data=lambda id: db.get(id),
    ...     update_data=lambda id, data, expires: db.__setitem__(id, dict(data)),
    ...     delete_data=lambda id: db.pop(id, None),
    ... )
    >>> session = storage.get_session(None)
    >>> session["n"] = 1
    >>> storage.get_session(storage.commit_session(session))["n"]
    1
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import codec
from ..changes import Changes
from ..cookie import CookieLike
from ..errors import ConfigurationError, SessionStoreError
from ..options import StorageOptions, assemble, store_arguments
from ..storage import SessionStorage
from .base import Clock, Record, Store, utcnow

if TYPE_CHECKING:
    from typing_extensions import Unpack

_SAFE_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")

CreateData = Callable[[Mapping[str, Any], "datetime | None"], "str | Awaitable[str]"]
ReadData = Callable[[str], "Mapping[str, Any] | None | Awaitable[Mapping[str, Any] | None]"]
UpdateData = Callable[[str, Mapping[str, Any], "datetime | None"], "None | Awaitable[None]"]
DeleteData = Callable[[str], "None | Awaitable[None]"]
TouchData = Callable[[str, "datetime | None"], "None | Awaitable[None]"]


def is_async_callable(function: object) -> bool:
    """True for coroutine functions, including objects with an ``async def __call__``."""
    call = type(function).__call__ if callable(function) else None
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


class CallbackStore(Store):
    """A store made of user callables. See the module docstring."""

    kind = "custom"
    atomic_changes = False

    def __init__(
        self,
        *,
        create_data: CreateData,
        read_data: ReadData,
        update_data: UpdateData,
        delete_data: DeleteData,
        touch_data: TouchData | None = None,
        is_valid_id: Callable[[object], bool] | None = None,
        default_ttl: float | None = None,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        if storage_key_secret is not None:
            raise ConfigurationError(
                "the custom store cannot keep records under a keyed hash of the id: "
                "create_data issues the id its record is kept under",
                solution="drop storage_key_secret=, or hash ids inside your callbacks",
            )
        super().__init__(default_ttl=default_ttl, clock=clock)
        self._create, self._read = create_data, read_data
        self._update, self._delete, self._touch = update_data, delete_data, touch_data
        self._valid = is_valid_id

    def is_valid_id(self, value: object) -> bool:
        if self._valid is not None:
            try:
                return bool(self._valid(value))
            except Exception:
                # A validator written for strings meets ints, lists and None from cookies: a
                # value it cannot judge is not a valid id, and the request must not fail.
                return False
        return isinstance(value, str) and _SAFE_ID.fullmatch(value) is not None

    # -- the sync door ---------------------------------------------------------------------

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return _checked_id(self._sync(self._create, dict(data), expires))

    def read(self, id: str, touch: datetime | None) -> Record | None:
        record = _as_record(id, self._sync(self._read, id))
        if record is not None and touch is not None and self._touch is not None:
            self._sync(self._touch, id, touch)
        return record

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        data = changes.apply(seen.data)
        self._sync(self._update, id, data, expires)
        return Record(data, expires)

    def delete(self, id: str) -> None:
        self._sync(self._delete, id)

    # -- the async door --------------------------------------------------------------------

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return _checked_id(await self._async(self._create, dict(data), expires))

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        record = _as_record(id, await self._async(self._read, id))
        if record is not None and touch is not None and self._touch is not None:
            await self._async(self._touch, id, touch)
        return record

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        data = changes.apply(seen.data)
        await self._async(self._update, id, data, expires)
        return Record(data, expires)

    async def adelete(self, id: str) -> None:
        await self._async(self._delete, id)

    # -- calling user code -----------------------------------------------------------------

    @staticmethod
    def _sync(function: Callable[..., Any], *args: Any) -> Any:
        if is_async_callable(function):
            raise ConfigurationError(
                f"{getattr(function, '__name__', function)!r} is async, so this storage has no sync door",
                solution="use aget_session/acommit_session/adestroy_session, or pass plain functions",
            )
        result = function(*args)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise ConfigurationError(
                "a session callback returned an awaitable in sync code",
                solution="use the a* methods with async callbacks",
            )
        return result

    @staticmethod
    async def _async(function: Callable[..., Any], *args: Any) -> Any:
        if is_async_callable(function):
            return await function(*args)
        result = await asyncio.to_thread(function, *args)
        if inspect.isawaitable(result):
            return await result
        return result


def _checked_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise SessionStoreError(f"create_data must return a non-empty str id, not {value!r}")
    return value


def _as_record(id: str, data: object) -> Record | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        codec.log_corrupt("custom", id, TypeError(f"read_data returned {type(data).__name__}"))
        return None
    return Record(dict(data))


def create_session_storage(
    *,
    cookie: CookieLike = None,
    create_data: CreateData,
    read_data: ReadData,
    update_data: UpdateData,
    delete_data: DeleteData,
    touch_data: TouchData | None = None,
    is_valid_id: Callable[[object], bool] | None = None,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions in your own database, through four CRUD callables (sync or async).

    ``touch_data(id, expires)``, when given, is called on reads of rolling sessions so your
    database can move the expiry. ``is_valid_id`` checks ids from cookies before your code sees
    them; by default ids must be 1-128 characters of ``A-Z a-z 0-9 _ -``. Use
    :func:`websession.generate_id` in ``create_data`` for 128-bit ids. The shared options
    (``ttl`` or its older spelling ``default_ttl``, ``rolling``, ``absolute_timeout``, ...)
    are :class:`~websession.options.StorageOptions`; ``storage_key_secret`` is refused, as
    your callbacks keep records under the ids they issue. See the module docstring for an
    example.
    """
    store = CallbackStore(
        create_data=create_data,
        read_data=read_data,
        update_data=update_data,
        delete_data=delete_data,
        touch_data=touch_data,
        is_valid_id=is_valid_id,
        **store_arguments(options),
    )
    return assemble("create_session_storage", store, cookie, options)
