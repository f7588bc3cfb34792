"""The records of the Redis-protocol stores, as plans: create, read (and touch), update,
delete and take, written once with no I/O (:mod:`.redis_commands`).

A record lives under ``prefix + storage key``, in one of two layouts:

``"string"``
    The JSON of the data (or, for ``"remix-v3"``, of ``[values, flash]``). A read is ``GET``,
    or ``GETEX ... EX ttl`` when it also moves the expiry: one command, one round trip. An
    update applies the changes in Python and sends them through the compare-and-set script
    (:mod:`.redis_cas`), which writes only if the record is still the one read.
``"hash"``
    One field per session key, each value the JSON of that value; the field ``""`` with an
    empty value keeps an empty session alive. Updates set and delete only the changed fields.

What Redis guarantees here: each command and each script runs alone, so create (``SET NX``),
the compare-and-set and take (``GETDEL``, or one script) are atomic, and a record expires by
itself (native TTL; ``GETEX`` reads and moves it in one step). Every plan touches one key, so
it works unchanged on Redis Cluster. What it does not: a server under ``maxmemory`` may evict
a live record (the session then ends early), and after a failover the new primary may lack
the last writes (replication is asynchronous), so a destroyed session may come back or a
change be lost.

:class:`RedisRecords` is a mixin: a store gives ``prefix``, ``layout`` and the record codec
(``_encode``/``_decode``), and drives the ``_plan_*`` generators however it talks to Redis.
Maintenance shares the commands too (``_write_command``, ``_key_pattern``, ``_scanned``),
each store sending them in its own pipelines.

Example::

    >>> decode_hash([b"a", b"1", b"", b""])
    {'a': 1}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from .. import codec
from ..changes import Changes
from ..errors import SessionStoreError
from . import redis_cas
from .base import Record, Store
from .redis_commands import Call, Eval, Steps, as_bytes, pairs, text
from .redis_scripts import CAS, HASH_CREATE, HASH_READ_TOUCH, HASH_TAKE, HASH_UPDATE, HASH_WRITE

Format = Literal["remix", "remix-v3"]
Layout = Literal["string", "hash"]

#: How many fresh ids a create tries before giving up (a collision needs 128 random bits).
CREATE_ATTEMPTS = 8
#: The hash field that keeps an empty session's hash alive. Its value, b"", is never JSON.
HASH_MARKER = ""


class RedisRecords(Store):
    """The record plans of a store that keeps records under ``prefix`` in ``layout``.

    Example::

        >>> from websession.stores.redis import RedisStore
        >>> store = RedisStore(url="redis://localhost:6379/0", prefix="doctest:")
        >>> next(store._plan_read("0" * 40, None))
        Call(args=('GET', 'doctest:0000000000000000000000000000000000000000'))
    """

    prefix: str
    layout: Layout
    _decode: Callable[[bytes], dict[str, Any]]
    _encode: Callable[[Mapping[str, Any]], bytes]

    def key(self, id: str) -> str:
        """The Redis key of a session id: the prefix and its storage key (the id itself, or
        its keyed hash with ``storage_key_secret``)."""
        return self.prefix + self.storage_key(id)

    def _plan_create(self, data: Mapping[str, Any], expires: datetime | None) -> Steps[str]:
        ttl = self.seconds_until(expires)
        # Encoded once; only the id changes between tries.
        args: tuple[Any, ...]
        if self.layout == "hash":
            args = (ttl or 0, *(part for key, value in data.items() for part in (key, codec.dumps(value))))
        else:
            args = (self._encode(data), "NX", *(("EX", ttl) if ttl else ()))
        for _ in range(CREATE_ATTEMPTS):
            id = self.new_id()
            if self.layout == "hash":
                created = yield Eval(HASH_CREATE, (self.key(id),), args)
            else:
                created = yield Call(("SET", self.key(id), *args))
            if created:  # else the id was taken: 128 random bits make this all but impossible
                return id
        raise SessionStoreError(f"no free session id after {CREATE_ATTEMPTS} tries under {self.prefix!r}")

    def _plan_read(self, id: str, touch: datetime | None) -> Steps[Record | None]:
        key = self.key(id)
        ttl = self.seconds_until(touch)
        if self.layout == "hash":
            reply = yield (Eval(HASH_READ_TOUCH, (key,), (ttl,)) if ttl else Call(("HGETALL", key)))
            if not reply:
                return None
            data = self._decode_value(id, reply)
            return None if data is None else Record(data, touch, None)
        reply = yield Call(("GETEX", key, "EX", ttl) if ttl else ("GET", key))
        if reply is None:
            return None
        raw = as_bytes(reply)
        data = self._decode_value(id, raw)
        # The raw bytes are the version: update() digests them, with no second read.
        return None if data is None else Record(data, touch, raw)

    def _plan_update(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Steps[Record | None]:
        key = self.key(id)
        ttl = self.seconds_until(expires)
        if self.layout == "hash":
            removed = [name for name in changes.removed if name not in changes.set]
            fields = [part for name, value in changes.set.items() for part in (name, codec.dumps(value))]
            done = yield Eval(HASH_UPDATE, (key,), (ttl or 0, len(removed), *removed, *fields))
            return Record(changes.apply(seen.data), expires, None) if done else None
        if not changes:
            # Only the lifetime changed: move the expiry, never rewrite the data.
            done = yield from self._plan_expiry(key, ttl)
            return Record(seen.data, expires, seen.version) if done else None
        # A record this process created has no raw version; its bytes are the encoded data.
        raw = seen.version if isinstance(seen.version, bytes) else self._encode(seen.data)
        for _ in range(redis_cas.MAX_ATTEMPTS):
            try:
                attempt = redis_cas.apply_to(changes, raw, decode=self._decode, encode=self._encode)
            except codec.CorruptRecordError as exc:
                codec.log_corrupt(self.kind, id, exc)
                return None
            reply = yield Eval(CAS, (key,), (attempt.expected, attempt.new_raw, ttl or 0))
            if reply is None:
                return None  # deleted or expired meanwhile: never bring it back
            if isinstance(reply, int):
                return Record(attempt.data, expires, attempt.new_raw)
            raw = as_bytes(reply)  # changed meanwhile: apply the changes to what is there now
        raise SessionStoreError(
            f"session {id[:8]}… kept changing; gave up after {redis_cas.MAX_ATTEMPTS} tries"
        )

    def _plan_expiry(self, key: str, ttl: int | None) -> Steps[bool]:
        """Give the record under ``key`` ``ttl`` more seconds (None: no expiry) without
        rewriting it; whether it is still there. A store whose every command is a request of
        its own overrides this to spend one command."""
        if ttl:
            return bool((yield Call(("EXPIRE", key, ttl))))
        if (yield Call(("PERSIST", key))):
            return True
        return bool((yield Call(("EXISTS", key))))  # PERSIST says 0 for "gone" and "had no expiry"

    def _plan_delete(self, id: str) -> Steps[None]:
        yield Call(("DEL", self.key(id)))

    def _plan_take(self, id: str) -> Steps[Record | None]:
        # One key, one command: atomic on a single server and on Cluster alike, where the old
        # and new ids live in different hash slots and RENAME could not be used.
        key = self.key(id)
        if self.layout == "hash":
            reply = yield Eval(HASH_TAKE, (key,), ())
        else:
            reply = yield Call(("GETDEL", key))
        if not reply:
            return None
        data = self._decode_value(id, reply)
        return None if data is None else Record(data, None, None)

    #: The plans by operation name, for a store's ``counted``.
    _plans: ClassVar[dict[str, Callable[..., Steps[Any]]]] = {
        "create": _plan_create,
        "read": _plan_read,
        "update": _plan_update,
        "delete": _plan_delete,
        "take": _plan_take,
    }

    # -- what maintenance (scan, write) shares: the commands, not how they are sent ----------

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        """``SET key value PX ms`` (``NX`` with ``replace=False``); a hash is replaced whole."""
        return self.write_many([(id, Record(dict(data), expires))], replace=replace) == 1

    def _key_pattern(self) -> str:
        """The ``SCAN MATCH`` pattern of this store's keys: the prefix with Redis's glob
        characters escaped, so it matches only itself."""
        return "".join(f"\\{char}" if char in "*?[]\\" else char for char in self.prefix) + "*"

    def _write_command(self, id: str, record: Record, now: datetime, replace: bool) -> tuple[Any, ...]:
        """The command of ``write_many`` for one record: its lifetime carries over to the
        millisecond. A hash is replaced by a script (sent whole: a pipeline cannot retry
        after ``NOSCRIPT``), which leaves a live one alone without ``replace``."""
        ttl_ms = None
        if record.expires is not None:
            ttl_ms = max(1, math.ceil((record.expires - now).total_seconds() * 1000))
        key = self.key(id)
        if self.layout == "hash":
            fields = (part for name, value in record.data.items() for part in (name, codec.dumps(value)))
            return ("EVAL", HASH_WRITE.source, 1, key, int(replace), ttl_ms or 0, *fields)
        command: tuple[Any, ...] = ("SET", key, self._encode(record.data))
        if ttl_ms is not None:
            command += ("PX", ttl_ms)
        return command if replace else (*command, "NX")

    def _scanned(self, id: str, value: Any, pttl: int, now: datetime) -> Record | None:
        """What ``GET`` (``HGETALL``) and ``PTTL`` said of ``id`` in one pipeline, as ``scan``
        reports it: None when it is gone (expired between the two, too) or unreadable."""
        if not value or pttl == -2:
            return None
        data = self._decode_value(id, value)
        if data is None:
            return None
        expires = None if pttl < 0 else now + timedelta(milliseconds=pttl)
        return Record(data, expires, None if self.layout == "hash" else as_bytes(value))

    def _decode_value(self, id: str, reply: Any) -> dict[str, Any] | None:
        try:
            if self.layout == "hash":
                return decode_hash(reply)
            return self._decode(as_bytes(reply))
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None


def decode_hash(reply: Any) -> dict[str, Any]:
    """A hash record's data from its HGETALL reply (a dict, or a script's flat list)."""
    data: dict[str, Any] = {}
    for field, value in pairs(reply):
        try:
            name = text(field)
        except UnicodeDecodeError:
            raise codec.CorruptRecordError("a hash field name is not UTF-8") from None
        raw = as_bytes(value)
        if name == HASH_MARKER and raw == b"":
            continue
        try:
            data[name] = codec.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise codec.CorruptRecordError(f"hash field {name!r} is not JSON: {exc}") from None
    return data


__all__ = ["CREATE_ATTEMPTS", "HASH_MARKER", "Format", "Layout", "RedisRecords", "decode_hash"]
