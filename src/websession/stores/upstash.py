"""The Upstash store: sessions in Upstash Redis, spoken to over its REST API.

Records follow WIRE-FORMAT.md: the key is ``prefix + id`` and the value is the JSON of the flat
session data, the layout Remix's Upstash examples use, so a JavaScript app and a Python service
can share a database. Each operation is one HTTPS request:

=======  ==================================================================================
create   ``SET key value NX EX ttl`` (a new id on the vanishing chance of a collision)
read     ``GETEX key EX ttl`` when rolling (the TTL moves in the same request), else ``GET``
update   ``EVALSHA`` of the compare-and-set script in :mod:`.redis_cas` (``EVAL`` after
         ``NOSCRIPT``): the new record is encoded in Python and written only if the stored
         record still has the digest this request read; otherwise the changes are applied to
         the current record and the call retried. A deleted record is never brought back.
delete   ``DEL key``
users    one ``EVALSHA`` per operation (sign-in, sign-out, listing, revocations): the scripts
         of the Redis store's user index (:mod:`.redis_users`), over the same keys, so both
         stores can share a database; a sign-in of an existing session adds a ``GETDEL``
=======  ==================================================================================

Two transports carry the commands. With ``url`` and ``token`` the store speaks the REST
protocol itself through httpx (sync and async clients made on first use): JSON command arrays
POSTed with a Bearer token, ``Upstash-Encoding: base64`` replies decoded, the
``upstash-sync-token`` of each reply sent back for read-your-writes, and explicit timeouts.
With ``client=`` it uses an ``upstash_redis.Redis`` (sync door) or
``upstash_redis.asyncio.Redis`` (async door) you already have.

Failures are never silent (the seed blog's example ignored HTTP errors and lost sessions):
network errors, timeouts, HTTP 429 and 5xx raise :class:`~websession.errors.StoreUnavailableError`;
a refused token (401) or a command error raises :class:`~websession.errors.SessionStoreError`
carrying the server's message.

Example::

    >>> from websession import create_cookie, create_upstash_session_storage
    >>> storage = create_upstash_session_storage(
    ...     cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
    ...     url="https://eu1-example.upstash.io", token="AX...")
    >>> storage.store.prefix
    'session:'
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from .. import codec
from ..changes import Changes
from ..codec import CodecLike
from ..cookie import CookieLike, as_cookie
from ..errors import ConfigurationError, SessionStoreError, StoreUnavailableError
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options
from ..users import Device, Entry, Taken
from . import redis_users
from .base import UNSET, Clock, Record, Store, TtlOption, given_ttl, url_ttl, utcnow
from .redis_cas import CAS_SCRIPT, CAS_SHA1, Attempt, apply_to, digest
from .steps import Steps, arun_steps, run_steps

#: Every pooled connection may stay open (httpx keeps 20 by default). httpcore's sync pool can
#: close a "surplus" keep-alive connection that another thread was just handed, failing that
#: request with EBADF or a read timeout (encode/httpcore#1110); seen with 50 threads in the
#: security suite, never with this setting.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)

#: One Redis command as the REST API takes it: the name, then its arguments.
Command = list[str | int]

T = TypeVar("T")

DEFAULT_TTL = 7 * 24 * 3600
DEFAULT_TIMEOUT = 5.0

#: Compare-and-set attempts before an update gives up. Each lost attempt means another
#: request's update landed, so n concurrent writers to one session need at most n - 1 retries.
MAX_ATTEMPTS = 100

_SCAN_BATCH = 500
#: Commands per ``/pipeline`` request in ``write_many``, and the value bytes that end a request
#: early (Upstash limits a request's size: 1 MB on the free plan).
WRITE_BATCH = 500
WRITE_BATCH_BYTES = 512 * 1024


class UpstashCommandError(SessionStoreError):
    """Upstash ran the command and answered with an error (``{"error": "..."}``).

    ``reply`` is the server's message, e.g. ``"WRONGTYPE Operation against a key holding the
    wrong kind of value"``.
    """

    def __init__(self, reply: str, *, solution: str | None = None) -> None:
        super().__init__(f"Upstash: {reply}", solution=solution)
        self.reply = reply


# -- the REST transport ----------------------------------------------------------------------


class UpstashRestClient:
    """A small Upstash REST client on httpx, with a sync and an async door.

    ``execute`` sends one command to the base URL, ``pipeline`` several to ``/pipeline`` (one
    request, not atomic) and ``transaction`` several to ``/multi-exec`` (atomic). Replies are
    asked for in base64 and decoded: strings come back as ``bytes``, the status reply ``"OK"``
    as ``"OK"``, integers as ``int``, nil as ``None``.

    Example::

        >>> rest = UpstashRestClient("https://eu1-example.upstash.io", "AX...", timeout=2.0)
        >>> rest.url, rest.timeout
        ('https://eu1-example.upstash.io', 2.0)
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        read_your_writes: bool = True,
    ) -> None:
        parsed = urlsplit(url)
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            raise ConfigurationError(
                f"the Upstash REST URL must be https://host (got {url!r})",
                solution="copy UPSTASH_REDIS_REST_URL from the Upstash console",
            )
        if not token:
            raise ConfigurationError(
                "the Upstash REST token is empty", solution="pass UPSTASH_REDIS_REST_TOKEN as token="
            )
        if timeout <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.read_your_writes = read_your_writes
        self._token = token
        self._sync_token: str | None = None
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"UpstashRestClient({self.url!r})"

    # -- the sync door ---------------------------------------------------------------------

    def execute(self, command: Command) -> Any:
        """Run one command and return its decoded result."""
        return _result(self._parse(self._post("", command)))

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Run several commands in one request (not atomic); raise on the first error."""
        return _results(self._parse(self._post("/pipeline", list(commands))), len(commands))

    def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """Run several commands atomically (MULTI/EXEC) in one request."""
        return _results(self._parse(self._post("/multi-exec", list(commands))), len(commands))

    def close(self) -> None:
        """Close the connections this client opened (the async ones when their loop is gone)."""
        with self._lock:
            client, self._client = self._client, None
            if self._aloop is not None and self._aloop.is_closed():
                self._aclient, self._aloop = None, None
        if client is not None:
            client.close()

    # -- the async door --------------------------------------------------------------------

    async def aexecute(self, command: Command) -> Any:
        """Async twin of :meth:`execute`."""
        return _result(self._parse(await self._apost("", command)))

    async def apipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Async twin of :meth:`pipeline`."""
        return _results(self._parse(await self._apost("/pipeline", list(commands))), len(commands))

    async def atransaction(self, commands: Sequence[Command]) -> list[Any]:
        """Async twin of :meth:`transaction`."""
        return _results(self._parse(await self._apost("/multi-exec", list(commands))), len(commands))

    async def aclose(self) -> None:
        """Close the async connections of the running loop, and the sync ones."""
        aclient, loop = self._aclient, self._aloop
        self._aclient, self._aloop = None, None
        if aclient is not None and loop is asyncio.get_running_loop():
            await aclient.aclose()  # connections of another loop cannot be closed here
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Upstash-Encoding": "base64",
            "Content-Type": "application/json",
        }
        sync_token = self._sync_token
        if sync_token and self.read_your_writes:
            headers["Upstash-Sync-Token"] = sync_token
        return headers

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=self.timeout, limits=POOL_LIMITS)
                client = self._client
        return client

    def _async_client(self) -> httpx.AsyncClient:
        # An AsyncClient's connections belong to the loop that opened them.
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            self._aclient, self._aloop = httpx.AsyncClient(timeout=self.timeout), loop
        return self._aclient

    def _post(self, path: str, body: Any) -> httpx.Response:
        try:
            return self._sync_client().post(self.url + path, content=_body(body), headers=self._headers())
        except httpx.TimeoutException as exc:
            raise self._timed_out(exc) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    async def _apost(self, path: str, body: Any) -> httpx.Response:
        try:
            return await self._async_client().post(
                self.url + path, content=_body(body), headers=self._headers()
            )
        except httpx.TimeoutException as exc:
            raise self._timed_out(exc) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _timed_out(self, exc: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"Upstash at {self.url} did not answer within {self.timeout:g}s ({type(exc).__name__})"
        )

    def _unreachable(self, exc: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(f"cannot reach Upstash at {self.url}: {type(exc).__name__}: {exc}")

    def _parse(self, response: httpx.Response) -> Any:
        """The JSON body of a successful reply; every failure becomes a websession error."""
        sync_token = response.headers.get("upstash-sync-token")
        if sync_token:
            self._sync_token = sync_token
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("error") if isinstance(body, dict) else None
        if message is None and body is None:
            message = response.text.strip()[:200] or response.reason_phrase
        if status in (401, 403):
            raise SessionStoreError(
                f"Upstash refused the token (HTTP {status}: {message})",
                solution="check the REST token (UPSTASH_REDIS_REST_TOKEN) for this database",
            )
        if status == 429 or status >= 500:
            raise StoreUnavailableError(f"Upstash answered HTTP {status}: {message}")
        if isinstance(body, dict) and "error" in body:
            raise UpstashCommandError(str(body["error"]))
        if status != 200 or body is None:
            raise SessionStoreError(f"Upstash answered HTTP {status}: {message}")
        return body


def _body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _result(body: Any) -> Any:
    if not isinstance(body, dict) or "result" not in body:
        raise SessionStoreError(f"Upstash sent a reply without a result: {str(body)[:200]}")
    return _decode(body["result"])


def _results(body: Any, expected: int) -> list[Any]:
    if not isinstance(body, list) or len(body) != expected:
        raise SessionStoreError(f"Upstash sent {str(body)[:200]} for a batch of {expected} commands")
    results = []
    for entry in body:
        if isinstance(entry, dict) and "error" in entry:
            raise UpstashCommandError(str(entry["error"]))
        results.append(_result(entry))
    return results


def _decode(value: Any) -> Any:
    """Undo ``Upstash-Encoding: base64``: every string but the status reply "OK" is base64."""
    if isinstance(value, str):
        if value == "OK":
            return value
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise SessionStoreError(f"Upstash sent a string that is not base64: {value[:40]!r}") from None
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


# -- the upstash_redis transport ---------------------------------------------------------------


class _SdkTransport:
    """Commands through an ``upstash_redis`` client, which serves one door only."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.is_async = _is_async_client(client)

    def __repr__(self) -> str:
        return f"{type(self.client).__module__}.{type(self.client).__name__}"

    def execute(self, command: Command) -> Any:
        self._door(async_door=False)
        with _sdk_errors():
            return _from_sdk(self.client.execute(command))

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        self._door(async_door=False)
        batch = self.client.pipeline()
        for command in commands:
            batch.execute(command)
        with _sdk_errors():
            return [_from_sdk(result) for result in batch.exec()]

    async def aexecute(self, command: Command) -> Any:
        self._door(async_door=True)
        with _sdk_errors():
            return _from_sdk(await self.client.execute(command))

    def close(self) -> None:
        """The client belongs to the caller, who closes it."""

    async def aclose(self) -> None:
        """The client belongs to the caller, who closes it."""

    def _door(self, *, async_door: bool) -> None:
        if async_door and not self.is_async:
            raise ConfigurationError(
                "this Upstash storage was given a sync upstash_redis.Redis client, so only the sync "
                "door (get_session/commit_session/destroy_session) works",
                solution="pass an upstash_redis.asyncio.Redis client, or url= and token= for both doors",
            )
        if not async_door and self.is_async:
            raise ConfigurationError(
                "this Upstash storage was given an upstash_redis.asyncio.Redis client, so only the "
                "async door (aget_session/acommit_session/adestroy_session) works",
                solution="pass an upstash_redis.Redis client, or url= and token= for both doors",
            )


def _is_async_client(client: Any) -> bool:
    try:
        from upstash_redis import Redis
        from upstash_redis.asyncio import Redis as AsyncRedis
    except ImportError:  # pragma: no cover - a look-alike client without the package
        return inspect.iscoroutinefunction(getattr(client, "execute", None))
    if isinstance(client, AsyncRedis):
        return True
    if isinstance(client, Redis):
        return False
    raise ConfigurationError(
        f"client= must be an upstash_redis.Redis or upstash_redis.asyncio.Redis, not {type(client).__name__}"
    )


def _from_sdk(value: Any) -> Any:
    # The SDK decodes replies to str; the store works on the bytes Redis holds.
    if isinstance(value, str):
        return value if value == "OK" else value.encode("utf-8")
    if isinstance(value, list):
        return [_from_sdk(item) for item in value]
    return value


class _sdk_errors:
    """Translate what the upstash_redis SDK raises into websession's errors."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if error is None or isinstance(error, SessionStoreError):
            return
        from upstash_redis.errors import UpstashError

        if isinstance(error, UpstashError):
            message = str(error)
            if message.lower() == "unauthorized":
                raise SessionStoreError(
                    f"Upstash refused the token: {message}",
                    solution="check the REST token (UPSTASH_REDIS_REST_TOKEN) for this database",
                ) from error
            raise UpstashCommandError(message) from error
        if isinstance(error, httpx.TimeoutException):
            raise StoreUnavailableError(f"Upstash did not answer in time ({type(error).__name__})") from error
        if isinstance(error, httpx.TransportError):
            raise StoreUnavailableError(f"cannot reach Upstash: {type(error).__name__}: {error}") from error
        if isinstance(error, UnicodeDecodeError):
            # The SDK decodes every string as UTF-8; a record that is not UTF-8 is corrupt.
            raise codec.CorruptRecordError(f"record is not UTF-8: {error}") from error
        if isinstance(error, ValueError):
            # A reply that is not JSON: a proxy or gateway error page.
            raise StoreUnavailableError(f"Upstash sent a reply that is not JSON: {error}") from error


# -- the store ---------------------------------------------------------------------------------


class UpstashStore(Store):
    """Records in Upstash Redis, one JSON string per session, changed by compare-and-set.

    ``transport`` is an :class:`UpstashRestClient` or an ``upstash_redis`` client.
    """

    kind = "upstash"
    atomic_take = True
    native_ttl = True
    user_index = True

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
            self.transport = _SdkTransport(transport)
        self.prefix = prefix
        #: The same scripts as the Redis store on a single server (websession.stores.redis_users).
        self._users = redis_users.UserIndex(
            self, prefix, decode=lambda id, reply: self._decode(id, _raw(reply)), encode=codec.dumps
        )

    def __repr__(self) -> str:
        return f"UpstashStore({self.transport!r}, prefix={self.prefix!r})"

    def key(self, id: str) -> str:
        """The Redis key of a session id: the prefix and its storage key (the id itself, or
        its keyed hash with ``storage_key_secret``)."""
        return self.prefix + self.storage_key(id)

    # -- the two doors ---------------------------------------------------------------------

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return run_steps(self._create(data, expires), self.transport.execute)

    def read(self, id: str, touch: datetime | None) -> Record | None:
        return run_steps(self._read(id, touch), self.transport.execute)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        return run_steps(self._update(id, changes, expires, seen), self.transport.execute)

    def delete(self, id: str) -> None:
        run_steps(self._delete(id), self.transport.execute)

    def take(self, id: str) -> Record | None:
        return run_steps(self._take(id), self.transport.execute)

    def close(self) -> None:
        self.transport.close()

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return await arun_steps(self._create(data, expires), self.transport.aexecute)

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        return await arun_steps(self._read(id, touch), self.transport.aexecute)

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        return await arun_steps(self._update(id, changes, expires, seen), self.transport.aexecute)

    async def adelete(self, id: str) -> None:
        await arun_steps(self._delete(id), self.transport.aexecute)

    async def atake(self, id: str) -> Record | None:
        return await arun_steps(self._take(id), self.transport.aexecute)

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- users and their devices: one script per operation, one request each ----------------

    def create_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        steps = self._users.create(data, expires, user, entry, generation)
        return run_steps(_over_rest(steps), self.transport.execute)

    def take_for_user(self, id: str, user: str) -> Taken:
        return run_steps(_over_rest(self._users.take(id, user)), self.transport.execute)

    def sessions_of(self, user: str) -> list[Device]:
        return run_steps(_over_rest(self._users.sessions(user)), self.transport.execute)

    def revoke(self, key: str, user: str) -> bool:
        return run_steps(_over_rest(self._users.revoke(key, user)), self.transport.execute)

    def revoke_user(self, user: str, keep: str | None) -> int:
        return run_steps(_over_rest(self._users.revoke_user(user, keep)), self.transport.execute)

    def generation(self, user: str, *, bump: bool = False) -> int:
        return run_steps(_over_rest(self._users.generation(user, bump=bump)), self.transport.execute)

    async def acreate_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        steps = self._users.create(data, expires, user, entry, generation)
        return await arun_steps(_over_rest(steps), self.transport.aexecute)

    async def atake_for_user(self, id: str, user: str) -> Taken:
        return await arun_steps(_over_rest(self._users.take(id, user)), self.transport.aexecute)

    async def asessions_of(self, user: str) -> list[Device]:
        return await arun_steps(_over_rest(self._users.sessions(user)), self.transport.aexecute)

    async def arevoke(self, key: str, user: str) -> bool:
        return await arun_steps(_over_rest(self._users.revoke(key, user)), self.transport.aexecute)

    async def arevoke_user(self, user: str, keep: str | None) -> int:
        return await arun_steps(_over_rest(self._users.revoke_user(user, keep)), self.transport.aexecute)

    async def ageneration(self, user: str, *, bump: bool = False) -> int:
        steps = self._users.generation(user, bump=bump)
        return await arun_steps(_over_rest(steps), self.transport.aexecute)

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
        found = list(self._fetch([self.storage_key(id)]))
        return found[0][1] if found else None

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        """``SET key value PX ms`` (``NX`` with ``replace=False``)."""
        return self.write_many([(id, Record(dict(data), expires))], replace=replace) == 1

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """``SET key value PX ms [NX]`` per record, sent through ``/pipeline`` in requests of at
        most ``WRITE_BATCH`` commands and about ``WRITE_BATCH_BYTES`` of values."""
        written = 0
        commands: list[Command] = []
        size = 0
        for id, record in records:
            if self.is_expired(record.expires):
                continue
            value = codec.dumps(record.data)
            command: Command = ["SET", self.key(id), value]
            if record.expires is not None:
                seconds = (record.expires - self.clock()).total_seconds()
                command += ["PX", max(1, math.ceil(seconds * 1000))]
            if not replace:
                command.append("NX")
            commands.append(command)
            size += len(value)
            if len(commands) >= WRITE_BATCH or size >= WRITE_BATCH_BYTES:
                written += self._send_writes(commands)
                commands, size = [], 0
        if commands:
            written += self._send_writes(commands)
        return written

    def _send_writes(self, commands: list[Command]) -> int:
        return sum(1 for reply in self.transport.pipeline(commands) if reply is True or reply == "OK")

    def _id_pages(self) -> Iterator[list[str]]:
        """The storage keys under the prefix (the ids, unless they are hashed), a SCAN page at
        a time."""
        match = _glob_escape(self.prefix) + "*"
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
            raw, pttl = replies[2 * index], replies[2 * index + 1]
            if raw is None:
                continue  # expired or deleted since SCAN saw it
            data = self._decode(id, raw)
            if data is not None:
                expires = None if pttl < 0 else now + timedelta(milliseconds=pttl)
                yield id, Record(data, expires, raw)

    # -- each operation, once, for both doors ----------------------------------------------

    def _create(self, data: Mapping[str, Any], expires: datetime | None) -> Steps[Command, str]:
        value = codec.dumps(data)
        ttl = self.seconds_until(expires)
        while True:
            id = self.new_id()
            command: Command = ["SET", self.key(id), value, "NX"]
            if ttl is not None:
                command += ["EX", ttl]
            reply = yield command
            if reply is True or reply == "OK":
                return id
            # nil: the key exists. 128 random bits make this all but impossible; try another id.

    def _read(self, id: str, touch: datetime | None) -> Steps[Command, Record | None]:
        key = self.key(id)
        ttl = self.seconds_until(touch)
        try:
            reply = yield ["GET", key] if ttl is None else ["GETEX", key, "EX", ttl]
        except (codec.CorruptRecordError, UpstashCommandError) as exc:
            if isinstance(exc, UpstashCommandError) and not exc.reply.startswith("WRONGTYPE"):
                raise
            # Not UTF-8, or a list or set under the session's key: an unreadable record.
            codec.log_corrupt(self.kind, id, exc)
            return None
        if reply is None:
            return None
        raw = _raw(reply)
        data = self._decode(id, raw)
        if data is None:
            return None
        return Record(data, touch if ttl is not None else None, raw)

    def _update(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Steps[Command, Record | None]:
        key = self.key(id)
        ttl = self.seconds_until(expires) or 0  # 0: the script writes without a TTL
        raw = seen.version
        if not isinstance(raw, bytes):
            reply = yield ["GET", key]
            if reply is None:
                return None
            raw = _raw(reply)
        for _ in range(MAX_ATTEMPTS):
            try:
                attempt = _attempt(changes, raw)
            except codec.CorruptRecordError as exc:
                codec.log_corrupt(self.kind, id, exc)
                return None
            args: Command = [1, key, attempt.expected, attempt.new_raw.decode("utf-8"), ttl]
            try:
                reply = yield ["EVALSHA", CAS_SHA1, *args]
            except UpstashCommandError as exc:
                if "WRONGTYPE" in exc.reply:  # replaced by a list or set since it was read
                    codec.log_corrupt(self.kind, id, exc)
                    return None
                if not exc.reply.startswith("NOSCRIPT"):
                    raise
                reply = yield ["EVAL", CAS_SCRIPT, *args]  # also caches the script for next time
            if reply is None:
                return None  # gone: deleted or expired, and it stays that way
            if reply == 1:
                return Record(attempt.data, expires, attempt.new_raw)
            raw = _raw(reply)  # changed meanwhile: apply the changes to the current record
        raise SessionStoreError(
            f"the session record changed under {MAX_ATTEMPTS} attempts in a row to update it",
            solution="too many concurrent requests write to one session",
        )

    def _delete(self, id: str) -> Steps[Command, None]:
        yield ["DEL", self.key(id)]

    def _take(self, id: str) -> Steps[Command, Record | None]:
        # GETDEL: one command, so a destroy lands wholly before or after it.
        try:
            reply = yield ["GETDEL", self.key(id)]
        except (codec.CorruptRecordError, UpstashCommandError) as exc:
            if isinstance(exc, UpstashCommandError) and not exc.reply.startswith("WRONGTYPE"):
                raise
            codec.log_corrupt(self.kind, id, exc)
            return None
        if reply is None:
            return None
        raw = _raw(reply)
        data = self._decode(id, raw)
        return None if data is None else Record(data, None, raw)

    def _decode(self, id: str, raw: bytes) -> dict[str, Any] | None:
        try:
            return codec.decode_record(raw)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None


def _over_rest(steps: redis_users.Steps[T]) -> Steps[Command, T]:
    """Run the Redis store's index steps as REST commands: a script by its SHA, sent whole
    after ``NOSCRIPT`` (which also caches it); bytes as the UTF-8 text they are."""
    try:
        op = next(steps)
    except StopIteration as done:  # answered without a command (a key no store writes)
        answer: T = done.value
        return answer
    while True:
        if isinstance(op, redis_users.Call):
            reply = yield [_argument(arg) for arg in op.args]
        elif isinstance(op, redis_users.Eval):
            args: Command = [len(op.keys), *op.keys, *map(_argument, op.args)]
            try:
                reply = yield ["EVALSHA", op.script.sha, *args]
            except UpstashCommandError as exc:
                if not exc.reply.startswith("NOSCRIPT"):
                    raise
                reply = yield ["EVAL", op.script.source, *args]
        else:  # pragma: no cover - batches are for Redis Cluster only
            raise TypeError(f"cannot send {type(op).__name__} over REST")
        try:
            op = steps.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result


def _argument(value: Any) -> str | int:
    if isinstance(value, bytes):
        return value.decode("utf-8")  # encoded JSON records and entries
    if isinstance(value, (str, int)):
        return value
    return str(value)


def _attempt(changes: Changes, raw: bytes) -> Attempt:
    if changes:
        return apply_to(changes, raw)
    # Nothing changed (only the lifetime): write back the very bytes read, re-encoding nothing.
    return Attempt(raw, digest(raw), codec.decode_record(raw))


def _raw(reply: Any) -> bytes:
    if isinstance(reply, bytes):
        return reply
    if isinstance(reply, str):
        return reply.encode("utf-8")
    raise SessionStoreError(f"Upstash sent {type(reply).__name__} where a string was expected")


def _text(reply: Any) -> str:
    if isinstance(reply, int):  # the SDK turns SCAN's cursor into an int
        return str(reply)
    return _raw(reply).decode("utf-8", "replace")


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def create_upstash_session_storage(
    *,
    cookie: CookieLike = None,
    url: str | None = None,
    token: str | None = None,
    client: Any = None,
    ttl: TtlOption = UNSET,
    prefix: str = "session:",
    timeout: float = DEFAULT_TIMEOUT,
    rolling: bool = True,
    save_uninitialized: bool = False,
    absolute_timeout: float | None = None,
    storage_key_secret: str | bytes | None = None,
    clock: Clock = utcnow,
    codec: CodecLike = None,
) -> SessionStorage:
    """Sessions in Upstash Redis over its REST API.

    Pass ``url`` and ``token`` (``UPSTASH_REDIS_REST_URL`` / ``UPSTASH_REDIS_REST_TOKEN``) to
    serve both doors, or ``client=`` an ``upstash_redis.Redis`` (sync door) or
    ``upstash_redis.asyncio.Redis`` (async door). ``ttl`` (seconds) is the record lifetime,
    whatever the cookie's; not given, the cookie's lifetime or 7 days; None keeps records until
    deleted when the cookie has no lifetime. ``timeout``
    (seconds) bounds each request made through ``url``/``token``.

    ``absolute_timeout`` (seconds) ends a session that long after its id was issued, however
    active; ``storage_key_secret`` keeps records under a keyed hash of the id, so a dump of the
    store holds no live ids (docs/security.md).

    Example::

        >>> from websession import create_cookie
        >>> storage = create_upstash_session_storage(
        ...     cookie=create_cookie("s", secrets=["k"]), url="https://x.upstash.io", token="t")
        >>> storage.get_session(None).is_new  # no cookie: no request at all
        True
    """
    if client is not None:
        if url is not None or token is not None:
            raise ConfigurationError("pass either client= or url= and token=, not both")
        if timeout != DEFAULT_TIMEOUT:
            raise ConfigurationError(
                "timeout= applies to url= and token=; a client= you pass keeps its own settings"
            )
        transport: Any = client
    else:
        if not url or not token:
            raise ConfigurationError(
                "the Upstash store needs url= and token=, or client=",
                solution="use UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN from the Upstash console",
            )
        transport = UpstashRestClient(url, token, timeout=timeout)
    default_ttl, explicit_ttl = given_ttl(ttl, DEFAULT_TTL)
    store = UpstashStore(
        transport, prefix=prefix, default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret
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
    """``upstash+https://eu1-example.upstash.io?token=AX...&prefix=app:&ttl=3600``.

    The token may also come from ``UPSTASH_REDIS_REST_TOKEN``. ``upstash+http://`` is for local
    servers that speak the REST protocol.
    """
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    token = options.pop("token", None) or os.environ.get("UPSTASH_REDIS_REST_TOKEN")
    prefix = options.pop("prefix", "session:")
    ttl = options.pop("ttl", None)
    timeout = float(options.pop("timeout", DEFAULT_TIMEOUT))
    reject_unknown(url.scheme, options)
    scheme = url.scheme.lower().removeprefix("upstash+")
    rest_url = urlunsplit((scheme, url.netloc, url.path, "", ""))
    return create_upstash_session_storage(
        cookie=cookie,
        url=rest_url,
        token=token,
        prefix=prefix,
        ttl=url_ttl(ttl),
        timeout=timeout,
        **shared,
    )


__all__ = [
    "UpstashCommandError",
    "UpstashRestClient",
    "UpstashStore",
    "create_upstash_session_storage",
    "open_url",
]
