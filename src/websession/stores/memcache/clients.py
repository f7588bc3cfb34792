"""How the memcached store talks to one server: pymemcache for the sync door, aiomcache for the
async door, each taught the commands the store needs and each failure turned into websession's.

The store yields :class:`Op` values; a :class:`SyncNode` or :class:`AsyncNode` (one per server
and door) runs each as one round trip. ``gats`` (get, touch and CAS token at once) needs
memcached 1.5.3; an older server answers ERROR once, and from then on the node reads with
``gets`` and touches separately. The TTL lookup uses the meta command ``mg <key> t``, which
needs memcached 1.6; an older server leaves it unknown (:data:`TTL_UNKNOWN`).

What memcached guarantees here: ``add`` never overwrites, and ``cas`` writes only if nobody
wrote since the token was read. What it does not: a write's success says nothing of how long
the item stays, since memcached evicts the least recently used items when its memory is full.

Example::

    >>> parse_server("[::1]:11212"), parse_server("cache").name
    (Server(host='::1', port=11212), 'cache:11211')
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiomcache
from aiomcache.client import acquire
from aiomcache.exceptions import ClientException
from aiomcache.pool import Connection
from pymemcache.client.base import Client as _PymemcacheClient
from pymemcache.client.base import PooledClient
from pymemcache.exceptions import (
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError,
)

from ...errors import ConfigurationError, RecordTooLargeError, SessionStoreError, StoreUnavailableError
from ..base import ErrorRules, translate_errors

#: What a TTL lookup answers when the server has no meta commands (memcached before 1.6).
TTL_UNKNOWN = -2


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


@dataclass(frozen=True, slots=True)
class Op:
    """One memcached operation on one key: what the store logic yields to a node."""

    name: str  # add | gets | gats | cas | delete; set | ttl (maintenance, sync door only)
    key: bytes
    value: bytes = b""
    exptime: int = 0
    token: Any = None


# -- failures: ``where`` is "memcached host:port" ----------------------------------------------


def _unavailable(error: BaseException, where: str) -> StoreUnavailableError:
    reason = str(error) or type(error).__name__
    return StoreUnavailableError(f"{where} is unavailable: {reason}")


def _too_large(error: BaseException, where: str) -> RecordTooLargeError:
    return RecordTooLargeError(
        f"{where} refused the session record: {error}",
        solution="store less in the session, or raise memcached's -I and max_item_size together",
    )


def _server_error(error: BaseException, where: str) -> SessionStoreError:
    if "too large" in str(error):
        return _too_large(error, where)
    return SessionStoreError(f"{where}: SERVER_ERROR {error}")


def _client_error(error: BaseException, where: str) -> SessionStoreError:
    if "too large" in str(error):
        return _too_large(error, where)
    return SessionStoreError(f"{where}: {error}")


def _other_error(error: BaseException, where: str) -> SessionStoreError:
    return SessionStoreError(f"{where}: {type(error).__name__}: {error}")


SYNC_ERRORS: ErrorRules = (
    (MemcacheUnexpectedCloseError, _unavailable),
    (MemcacheServerError, _server_error),
    (OSError, _unavailable),  # refused, reset, timed out
    (MemcacheError, _other_error),
)
ASYNC_ERRORS: ErrorRules = (
    ((OSError, EOFError), _unavailable),  # refused, reset, or closed mid-reply
    (ClientException, _client_error),
)


def _found(value: Any, token: Any) -> tuple[bytes, Any] | None:
    return None if value is None else (bytes(value), token)


def _ttl_reply(reply: bytes) -> int | None:
    """``mg <key> t``'s answer: ``HD t<seconds>`` (-1: no expiry), or ``EN`` when missing."""
    if reply.startswith(b"EN"):
        return None
    for flag in reply.split()[1:]:
        if flag.startswith(b"t"):
            return int(flag[1:])
    return TTL_UNKNOWN


# -- the sync door: pymemcache ------------------------------------------------------------------


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


class SyncNode:
    """One server for the sync door: a pool of pymemcache clients."""

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
        self._errors = translate_errors(SYNC_ERRORS, f"memcached {server.name}")

    def run(self, op: Op) -> Any:
        with self._errors:
            return self._run(op)

    def _run(self, op: Op) -> Any:
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


# -- the async door: aiomcache ------------------------------------------------------------------


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


class AsyncNode:
    """One server for the async door: an aiomcache pool, bound to the loop that opened it."""

    def __init__(self, server: Server, timeout: float, pool_size: int) -> None:
        self.server = server
        self.timeout = timeout
        self.pool_size = pool_size
        self.client = self._new_client()
        self.has_gats = True
        self._errors = translate_errors(ASYNC_ERRORS, f"memcached {server.name}")

    def _new_client(self) -> _AsyncClient:
        return _AsyncClient(self.server.host, self.server.port, pool_size=self.pool_size, pool_minsize=1)

    async def run(self, op: Op) -> Any:
        client = self.client
        with self._errors:
            try:
                return await asyncio.wait_for(self._run(client, op), self.timeout)
            except asyncio.TimeoutError as exc:
                # Caught before the rules see it (it is an OSError since Python 3.11). A
                # cancelled aiomcache call can leave an unread reply on a pooled connection:
                # drop the whole pool rather than read someone else's answer later.
                if self.client is client:
                    self.client = self._new_client()
                await client.close()
                raise StoreUnavailableError(
                    f"memcached {self.server.name} did not answer within {self.timeout:g}s"
                ) from exc

    async def _run(self, client: _AsyncClient, op: Op) -> Any:
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


__all__ = ["TTL_UNKNOWN", "AsyncNode", "Op", "Server", "SyncNode", "parse_server"]
