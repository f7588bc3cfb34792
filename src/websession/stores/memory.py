"""The memory store: records in this process's memory, for tests and single-process apps.

Records are kept as encoded JSON, so what comes back is a copy and what cannot be stored
fails the same way as on a real store. Expiry is checked on read; ``max_entries`` bounds the
number of records by evicting the least recently used one.

What it guarantees: every operation, the user index included, runs under one lock, so
changes are atomic and a take is atomic. What it does not: records live only as long as the
process and are not shared between workers, and eviction under ``max_entries`` can end a
live session.

Example::

    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]), max_entries=10_000)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from .. import codec
from ..changes import Changes
from ..cookie import CookieLike
from ..errors import ConfigurationError
from ..options import StorageOptions, assemble, store_arguments, url_options
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown
from ..users import Device, Entry, Taken
from .base import Data, Record, Store, StoreArguments

if TYPE_CHECKING:
    from typing_extensions import Unpack


class MemoryStore(Store):
    """Records in a dict guarded by a lock. Changes are applied atomically."""

    kind = "memory"
    atomic_take = True
    blocking = False
    cheap_count = True
    user_index = True

    def __init__(
        self,
        *,
        max_entries: int | None = None,
        **shared: Unpack[StoreArguments],
    ) -> None:
        super().__init__(**shared)
        if max_entries is not None and max_entries < 1:
            raise ConfigurationError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._records: OrderedDict[str, tuple[bytes, datetime | None]] = OrderedDict()
        #: user -> {storage key: entry}, and user -> generation; guarded by the same lock.
        self._users: dict[str, dict[str, Entry]] = {}
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        raw = codec.encode(data)
        with self._lock:
            id = self.new_id()
            while self.storage_key(id) in self._records:  # pragma: no cover - 128 random bits
                id = self.new_id()
            self._records[self.storage_key(id)] = (raw, expires)
            self._evict()
        return id

    def read(self, id: str, touch: datetime | None) -> Record | None:
        key = self.storage_key(id)
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return None
            raw, expires = entry
            if touch is not None:
                expires = touch
                self._records[key] = (raw, expires)
            self._records.move_to_end(key)
        try:
            data = codec.decode_record(raw)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None
        return Record(data, expires, raw)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        key = self.storage_key(id)
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return None
            try:
                stored = codec.decode_record(entry[0])
            except codec.CorruptRecordError as exc:
                codec.log_corrupt(self.kind, id, exc)
                return None
            data = changes.apply(stored) if changes else stored
            raw = codec.encode(data) if changes else entry[0]
            self._records[key] = (raw, expires)
            self._records.move_to_end(key)
        return Record(data, expires, raw)

    def delete(self, id: str) -> None:
        with self._lock:
            self._records.pop(self.storage_key(id), None)

    def take(self, id: str) -> Record | None:
        key = self.storage_key(id)
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return None
            del self._records[key]
        return self._decoded(id, entry)

    # -- users and their devices ------------------------------------------------------------

    def create_for_user(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
    ) -> str | None:
        raw = codec.encode(data)
        with self._lock:
            if generation is not None and self._generations.get(user, 0) != generation:
                return None
            id = self.new_id()
            key = self.storage_key(id)
            self._records[key] = (raw, expires)
            self._users.setdefault(user, {})[key] = entry
            self._evict()
        return id

    def take_for_user(self, id: str, user: str) -> Taken:
        key = self.storage_key(id)
        with self._lock:
            entry = self._unindex(user, key)
            generation = self._generations.get(user, 0)
            found = self._live(key)
            if found is not None:
                del self._records[key]
        if found is None or entry is None:
            return Taken(None, entry, generation)  # no entry: revoked, whatever is left of it
        return Taken(self._decoded(id, found), entry, generation)

    def sessions_of(self, user: str) -> list[Device]:
        now = self.clock()
        with self._lock:
            index = self._users.get(user, {})
            devices = []
            for key, entry in list(index.items()):
                found = self._live(key)
                if found is None:
                    del index[key]  # the lazy half of index expiry
                else:
                    devices.append(entry.device(key, found[1], now))
            if not index:
                self._users.pop(user, None)
        return sorted(devices, key=lambda device: device.created)

    def revoke(self, key: str, user: str) -> bool:
        with self._lock:
            self._generations[user] = self._generations.get(user, 0) + 1
            self._unindex(user, key)
            return self._records.pop(key, None) is not None

    def revoke_user(self, user: str, keep: str | None) -> int:
        with self._lock:
            self._generations[user] = self._generations.get(user, 0) + 1
            index = self._users.pop(user, {})
            if keep is not None and keep in index:
                self._users[user] = {keep: index.pop(keep)}
            return sum(1 for key in index if self._records.pop(key, None) is not None)

    def generation(self, user: str, *, bump: bool = False) -> int:
        with self._lock:
            if bump:
                self._generations[user] = self._generations.get(user, 0) + 1
            return self._generations.get(user, 0)

    def _unindex(self, user: str, key: str) -> Entry | None:
        index = self._users.get(user)
        if index is None:
            return None
        entry = index.pop(key, None)
        if not index:
            del self._users[user]
        return entry

    def _decoded(self, id: str, found: tuple[bytes, datetime | None]) -> Record | None:
        raw, expires = found
        try:
            return Record(codec.decode_record(raw), expires, raw)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None

    def scan(self) -> Iterator[tuple[str, Record]]:
        with self._lock:
            items = list(self._records.items())
        for key, (raw, expires) in items:
            if not self.is_expired(expires):
                try:
                    yield key, Record(codec.decode_record(raw), expires, raw)
                except codec.CorruptRecordError as exc:
                    codec.log_corrupt(self.kind, key, exc)

    def count(self) -> int:
        with self._lock:
            return sum(1 for _, expires in self._records.values() if not self.is_expired(expires))

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        raw = codec.encode(data)
        if self.is_expired(expires):
            return False
        key = self.storage_key(id)
        with self._lock:
            if not replace and self._live(key) is not None:
                return False
            self._records[key] = (raw, expires)
            self._records.move_to_end(key)
            self._evict()
        return True

    def purge_expired(self) -> int:
        with self._lock:
            dead = [id for id, (_, expires) in self._records.items() if self.is_expired(expires)]
            for id in dead:
                del self._records[id]
            for user, index in list(self._users.items()):
                for key in [key for key in index if key not in self._records]:
                    del index[key]
                if not index:
                    del self._users[user]
        return len(dead)

    def _live(self, key: str) -> tuple[bytes, datetime | None] | None:
        entry = self._records.get(key)
        if entry is not None and self.is_expired(entry[1]):
            del self._records[key]
            return None
        return entry

    def _evict(self) -> None:
        if self.max_entries is not None:
            while len(self._records) > self.max_entries:
                self._records.popitem(last=False)


def create_memory_session_storage(
    *, cookie: CookieLike = None, max_entries: int | None = None, **options: Unpack[StorageOptions]
) -> SessionStorage:
    """Sessions kept in this process's memory (lost on restart; not shared between workers).

    ``max_entries`` bounds the number of records (the least recently used one is evicted).
    The shared options (``ttl``, ``rolling``, ``absolute_timeout``, ``storage_key_secret``,
    ...) are :class:`~websession.options.StorageOptions`.

    Example::

        >>> from websession import create_cookie
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> storage.get_session(None).is_new
        True
    """
    store = MemoryStore(max_entries=max_entries, **store_arguments(options))
    return assemble("create_memory_session_storage", store, cookie, options)


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``memory://?max_entries=10000&ttl=3600``"""
    cookie = cookie_from_options(options)
    shared = url_options(options)
    max_entries = options.pop("max_entries", None)
    reject_unknown("memory", options)
    return create_memory_session_storage(
        cookie=cookie, max_entries=None if max_entries is None else int(max_entries), **shared
    )
