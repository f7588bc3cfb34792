"""The per-user index of the Redis-protocol stores (Redis, Redis Cluster, Upstash), written once.

Keys, beside the records under ``prefix + storage key``:

``prefix + "user:" + user_digest(user)``
    A hash: one field per signed-in session, named by its storage key (the id, or its keyed
    hash with ``storage_key_secret``), holding the :class:`~websession.users.Entry` as JSON
    (or, on Redis Cluster, for a moment, the :data:`TOMBSTONE` of a revoked session); and the
    field ``"#gen"``, the user's generation (a storage key is hex, so never ``#gen``).
    The key is no id and no 64-hex digest, so ``scan``/``count`` never take it for a session.

Every operation is a plan: a generator of the commands in :mod:`.redis_commands`, with no I/O
of its own. The Redis store runs it through redis-py on either door, the Upstash store over
REST; the Lua scripts are in :mod:`.redis_scripts`.

On one server (plain Redis, Sentinel, Upstash) each operation is ONE Lua script over the index
and the record, so it is atomic and costs one round trip: a sign-in is the take of the old
record plus one script. ``revoke_user`` and the listing touch the records the index names
from inside the script (their names cannot be declared up front without a second round trip
and a race); a single server allows that, Redis Cluster does not.

On Redis Cluster the index and each record live in different hash slots, so no step spans
them. Each operation is ordered so that neither an interleaving nor a failure between two
steps lets a revoked session live on (docs/stores/redis.md):

- a create writes the record, then adds the entry only if the generation is unchanged (else
  deletes the record);
- a take reads the entry and the generation, takes the record, then removes the entry (a
  failure before the take leaves the session listed; after it, an entry whose record is gone,
  which listings prune);
- a revocation bumps the generation and puts tombstones in place of the entries, deletes the
  records, then removes the tombstones. A tombstone counts as no entry for a take and is not
  listed; a failed revocation raises, and retrying it (or listing the user's sessions)
  deletes the records its tombstones name, then the tombstones.

An index has no expiry while it lists sessions: rolling reads move a record's expiry without
touching the index, so any TTL given to the index could end before a session it lists, and
"sign out everywhere" would then miss that session. Dead entries are pruned on every sign-in
and listing instead. Once revoked, a user's index keeps its generation for good (cookie
storages keep their revocations in it); one never revoked vanishes with its last entry.

What Redis does not guarantee, no ordering can: a server under ``maxmemory`` with an
``allkeys-*`` eviction policy may evict an index (keep such servers on ``volatile-*`` or
``noeviction``), and a failover may lose the last writes a replica had not received yet
(replication is asynchronous), a revocation among them.

Example::

    >>> index_key("session:", "ada")[:24]
    'session:user:d1ab8cf5fb7'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from .. import codec
from ..errors import SessionStoreError
from ..users import Device, Entry, Taken, user_digest
from .base import Data, Record, Store
from .redis_commands import Batch, Call, Eval, Script, Steps, integer, key_text, pairs, string_bytes
from .redis_scripts import (
    BUMP,
    CREATE_HASH,
    CREATE_STRING,
    GENERATION_FIELD,
    INDEX_ADD,
    INDEX_REVOKE,
    INDEX_REVOKE_USER,
    REVOKE,
    REVOKE_USER,
    SESSIONS,
    TAKE_HASH,
    TAKE_STRING,
    TOMBSTONE,
)

#: What follows the prefix in an index key.
INDEX_INFIX = "user:"
#: How many fresh ids a create tries before giving up (a collision needs 128 random bits).
CREATE_ATTEMPTS = 8
#: On Redis Cluster, a sign-in prunes the index's dead entries once it lists more than this.
CLUSTER_PRUNE_AT = 16
#: Commands per pipeline when Redis Cluster deletes or looks up many records.
CLUSTER_BATCH = 500

_STORAGE_KEY = re.compile(r"[0-9a-f-]+")


def index_key(prefix: str, user: str) -> str:
    """The Redis key of ``user``'s index under ``prefix``.

    Example::

        >>> index_key("app:", "ada") == "app:user:" + user_digest("ada")
        True
    """
    return prefix + INDEX_INFIX + user_digest(user)


# -- the operations --------------------------------------------------------------------------


class UserIndex:
    """The index operations of one store, as plans (:mod:`.redis_commands`).

    ``store`` gives ids, storage keys, TTLs and the clock. ``encode`` turns data into the
    record's string; ``decode(id, reply)`` reads a taken record back (None, logged, when it is
    unreadable). With ``cluster``, ``create_record``/``take_record`` are the store's own
    single-key steps for a record, and operations follow the cluster ordering.

    Example::

        >>> from websession.stores.memory import MemoryStore
        >>> index = UserIndex(MemoryStore(), "s:", decode=lambda id, reply: None)
        >>> steps = index.generation("ada", bump=False)
        >>> next(steps)
        Call(args=('HGET', 's:user:d1ab8cf5fb7051bf...', '#gen'))
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        *,
        decode: Callable[[str, Any], dict[str, Any] | None],
        encode: Callable[[Mapping[str, Any]], bytes | str] = codec.encode,
        layout: str = "string",
        cluster: bool = False,
        create_record: Callable[[Mapping[str, Any], datetime | None], Steps[str]] | None = None,
        take_record: Callable[[str], Steps[Record | None]] | None = None,
    ) -> None:
        if cluster and (create_record is None or take_record is None):
            raise ValueError("a cluster index needs the store's create_record and take_record steps")
        self.store = store
        self.prefix = prefix
        self.decode = decode
        self.encode = encode
        self.layout = layout
        self.cluster = cluster
        self.create_record = create_record
        self.take_record = take_record

    # -- create_for_user -------------------------------------------------------------------

    def create(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
    ) -> Steps[str | None]:
        index = index_key(self.prefix, user)
        required = "" if generation is None else str(generation)
        saved = codec.dumps(entry.to_json())
        if self.cluster:
            return (yield from self._create_apart(data, expires, index, required, saved))
        ttl = self.store.seconds_until(expires) or 0
        script = CREATE_HASH if self.layout == "hash" else CREATE_STRING
        record: tuple[Any, ...]
        if self.layout == "hash":
            record = tuple(part for name, value in data.items() for part in (name, codec.dumps(value)))
        else:
            record = (self.encode(data),)
        for _ in range(CREATE_ATTEMPTS):
            id = self.store.new_id()
            key = self.store.storage_key(id)
            args = (required, key, saved, ttl, self.prefix, *record)
            reply = yield Eval(script, (index, self.prefix + key), args)
            if reply == -1:
                return None
            if reply == 1:
                return id
            # 0: the id was taken; 128 random bits make this all but impossible
        raise SessionStoreError(f"no free session id after {CREATE_ATTEMPTS} tries under {self.prefix!r}")

    def _create_apart(
        self, data: Mapping[str, Any], expires: datetime | None, index: str, required: str, saved: str
    ) -> Steps[str | None]:
        # The record first, then its entry, only if no revocation landed meanwhile; nobody
        # holds a cookie for the new id before this returns, so nobody can use it unindexed.
        assert self.create_record is not None
        id = yield from self.create_record(data, expires)
        key = self.store.storage_key(id)
        listed = yield Eval(INDEX_ADD, (index,), (required, key, saved))
        if listed == -1:
            yield Call(("DEL", self.prefix + key))
            return None
        if listed > CLUSTER_PRUNE_AT:
            yield from self.sessions_apart(index)  # drops the entries of ended sessions
        return id

    # -- take_for_user ---------------------------------------------------------------------

    def take(self, id: str, user: str) -> Steps[Taken]:
        index = index_key(self.prefix, user)
        key = self.store.storage_key(id)
        if self.cluster:
            assert self.take_record is not None
            # The entry is read first and removed last. A revocation that tombstoned it before
            # the read made this session dead; one that comes after bumps the generation the
            # new id is created under. Until the record is taken the entry stays, so a failure
            # in between leaves the session listed and revocable; after it, the entry names a
            # record that is gone, which the next listing prunes.
            found, gen = yield Call(("HMGET", index, key, GENERATION_FIELD))
            record = yield from self.take_record(id)
            if found is not None:
                yield Call(("HDEL", index, key))
        else:
            script = TAKE_HASH if self.layout == "hash" else TAKE_STRING
            found, gen, value = yield Eval(script, (index, self.prefix + key), (key,))
            data = self.decode(id, value) if value else None
            record = None if data is None else Record(data)
        generation = integer(gen)
        if found is None or _is_tombstone(found):
            return Taken(None, None, generation)  # no entry: revoked, and its record is gone too
        entry = self._entry(key, found)
        if entry is None:
            # Present but unreadable: not revoked (revocations remove entries), so the session
            # keeps going, signed in from now on.
            entry = Entry(self.store.clock())
        return Taken(record, entry, generation)

    # -- sessions_of -----------------------------------------------------------------------

    def sessions(self, user: str) -> Steps[list[Device]]:
        index = index_key(self.prefix, user)
        if self.cluster:
            return (yield from self.sessions_apart(index))
        reply = yield Eval(SESSIONS, (index,), (self.prefix,))
        items = list(reply or ())
        triples = zip(items[0::3], items[1::3], items[2::3], strict=True)
        found = [(key_text(key), raw, integer(pttl)) for key, raw, pttl in triples]
        return self._devices(found)

    def sessions_apart(self, index: str) -> Steps[list[Device]]:
        """The listing on Redis Cluster: the index, the records' PTTLs pipelined by node, then
        the entries of records that are gone removed (such records never come back: a new
        session always gets a new id). Tombstones a failed revocation left are not listed:
        their records are deleted, then they are removed, finishing that revocation."""
        reply = yield Call(("HGETALL", index))
        entries = [(key_text(field), raw) for field, raw in pairs(reply)]
        entries = [(key, raw) for key, raw in entries if self._is_session(key)]
        revoked = [key for key, raw in entries if _is_tombstone(raw)]
        entries = [(key, raw) for key, raw in entries if not _is_tombstone(raw)]
        found: list[tuple[str, Any, int]] = []
        dead: list[str] = []
        for start in range(0, len(entries), CLUSTER_BATCH):
            chunk = entries[start : start + CLUSTER_BATCH]
            pttls = yield Batch(tuple(("PTTL", self.prefix + key) for key, _ in chunk))
            for (key, raw), pttl in zip(chunk, pttls, strict=True):
                if integer(pttl) == -2:
                    dead.append(key)
                else:
                    found.append((key, raw, integer(pttl)))
        yield from self._delete_apart(revoked)
        yield from self._remove_entries(index, dead + revoked)
        return self._devices(found)

    def _devices(self, found: list[tuple[str, Any, int]]) -> list[Device]:
        now = self.store.clock()
        devices = []
        for key, raw, pttl in found:
            if _is_tombstone(raw):
                continue  # revoked: its record is on its way out
            entry = self._entry(key, raw)
            if entry is not None:  # an unreadable entry is not listed; revocations still reach it
                expires = None if pttl < 0 else now + timedelta(milliseconds=pttl)
                devices.append(entry.device(key, expires, now))
        return sorted(devices, key=lambda device: device.created)

    # -- revoke, revoke_user, generation -----------------------------------------------------

    def revoke(self, key: str, user: str) -> Steps[bool]:
        index = index_key(self.prefix, user)
        if not self._is_session(key):
            return False  # not a key this store writes: nothing to delete under it
        if self.cluster:
            # Tombstone, record, tombstone: a failure after the first step raises, and the
            # tombstone keeps the job for a retry (or the next listing) to finish.
            yield Eval(INDEX_REVOKE, (index,), (key,))
            deleted = yield Call(("DEL", self.prefix + key))
            yield Call(("HDEL", index, key))
        else:
            deleted = yield Eval(REVOKE, (index, self.prefix + key), (key,))
        return integer(deleted) > 0

    def revoke_user(self, user: str, keep: str | None) -> Steps[int]:
        index = index_key(self.prefix, user)
        if not self.cluster:
            return integer((yield Eval(REVOKE_USER, (index,), (keep or "", self.prefix))))
        # As revoke: the tombstones of a failed try are still there for the next to finish.
        revoked = yield Eval(INDEX_REVOKE_USER, (index,), (keep or "",))
        keys = [key_text(key) for key in revoked or ()]
        deleted = yield from self._delete_apart(keys)
        yield from self._remove_entries(index, keys)
        return deleted

    def generation(self, user: str, *, bump: bool = False) -> Steps[int]:
        index = index_key(self.prefix, user)
        if bump:
            return integer((yield Eval(BUMP, (index,), ())))
        return integer((yield Call(("HGET", index, GENERATION_FIELD))))

    # -- helpers -----------------------------------------------------------------------------

    def _delete_apart(self, keys: list[str]) -> Steps[int]:
        """Delete the records under ``keys`` on Redis Cluster, pipelined by node; how many were."""
        deleted = 0
        for start in range(0, len(keys), CLUSTER_BATCH):
            chunk = keys[start : start + CLUSTER_BATCH]
            replies = yield Batch(tuple(("DEL", self.prefix + key) for key in chunk))
            deleted += sum(integer(reply) for reply in replies)
        return deleted

    def _remove_entries(self, index: str, keys: list[str]) -> Steps[None]:
        """Remove the fields ``keys`` (entries or tombstones) whose records are gone for good."""
        for start in range(0, len(keys), CLUSTER_BATCH):
            yield Call(("HDEL", index, *keys[start : start + CLUSTER_BATCH]))

    def _is_session(self, key: str) -> bool:
        return key != GENERATION_FIELD and _STORAGE_KEY.fullmatch(key) is not None

    def _entry(self, key: str, raw: Any) -> Entry | None:
        try:
            entry = Entry.from_json(codec.loads(string_bytes(raw)))
        except (ValueError, UnicodeDecodeError, TypeError) as exc:
            codec.log_corrupt(self.store.kind, key, codec.CorruptRecordError(f"its user index entry: {exc}"))
            return None
        if entry is None:
            problem = codec.CorruptRecordError("its user index entry is not an entry")
            codec.log_corrupt(self.store.kind, key, problem)
        return entry


def _is_tombstone(raw: Any) -> bool:
    return isinstance(raw, (str, bytes)) and raw in (TOMBSTONE, TOMBSTONE.encode())


# Call, Eval and Steps live in websession.stores.redis_commands; the Upstash store reaches them
# through this module.
__all__ = [
    "GENERATION_FIELD",
    "TOMBSTONE",
    "Batch",
    "Call",
    "Eval",
    "Script",
    "Steps",
    "UserIndex",
    "index_key",
]
