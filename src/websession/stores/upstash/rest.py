"""Upstash's REST protocol spoken directly through httpx: :class:`UpstashRestClient`.

A command is a JSON array (``["SET", "key", "value", "EX", 60]``) POSTed to the database URL
with a Bearer token; the reply is ``{"result": ...}`` or ``{"error": "..."}``. Replies are
asked for with ``Upstash-Encoding: base64``, so values that are not UTF-8 survive the trip.

What Upstash guarantees:

- One request to the base URL runs one command, atomically, as Redis runs it; a Lua script
  sent with ``EVAL`` or ``EVALSHA`` runs whole, with no other command in between (the store's
  compare-and-set and user index rely on this). ``EVALSHA`` of a script the server does not
  hold yet fails with ``NOSCRIPT``; ``EVAL`` then sends it whole and caches it.
- ``/multi-exec`` runs its commands as one MULTI/EXEC transaction.
- ``/pipeline`` runs its commands in order in one request, each with its own result or error.
- Each reply carries an ``upstash-sync-token``; a request sending back the latest one reads
  every write this client made before it, even from a read replica of a global database.

What it does not:

- A ``/pipeline`` is not atomic: other clients' commands may run between its commands.
- Read-your-writes holds per client only: another process may read from a replica that has
  not caught up yet (global replication is asynchronous), so it may briefly see an older
  record or none.
- Requests are limited in size (1 MB on the free plan), which bounds a record and a batch.
- A timed-out request may still have run.

Example::

    >>> rest = UpstashRestClient("https://eu1-example.upstash.io", "AX...")
    >>> rest, rest.read_your_writes
    (UpstashRestClient('https://eu1-example.upstash.io'), True)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...errors import ConfigurationError, SessionStoreError, StoreUnavailableError
from ..base import translate_errors
from .errors import REFUSED_SOLUTION, UpstashCommandError, transport_rules

#: Every pooled connection may stay open (httpx keeps 20 by default). httpcore's sync pool can
#: close a "surplus" keep-alive connection that another thread was just handed, failing that
#: request with EBADF or a read timeout (encode/httpcore#1110); seen with 50 threads in the
#: security suite, never with this setting.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)

#: One Redis command as the REST API takes it: the name, then its arguments.
Command = list[str | int]

DEFAULT_TIMEOUT = 5.0


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
        self, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT, read_your_writes: bool = True
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
        self._errors = translate_errors(transport_rules(f"within {timeout:g}s"), f"Upstash at {self.url}")

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
        with self._errors:
            return self._sync_client().post(self.url + path, content=_body(body), headers=self._headers())

    async def _apost(self, path: str, body: Any) -> httpx.Response:
        with self._errors:
            return await self._async_client().post(
                self.url + path, content=_body(body), headers=self._headers()
            )

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
                f"Upstash refused the token (HTTP {status}: {message})", solution=REFUSED_SOLUTION
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


__all__ = ["DEFAULT_TIMEOUT", "POOL_LIMITS", "Command", "UpstashRestClient"]
