"""The memcached store: pymemcache for the sync door, aiomcache for the async door.

Records follow WIRE-FORMAT.md: the key is ``prefix + id`` and the value is the JSON of the flat
session data. Each operation is one round trip in the common case:

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

With several servers, each key belongs to one server by rendezvous hashing, the same for both
doors and the same placement as pymemcache's ``HashClient``. A server that is down makes its sessions
unavailable (``StoreUnavailableError``) instead of moving them to another server, which would
fork them. memcached keeps data in memory only: a restart loses the sessions it held.

Example::

    >>> from websession import create_cookie, create_memcache_session_storage
    >>> storage = create_memcache_session_storage(
    ...     cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
    ...     servers=["10.0.0.5:11211", "10.0.0.6:11211"], prefix="app:")
    >>> [server.name for server in storage.store.servers]
    ['10.0.0.5:11211', '10.0.0.6:11211']
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import SplitResult

import aiomcache
from aiomcache.client import acquire
from aiomcache.exceptions import ClientException
from aiomcache.pool import Connection
from pymemcache.client.base import Client as _PymemcacheClient
from pymemcache.client.base import PooledClient
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import (
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError,
)

from .. import codec
from ..changes import Changes
from ..codec import CodecLike
from ..cookie import CookieLike, as_cookie
from ..errors import ConfigurationError, RecordTooLargeError, SessionStoreError, StoreUnavailableError
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options
from .base import UNSET, Clock, Record, Store, TtlOption, given_ttl, url_ttl, utcnow
from .steps import Steps, arun_steps, run_steps

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

#: What a TTL lookup answers when the server has no meta commands (memcached before 1.6).
TTL_UNKNOWN = -2

# Keys travel in memcached's text protocol: printable ASCII, no spaces.
_KEY_TEXT = re.compile(r"[\x21-\x7e]*")
# The longest id any store hands out (a UUID in the remix-v3 format is 36).
_LONGEST_ID = 64


class Server(NamedTuple):
    """One memcached server: ``host:port``."""

    host: str
    port: int

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_server(spec: str | tuple[str, int]) -> Server:
    """``"host:port"``, ``"[::1]:11211"``, ``"host"`` (port 11211) or ``(host, port)``.

    Example::

        >>> parse_server("[::1]:11212"), parse_server("cache")
        (Server(host='::1', port=11212), Server(host='cache', port=11211))
    """
    if isinstance(spec, tuple):
        host, port = spec
        return Server(str(host), int(port))
    text = spec.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") or "11211"
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, "11211"
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"memcached server {spec!r} is not host:port")
    return Server(host, int(port_text))


# -- operations, as the store logic yields them -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Op:
    """One memcached operation on one key: what the store logic yields to a driver."""

    name: str  # add | gets | gats | cas | delete; set | ttl (maintenance, sync door only)
    key: bytes
    value: bytes = b""
    exptime: int = 0
    token: Any = None


# -- the sync door: pymemcache ----------------------------------------------------------------------


class _SyncClient(_PymemcacheClient):  # type: ignore[misc]
    def gats(self, key: bytes, expire: int) -> tuple[Any, Any]:
        """memcached's ``gats``: the value and CAS token, and a new expiry, in one round trip."""
        result = self._fetch_cmd(b"gats " + str(expire).encode(), [key], True, key_prefix=self.key_prefix)
        found: tuple[Any, Any] = result.get(key, (None, None))
        return found


class _SyncPool(PooledClient):  # type: ignore[misc]
    """pymemcache's thread-safe pool of clients, taught ``gats``."""

    client_class = _SyncClient

    def gats(self, key: bytes, expire: int) -> tuple[Any, Any]:
        with self.client_pool.get_and_release(destroy_on_fail=True) as client:
            return client.gats(key, expire)  # type: ignore[no-any-return]


class _SyncNode:
    def __init__(self, server: Server, timeout: float) -> None:
        self.server = server
        self.client = _SyncPool(
            (server.host, server.port),
            connect_timeout=timeout,
            timeout=timeout,
            no_delay=True,
            default_noreply=False,  # every write waits for memcached's answer
        )
        self.has_gats = True

    def run(self, op: _Op) -> Any:
        try:
            return self._run(op)
        except MemcacheUnexpectedCloseError as exc:
            raise _unavailable(self.server, exc) from exc
        except MemcacheServerError as exc:
            raise _server_error(self.server, exc) from exc
        except OSError as exc:  # refused, reset, timed out
            raise _unavailable(self.server, exc) from exc
        except MemcacheError as exc:
            raise SessionStoreError(f"memcached {self.server.name}: {type(exc).__name__}: {exc}") from exc

    def _run(self, op: _Op) -> Any:
        client = self.client
        if op.name == "add":
            return bool(client.add(op.key, op.value, expire=op.exptime, noreply=False))
        if op.name == "gets":
            return _found(*client.gets(op.key))
        if op.name == "gats":
            if self.has_gats:
                try:
                    return _found(*client.gats(op.key, op.exptime))
                except MemcacheUnknownCommandError:
                    self.has_gats = False  # memcached before 1.5.3
            found = _found(*client.gets(op.key))
            if found is not None:
                client.touch(op.key, expire=op.exptime, noreply=False)
            return found
        if op.name == "cas":
            return bool(client.cas(op.key, op.value, op.token, expire=op.exptime, noreply=False))
        if op.name == "delete":
            client.delete(op.key, noreply=False)
            return None
        if op.name == "set":
            return bool(client.set(op.key, op.value, expire=op.exptime, noreply=False))
        if op.name == "ttl":
            try:
                return _ttl_reply(client.raw_command(b"mg " + op.key + b" t"))
            except MemcacheUnknownCommandError:  # memcached before 1.6: no meta commands
                return TTL_UNKNOWN
        raise AssertionError(op.name)

    def close(self) -> None:
        self.client.close()


# -- the async door: aiomcache --------------------------------------------------------------------


class _AsyncClient(aiomcache.Client):
    """aiomcache's client, taught ``gets``/``gats`` that return the CAS token, and made to fail
    (not spin) when memcached closes a connection in the middle of a reply."""

    async def _execute_simple_command(self, conn: Connection, raw_command: bytes) -> bytes:
        # aiomcache 0.8 loops on readline() until a line ends in CRLF; at EOF readline()
        # returns b"" at once, forever, and the event loop hangs. Fail instead.
        conn.writer.write(raw_command)
        await conn.writer.drain()
        line = await conn.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionResetError("memcached closed the connection")
        return line[:-2]

    @acquire
    async def fetch(self, conn: Connection, command: bytes, key: bytes) -> tuple[bytes, int] | None:
        """``gets <key>`` or ``gats <exptime> <key>``: the value and CAS token, or None."""
        self._validate_key(key)
        conn.writer.write(command + b" " + key + b"\r\n")
        await conn.writer.drain()
        found: tuple[bytes, int] | None = None
        while True:
            line = await conn.reader.readline()
            if not line.endswith(b"\r\n"):
                raise ConnectionResetError("memcached closed the connection")
            if line == b"END\r\n":
                return found
            terms = line.split()
            if line == b"ERROR\r\n":
                raise _UnknownCommand(command.split()[0].decode())
            if len(terms) != 5 or terms[0] != b"VALUE" or terms[1] != key or found is not None:
                raise ClientException("unexpected reply from memcached", line[:80])
            data = await conn.reader.readexactly(int(terms[3]) + 2)
            if not data.endswith(b"\r\n"):
                raise ClientException("malformed value from memcached")
            found = (data[:-2], int(terms[4]))


class _UnknownCommand(ClientException):
    """memcached answered ERROR: it does not know the command (gats before 1.5.3)."""


class _AsyncNode:
    def __init__(self, server: Server, timeout: float, pool_size: int) -> None:
        self.server = server
        self.timeout = timeout
        self.pool_size = pool_size
        self.client = self._new_client()
        self.has_gats = True

    def _new_client(self) -> _AsyncClient:
        return _AsyncClient(self.server.host, self.server.port, pool_size=self.pool_size, pool_minsize=1)

    async def run(self, op: _Op) -> Any:
        client = self.client
        try:
            return await asyncio.wait_for(self._run(client, op), self.timeout)
        except asyncio.TimeoutError as exc:
            # A cancelled aiomcache call can leave an unread reply on a pooled connection:
            # drop the whole pool rather than read someone else's answer later.
            if self.client is client:
                self.client = self._new_client()
            await client.close()
            raise StoreUnavailableError(
                f"memcached {self.server.name} did not answer within {self.timeout:g}s"
            ) from exc
        except (OSError, EOFError) as exc:  # refused, reset, or closed mid-reply
            raise _unavailable(self.server, exc) from exc
        except ClientException as exc:
            if b"too large" in str(exc).encode():
                raise _too_large(self.server, exc) from exc
            raise SessionStoreError(f"memcached {self.server.name}: {exc}") from exc

    async def _run(self, client: _AsyncClient, op: _Op) -> Any:
        if op.name == "add":
            return await client.add(op.key, op.value, exptime=op.exptime)
        if op.name == "gets":
            return await client.fetch(b"gets", op.key)
        if op.name == "gats":
            if self.has_gats:
                try:
                    return await client.fetch(b"gats " + str(op.exptime).encode(), op.key)
                except _UnknownCommand:
                    self.has_gats = False
            found = await client.fetch(b"gets", op.key)
            if found is not None:
                await client.touch(op.key, op.exptime)
            return found
        if op.name == "cas":
            # aiomcache sends a plain set for a CAS token of 0; memcached never issues one.
            assert op.token, "memcached CAS tokens are never 0"
            return await client.cas(op.key, op.value, op.token, exptime=op.exptime)
        if op.name == "delete":
            await client.delete(op.key)
            return None
        raise AssertionError(op.name)

    async def close(self) -> None:
        await self.client.close()


def _ttl_reply(reply: bytes) -> int | None:
    """``mg <key> t``'s answer: ``HD t<seconds>`` (-1: no expiry), or ``EN`` when missing."""
    if reply.startswith(b"EN"):
        return None
    for flag in reply.split()[1:]:
        if flag.startswith(b"t"):
            return int(flag[1:])
    return TTL_UNKNOWN


def _found(value: Any, token: Any) -> tuple[bytes, Any] | None:
    return None if value is None else (bytes(value), token)


def _unavailable(server: Server, exc: BaseException) -> StoreUnavailableError:
    reason = str(exc) or type(exc).__name__
    return StoreUnavailableError(f"memcached {server.name} is unavailable: {reason}")


def _too_large(server: Server, exc: BaseException) -> RecordTooLargeError:
    return RecordTooLargeError(
        f"memcached {server.name} refused the session record: {exc}",
        solution="store less in the session, or raise memcached's -I and max_item_size together",
    )


def _server_error(server: Server, exc: MemcacheServerError) -> SessionStoreError:
    if "too large" in str(exc):
        return _too_large(server, exc)
    return SessionStoreError(f"memcached {server.name}: SERVER_ERROR {exc}")


# -- the store --------------------------------------------------------------------------------------


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
        self._sync_nodes: list[_SyncNode] | None = None
        self._async_nodes: list[_AsyncNode] | None = None
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
        ttl = self._call(_Op("ttl", self.key(id)))
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
        return bool(self._call(_Op("set" if replace else "add", key, value, self.exptime(expires))))

    # -- each operation, once, for both doors ----------------------------------------------

    def _create(self, data: Mapping[str, Any], expires: datetime | None) -> Steps[_Op, str]:
        value = codec.encode(data)
        exptime = self.exptime(expires)
        while True:
            id = self.new_id()
            key = self.key(id)
            self._check_size(key, value)
            if (yield _Op("add", key, value, exptime)):
                return id
            # NOT_STORED: the key exists. 128 random bits make this all but impossible.

    def _read(self, id: str, touch: datetime | None) -> Steps[_Op, Record | None]:
        key = self.key(id)
        if touch is None:
            found = yield _Op("gets", key)
        else:
            found = yield _Op("gats", key, exptime=self.exptime(touch))
        if found is None:
            return None
        raw, token = found
        data = self._decode(id, raw)
        if data is None:
            return None
        return Record(data, touch, (raw, token))

    def _update(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Steps[_Op, Record | None]:
        key = self.key(id)
        exptime = self.exptime(expires)
        found = seen.version if isinstance(seen.version, tuple) else (yield _Op("gets", key))
        for _ in range(MAX_ATTEMPTS):
            if found is None:
                return None  # gone: deleted or expired, and it stays that way
            raw, token = found
            try:
                data = changes.apply(codec.decode_record(raw)) if changes else codec.decode_record(raw)
            except codec.CorruptRecordError as exc:
                codec.log_corrupt(self.kind, id, exc)
                return None
            # Nothing changed (only the lifetime): write back the very bytes read.
            value = codec.encode(data) if changes else raw
            self._check_size(key, value)
            if (yield _Op("cas", key, value, exptime, token)):
                return Record(data, expires)  # no CAS token: a later update starts with gets
            # EXISTS (someone wrote) or NOT_FOUND (gone): look at the record as it is now.
            found = yield _Op("gets", key)
        raise SessionStoreError(
            f"the session record changed under {MAX_ATTEMPTS} attempts in a row to update it",
            solution="too many concurrent requests write to one session",
        )

    def _delete(self, id: str) -> Steps[_Op, None]:
        yield _Op("delete", self.key(id))

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

    def _call(self, op: _Op) -> Any:
        nodes = self._sync_nodes
        if nodes is None:
            with self._lock:
                if self._sync_nodes is None:
                    self._sync_nodes = [_SyncNode(server, self.timeout) for server in self.servers]
                nodes = self._sync_nodes
        return nodes[self._node_index(op.key)].run(op)

    async def _acall(self, op: _Op) -> Any:
        # aiomcache's connections belong to the loop that opened them.
        loop = asyncio.get_running_loop()
        if self._async_nodes is None or self._async_loop is not loop:
            self._async_nodes = [_AsyncNode(server, self.timeout, self.pool_size) for server in self.servers]
            self._async_loop = loop
        return await self._async_nodes[self._node_index(op.key)].run(op)


def create_memcache_session_storage(
    *,
    cookie: CookieLike = None,
    servers: Sequence[str | tuple[str, int]] = ("127.0.0.1:11211",),
    ttl: TtlOption = UNSET,
    prefix: str = "session:",
    max_item_size: int = DEFAULT_ITEM_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    pool_size: int = 10,
    rolling: bool = True,
    save_uninitialized: bool = False,
    absolute_timeout: float | None = None,
    storage_key_secret: str | bytes | None = None,
    clock: Clock = utcnow,
    codec: CodecLike = None,
) -> SessionStorage:
    """Sessions in memcached (one or several servers), both doors on one storage.

    ``ttl`` (seconds) is the record lifetime, whatever the cookie's; not given, the cookie's
    lifetime or 7 days; None keeps records until memcached evicts them (cookie without a lifetime).
    ``max_item_size`` must match memcached's
    ``-I`` (1 MiB by default). ``timeout`` bounds connecting and each operation; ``pool_size``
    is the number of connections per server for the async door.

    ``absolute_timeout`` (seconds) ends a session that long after its id was issued, however
    active; ``storage_key_secret`` keeps records under a keyed hash of the id, so a dump of the
    store holds no live ids (docs/security.md).

    Example::

        >>> from websession import create_cookie
        >>> storage = create_memcache_session_storage(
        ...     cookie=create_cookie("s", secrets=["k"]), servers=["127.0.0.1:11211"])
        >>> storage.get_session(None).is_new  # no cookie: no round trip at all
        True
    """
    default_ttl, explicit_ttl = given_ttl(ttl, DEFAULT_TTL)
    store = MemcacheStore(
        servers,
        prefix=prefix,
        default_ttl=default_ttl,
        max_item_size=max_item_size,
        timeout=timeout,
        pool_size=pool_size,
        clock=clock,
        storage_key_secret=storage_key_secret,
    )
    store.explicit_ttl = explicit_ttl
    return SessionStorage(
        cookie=as_cookie(cookie),
        store=store,
        rolling=rolling,
        save_uninitialized=save_uninitialized,
        absolute_timeout=absolute_timeout,
        codec=codec,
    )


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``memcache://10.0.0.5:11211,10.0.0.6:11211?prefix=app:&ttl=3600&max_item_size=2097152``"""
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    servers = [spec for spec in url.netloc.split(",") if spec] or ["127.0.0.1:11211"]
    prefix = options.pop("prefix", "session:")
    ttl = options.pop("ttl", None)
    max_item_size = int(options.pop("max_item_size", DEFAULT_ITEM_SIZE))
    timeout = float(options.pop("timeout", DEFAULT_TIMEOUT))
    pool_size = int(options.pop("pool_size", 10))
    reject_unknown("memcache", options)
    return create_memcache_session_storage(
        cookie=cookie,
        servers=servers,
        ttl=url_ttl(ttl),
        prefix=prefix,
        max_item_size=max_item_size,
        timeout=timeout,
        pool_size=pool_size,
        **shared,
    )


__all__ = ["MemcacheStore", "Server", "create_memcache_session_storage", "open_url", "parse_server"]
