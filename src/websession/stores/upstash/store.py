"""The Upstash store itself: :class:`UpstashStore`, one JSON string per session in Upstash Redis.

Records follow WIRE-FORMAT.md: the key is ``prefix + id`` and the value is the JSON of the
flat session data, the layout Remix's Upstash examples use, so a JavaScript app and a Python
service can share a database. Records and users are the plans the Redis store runs
(:mod:`websession.stores.redis_records`, the string layout; :mod:`websession.stores.redis_users`,
its single-server scripts), over the same keys, so both stores can share a database; here each
command they send is one HTTP request (:mod:`.commands`), and each operation sends one, but a
compare-and-set that lost a race, or a ``NOSCRIPT`` answered with ``EVAL``, sends one more.

What Upstash guarantees here: each command and each script runs atomically, so an update is
a compare-and-set that never brings back a deleted record, a regenerate's take (``GETDEL``)
lands wholly before or after a destroy, and records expire on the server (``native_ttl``).
A client reads its own writes (the sync token), even from a replica of a global database.

What it does not: other processes may read a replica that lags the primary, so right after a
write elsewhere they may briefly see the older record. The maintenance methods (``scan``,
``count``, ``write_many``) use SCAN and ``/pipeline``, which are not atomic: records written or
expiring meanwhile may be seen or missed, and a batch is bounded by the request size limit.

Example::

    >>> from websession.stores.upstash import UpstashRestClient
    >>> store = UpstashStore(UpstashRestClient("https://eu1-example.upstash.io", "AX..."))
    >>> store, store.key("an-id")
    (UpstashStore(UpstashRestClient('https://eu1-example.upstash.io'), prefix='session:'), 'session:an-id')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from ... import codec
from ...changes import Changes
from ..base import Clock, Record, utcnow
from ..redis_commands import Call, Op, Steps, key_text
from ..redis_records import RedisRecords
from ..redis_users import UserIndex
from ..steps import UserIndexDoors, arun_steps, run_steps
from .commands import arguments, eval_whole, rest_command
from .errors import UpstashCommandError
from .rest import Command, UpstashRestClient
from .sdk import SdkTransport

T = TypeVar("T")

DEFAULT_TTL = 7 * 24 * 3600

_SCAN_BATCH = 500
#: Commands per ``/pipeline`` request in ``write_many``, and the value bytes that end a request
#: early (Upstash limits a request's size: 1 MB on the free plan).
WRITE_BATCH = 500
WRITE_BATCH_BYTES = 512 * 1024
#: The operations that find no session, rather than fail, on an unreadable record.
_READS = frozenset(("read", "update", "take"))


class UpstashStore(UserIndexDoors, RedisRecords):
    """Records in Upstash Redis, one JSON string per session, changed by compare-and-set.

    ``transport`` is an :class:`UpstashRestClient` or an ``upstash_redis`` client.
    """

    kind = "upstash"
    atomic_take = True
    native_ttl = True
    user_index = True
    layout = "string"

    def __init__(
        self,
        transport: Any,
        *,
        prefix: str = "session:",
        default_ttl: float | None = DEFAULT_TTL,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret)
        if isinstance(transport, UpstashRestClient):
            self.transport: Any = transport
        else:
            self.transport = SdkTransport(transport)
        self.prefix = prefix
        self._encode = codec.encode
        self._decode = codec.decode_record
        #: The same scripts as the Redis store on a single server (websession.stores.redis_users).
        self._users = UserIndex(self, prefix, decode=self._decode_value, encode=codec.dumps)

    def __repr__(self) -> str:
        return f"UpstashStore({self.transport!r}, prefix={self.prefix!r})"

    # -- the two doors: the shared plans (websession.stores.redis_records), one request a command

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return self._run(self._plan_create(data, expires), "create")

    def read(self, id: str, touch: datetime | None) -> Record | None:
        return self._run(self._plan_read(id, touch), "read", id)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        return self._run(self._plan_update(id, changes, expires, seen), "update", id)

    def delete(self, id: str) -> None:
        self._run(self._plan_delete(id), "delete")

    def take(self, id: str) -> Record | None:
        return self._run(self._plan_take(id), "take", id)

    def close(self) -> None:
        self.transport.close()

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return await self._arun(self._plan_create(data, expires), "create")

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        return await self._arun(self._plan_read(id, touch), "read", id)

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        return await self._arun(self._plan_update(id, changes, expires, seen), "update", id)

    async def adelete(self, id: str) -> None:
        await self._arun(self._plan_delete(id), "delete")

    async def atake(self, id: str) -> Record | None:
        return await self._arun(self._plan_take(id), "take", id)

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _plan_expiry(self, key: str, ttl: int | None) -> Steps[bool]:
        # Every command is a request here. GETEX moves the expiry and its reply says whether
        # the record is still there, where PERSIST alone says 0 for a key without expiry too
        # (the Redis plan then asks EXISTS); and a key of another type answers WRONGTYPE, an
        # unreadable record, as it does to every other update.
        return (yield Call(("GETEX", key, "EX", ttl) if ttl else ("GETEX", key, "PERSIST"))) is not None

    # -- the drivers: records above, users and devices through UserIndexDoors -----------------

    def _run(self, steps: Steps[T], operation: str, id: str = "") -> T:
        try:
            return run_steps(steps, self._send)
        except (UpstashCommandError, codec.CorruptRecordError) as exc:
            missing: T = self._unreadable(exc, operation, id)
            return missing

    async def _arun(self, steps: Steps[T], operation: str, id: str = "") -> T:
        try:
            return await arun_steps(steps, self._asend)
        except (UpstashCommandError, codec.CorruptRecordError) as exc:
            missing: T = self._unreadable(exc, operation, id)
            return missing

    def _send(self, op: Op) -> Any:
        try:
            return self.transport.execute(rest_command(op))
        except UpstashCommandError as exc:  # NOSCRIPT: the script whole; anything else raises
            return self.transport.execute(eval_whole(op, exc))

    async def _asend(self, op: Op) -> Any:
        try:
            return await self.transport.aexecute(rest_command(op))
        except UpstashCommandError as exc:
            return await self.transport.aexecute(eval_whole(op, exc))

    def _unreadable(self, exc: Exception, operation: str, id: str) -> Any:
        """A record that is not UTF-8 (the SDK cannot decode it), or a list or set under the
        session's key, is unreadable: reading, updating or taking it finds no session."""
        if operation not in _READS or (isinstance(exc, UpstashCommandError) and "WRONGTYPE" not in exc.reply):
            raise exc
        codec.log_corrupt(self.kind, id, exc)
        return None

    # -- maintenance (sync only, for the `websession` command) ------------------------------

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Yield every live session under the prefix: SCAN, then GET and PTTL in one pipeline."""
        for ids in self._id_pages():
            yield from self._fetch(ids)

    def count(self) -> int:
        """Keys under the prefix that name a session, counted with SCAN (values are not read).

        SCAN walks the whole database, so this costs a request per ``COUNT`` keys.
        """
        return sum(len(ids) for ids in self._id_pages())

    def peek(self, id: str) -> Record | None:
        """The record and its expiry, untouched: GET and PTTL in one request."""
        return next((record for _, record in self._fetch([self.storage_key(id)])), None)

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """``SET key value PX ms [NX]`` per record, sent through ``/pipeline`` in requests of at
        most ``WRITE_BATCH`` commands and about ``WRITE_BATCH_BYTES`` of values."""
        written = 0
        batch: list[Command] = []
        size = 0
        for id, record in records:
            if self.is_expired(record.expires):
                continue
            command = self._write_command(id, record, self.clock(), replace)
            batch.append(arguments(command))
            size += len(command[2])
            if len(batch) >= WRITE_BATCH or size >= WRITE_BATCH_BYTES:
                written += self._send_writes(batch)
                batch, size = [], 0
        if batch:
            written += self._send_writes(batch)
        return written

    def _send_writes(self, batch: list[Command]) -> int:
        return sum(1 for reply in self.transport.pipeline(batch) if reply is True or reply == "OK")

    def _id_pages(self) -> Iterator[list[str]]:
        """The storage keys under the prefix (the ids, unless they are hashed), a SCAN page at
        a time."""
        match = self._key_pattern()
        cursor = "0"
        while True:
            reply = self.transport.execute(["SCAN", cursor, "MATCH", match, "COUNT", _SCAN_BATCH])
            cursor = _text(reply[0])
            ids = [key[len(self.prefix) :] for key in map(_text, reply[1])]
            ids = [id for id in ids if self.is_storage_key(id)]
            if ids:
                yield ids
            if cursor == "0":
                return

    def _fetch(self, ids: list[str]) -> Iterator[tuple[str, Record]]:
        """GET and PTTL for storage keys (as listed; with hashed ids, digests not to hash again)."""
        replies = self.transport.pipeline(
            [command for id in ids for command in (["GET", self.prefix + id], ["PTTL", self.prefix + id])]
        )
        now = self.clock()
        for index, id in enumerate(ids):
            # None: expired or deleted since SCAN saw it
            record = self._scanned(id, replies[2 * index], replies[2 * index + 1], now)
            if record is not None:
                yield id, record


def _text(reply: Any) -> str:
    if isinstance(reply, int):  # the SDK turns SCAN's cursor into an int
        return str(reply)
    return key_text(reply)


__all__ = ["DEFAULT_TTL", "WRITE_BATCH", "WRITE_BATCH_BYTES", "UpstashStore"]
