"""The memcached store: records changed with gets/cas, one server per key by rendezvous hashing.

Each operation is written once, as steps (:mod:`websession.stores.steps`) that yield
:class:`~websession.stores.memcache.clients.Op` values, and run by either door's nodes:

=======  ==================================================================================
create   ``add`` (never overwrites; a new id on the vanishing chance of a collision)
read     ``gats`` (get, touch and CAS token at once) when rolling, else ``gets``
update   ``cas`` with the token read: the changes applied in Python to the record read are
         written only if nobody wrote since; otherwise ``gets`` the current record, apply the
         changes to it and try again. A record that is gone stays gone.
delete   ``delete``
=======  ==================================================================================

Expiry times over 30 days are sent as absolute Unix times, because memcached reads any larger
number that way (a 60-day TTL sent as seconds would be a date in 1970: expired at once).
Keys are checked against memcached's limit of 250 bytes when the store is built, and a record
larger than ``max_item_size`` (memcached's ``-I``, 1 MiB by default) is refused with
:class:`~websession.errors.RecordTooLargeError` before it is sent.

What memcached guarantees: atomic changes (CAS) and its own expiry. What it does not: keeping a
live session (it evicts the least recently used items when full, and a restart loses them all),
or listing its keys (no ``scan``/``count``).
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymemcache.client.rendezvous import RendezvousHash

from ... import codec
from ...changes import Changes
from ...errors import ConfigurationError, RecordTooLargeError, SessionStoreError
from ..base import Clock, Record, Store, utcnow
from ..steps import Steps, arun_steps, run_steps
from .clients import AsyncNode, Op, Server, SyncNode, parse_server

DEFAULT_TTL = 7 * 24 * 3600
DEFAULT_TIMEOUT = 2.0
DEFAULT_ITEM_SIZE = 1024 * 1024

#: memcached's longest key, in bytes.
MAX_KEY_LENGTH = 250
#: Expiry values above this many seconds are read by memcached as absolute Unix times.
RELATIVE_EXPIRY_LIMIT = 30 * 24 * 3600
#: Bytes memcached needs in an item besides key and value (header, CAS, flags, CRLF):
#: 59 measured on memcached 1.6, rounded up.
ITEM_OVERHEAD = 64
#: CAS attempts before an update gives up; each lost one means another request's update landed.
MAX_ATTEMPTS = 100

# Keys travel in memcached's text protocol: printable ASCII, no spaces.
_KEY_TEXT = re.compile(r"[\x21-\x7e]*")
# The longest id any store hands out (a UUID in the remix-v3 format is 36).
_LONGEST_ID = 64


class MemcacheStore(Store):
    """Records in memcached, changed with gets/cas; one server per key by rendezvous hashing."""

    kind = "memcache"
    native_ttl = True

    def __init__(
        self,
        servers: Sequence[str | tuple[str, int]] = ("127.0.0.1:11211",),
        *,
        prefix: str = "session:",
        default_ttl: float | None = DEFAULT_TTL,
        max_item_size: int = DEFAULT_ITEM_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        pool_size: int = 10,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret)
        if isinstance(servers, str):
            servers = [servers]
        self.servers = [parse_server(spec) for spec in servers]
        if not self.servers:
            raise ConfigurationError("the memcached store needs at least one server")
        if len({server.name for server in self.servers}) != len(self.servers):
            raise ConfigurationError("a memcached server is listed twice")
        if not _KEY_TEXT.fullmatch(prefix):
            raise ConfigurationError(
                f"memcached keys are printable ASCII without spaces; the prefix {prefix!r} is not"
            )
        longest = len(prefix) + max(len(self.storage_key(self.new_id())), _LONGEST_ID)
        if longest > MAX_KEY_LENGTH:
            raise ConfigurationError(
                f"prefix {prefix!r} makes keys of up to {longest} bytes; memcached allows {MAX_KEY_LENGTH}"
            )
        if max_item_size <= ITEM_OVERHEAD + longest:
            raise ConfigurationError(f"max_item_size {max_item_size} is too small for any record")
        if timeout <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        self.prefix = prefix
        self.max_item_size = max_item_size
        self.timeout = timeout
        self.pool_size = pool_size
        # Node names as pymemcache's HashClient writes them, so keys land where it puts them.
        names = [f"{server.host}:{server.port}" for server in self.servers]
        self._hash = RendezvousHash(names)
        self._index = {name: index for index, name in enumerate(names)}
        self._sync_nodes: list[SyncNode] | None = None
        self._async_nodes: list[AsyncNode] | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemcacheStore({[server.name for server in self.servers]}, prefix={self.prefix!r})"

    def key(self, id: str) -> bytes:
        """The memcached key of a session id: the prefix and its storage key (the id itself,
        or its keyed hash with ``storage_key_secret``)."""
        return (self.prefix + self.storage_key(id)).encode("ascii")

    def server_for(self, id: str) -> Server:
        """The server that holds the session ``id``."""
        return self.servers[self._node_index(self.key(id))]

    # -- the two doors ---------------------------------------------------------------------

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return run_steps(self._create(data, expires), self._call)

    def read(self, id: str, touch: datetime | None) -> Record | None:
        return run_steps(self._read(id, touch), self._call)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        return run_steps(self._update(id, changes, expires, seen), self._call)

    def delete(self, id: str) -> None:
        run_steps(self._delete(id), self._call)

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return await arun_steps(self._create(data, expires), self._acall)

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        return await arun_steps(self._read(id, touch), self._acall)

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        return await arun_steps(self._update(id, changes, expires, seen), self._acall)

    async def adelete(self, id: str) -> None:
        await arun_steps(self._delete(id), self._acall)

    def close(self) -> None:
        with self._lock:
            nodes, self._sync_nodes = self._sync_nodes, None
            if self._async_loop is not None and self._async_loop.is_closed():
                self._async_nodes, self._async_loop = None, None  # their loop is gone
        for node in nodes or ():
            node.close()

    async def aclose(self) -> None:
        nodes, loop = self._async_nodes, self._async_loop
        self._async_nodes, self._async_loop = None, None
        if loop is asyncio.get_running_loop():  # connections of another loop cannot be closed here
            for node in nodes or ():
                await node.close()
        self.close()

    # -- maintenance (sync only, for the `websession` command) ------------------------------

    def scan(self) -> Iterator[tuple[str, Record]]:
        """memcached cannot list its keys, so this raises NotImplementedError (and so does
        :meth:`count`): ``websession stats``/``ls`` and a migration *from* memcached are not
        possible. ``show``, ``rm`` and a migration *to* memcached work."""
        raise NotImplementedError(
            f"the {self.kind} store cannot list its records: memcached has no command that enumerates keys"
        )

    def peek(self, id: str) -> Record | None:
        """The record, untouched, with its expiry from the meta command ``mg <key> t``
        (memcached 1.6+; older servers leave ``expires`` as None)."""
        if not self.is_valid_id(id):
            return None  # the key goes into a raw text command: only ids this store issues
        record = self.read(id, None)
        if record is None:
            return None
        ttl = self._call(Op("ttl", self.key(id)))
        if ttl is None:
            return None  # deleted or expired between the two commands
        expires = self.clock() + timedelta(seconds=ttl) if ttl >= 0 else None
        return Record(record.data, expires, record.version)

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        """``set`` (or ``add`` with ``replace=False``) under ``prefix + id`` with the expiry."""
        if not self.is_valid_id(id):
            raise ValueError(f"{id!r} is not a valid session id for the memcache store")
        if self.is_expired(expires):
            return False
        key = self.key(id)
        value = codec.encode(data)
        self._check_size(key, value)
        return bool(self._call(Op("set" if replace else "add", key, value, self.exptime(expires))))

    # -- each operation, once, for both doors ----------------------------------------------

    def _create(self, data: Mapping[str, Any], expires: datetime | None) -> Steps[Op, str]:
        value = codec.encode(data)
        exptime = self.exptime(expires)
        while True:
            id = self.new_id()
            key = self.key(id)
            self._check_size(key, value)
            if (yield Op("add", key, value, exptime)):
                return id
            # NOT_STORED: the key exists. 128 random bits make this all but impossible.

    def _read(self, id: str, touch: datetime | None) -> Steps[Op, Record | None]:
        key = self.key(id)
        if touch is None:
            found = yield Op("gets", key)
        else:
            found = yield Op("gats", key, exptime=self.exptime(touch))
        if found is None:
            return None
        raw, token = found
        data = self._decode(id, raw)
        if data is None:
            return None
        return Record(data, touch, (raw, token))

    def _update(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Steps[Op, Record | None]:
        key = self.key(id)
        exptime = self.exptime(expires)
        found = seen.version if isinstance(seen.version, tuple) else (yield Op("gets", key))
        for _ in range(MAX_ATTEMPTS):
            if found is None:
                return None  # gone: deleted or expired, and it stays that way
            raw, token = found
            data = self._decode(id, raw)
            if data is None:
                return None
            if changes:
                data = changes.apply(data)
            # Nothing changed (only the lifetime): write back the very bytes read.
            value = codec.encode(data) if changes else raw
            self._check_size(key, value)
            if (yield Op("cas", key, value, exptime, token)):
                return Record(data, expires)  # no CAS token: a later update starts with gets
            # EXISTS (someone wrote) or NOT_FOUND (gone): look at the record as it is now.
            found = yield Op("gets", key)
        raise SessionStoreError(
            f"the session record changed under {MAX_ATTEMPTS} attempts in a row to update it",
            solution="too many concurrent requests write to one session",
        )

    def _delete(self, id: str) -> Steps[Op, None]:
        yield Op("delete", self.key(id))

    # -- plumbing --------------------------------------------------------------------------

    def exptime(self, expires: datetime | None) -> int:
        """memcached's expiry value for ``expires``: seconds from now up to 30 days, an
        absolute Unix time beyond, 0 for never.

        Example::

            >>> from datetime import timedelta
            >>> store = MemcacheStore()
            >>> store.exptime(None), store.exptime(store.clock() + timedelta(hours=1))
            (0, 3600)
            >>> store.exptime(store.clock() + timedelta(days=60)) > 1_000_000_000
            True
        """
        seconds = self.seconds_until(expires)
        if seconds is None or expires is None:
            return 0
        if seconds <= RELATIVE_EXPIRY_LIMIT:
            return seconds
        return math.ceil(expires.timestamp())

    def _check_size(self, key: bytes, value: bytes) -> None:
        room = self.max_item_size - ITEM_OVERHEAD - len(key)
        if len(value) > room:
            raise RecordTooLargeError(
                f"the session record is {len(value)} bytes; memcached items here hold at most "
                f"{room} bytes of data (max_item_size={self.max_item_size})"
            )

    def _decode(self, id: str, raw: bytes) -> dict[str, Any] | None:
        try:
            return codec.decode_record(raw)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None

    def _node_index(self, key: bytes) -> int:
        if len(self.servers) == 1:
            return 0
        return self._index[self._hash.get_node(key.decode("ascii"))]

    def _call(self, op: Op) -> Any:
        nodes = self._sync_nodes
        if nodes is None:
            with self._lock:
                if self._sync_nodes is None:
                    self._sync_nodes = [SyncNode(server, self.timeout) for server in self.servers]
                nodes = self._sync_nodes
        return nodes[self._node_index(op.key)].run(op)

    async def _acall(self, op: Op) -> Any:
        # aiomcache's connections belong to the loop that opened them.
        loop = asyncio.get_running_loop()
        if self._async_nodes is None or self._async_loop is not loop:
            self._async_nodes = [AsyncNode(server, self.timeout, self.pool_size) for server in self.servers]
            self._async_loop = loop
        return await self._async_nodes[self._node_index(op.key)].run(op)


__all__ = ["DEFAULT_ITEM_SIZE", "DEFAULT_TIMEOUT", "DEFAULT_TTL", "MemcacheStore"]
