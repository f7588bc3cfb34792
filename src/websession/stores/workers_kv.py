"""The Workers KV store: Cloudflare's KV REST API through httpx, sync and async.

Records follow Remix's ``createWorkersKVSessionStorage``: the key is the bare id (plus an
optional ``prefix``), the value is the JSON of the flat session data, and the expiry is KV's
own ``expiration`` in absolute epoch seconds. A Remix Worker and a Python service can share
the namespace.

**Not atomic.** KV is eventually consistent and has no compare-and-set, so this store cannot
apply change sets atomically: an update reads the current value, applies the request's changes
in Python and writes the whole value back. Two requests that commit to one session at the same
moment can lose one of their changes, and a request that commits just after another destroyed
the session can write it back. ``atomic_changes`` is False, and the conformance suite's
concurrency tests are declared, not run, for this store. Use Redis, PostgreSQL or DynamoDB
when concurrent requests to one session must merge.

**Expiry.** KV refuses expirations less than 60 seconds ahead, so the ``expiration`` sent is
clamped to at least 65 seconds ahead (5 seconds of slack for clock skew), and the exact expiry
is kept in the key's KV metadata as ``{"expires": <epoch milliseconds>}``. A read takes the
value and KV's ``expiration`` response header in one request; only when that expiration is
less than two minutes away (so it may have been clamped) does it also read the metadata, and
it never returns a session whose exact expiry has passed. Values written by Remix (no
metadata) expire at KV's ``expiration``.

Example (needs Cloudflare or a local KV server, so not run as a doctest)::

    from websession import create_cookie, create_workers_kv_session_storage

    storage = create_workers_kv_session_storage(
        cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
        account_id="023e105f4ecef8ad9ca31a8372d0c353",
        namespace_id="0f2ac74b498b48028cb68387c421e279",
        api_token="...",
    )
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import SplitResult, quote

import httpx

from .. import codec
from ..changes import Changes
from ..codec import CodecLike
from ..cookie import CookieLike, as_cookie
from ..errors import ConfigurationError, RecordTooLargeError, SessionStoreError, StoreUnavailableError
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options
from .base import Clock, Record, Store, touch_due, utcnow

#: Every pooled connection may stay open (httpx keeps 20 by default). httpcore's sync pool can
#: close a "surplus" keep-alive connection that another thread was just handed, failing that
#: request with EBADF or a read timeout (encode/httpcore#1110); seen with 50 threads in the
#: security suite, never with this setting.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)

API_BASE = "https://api.cloudflare.com/client/v4/accounts/{account_id}/storage/kv/namespaces/{namespace_id}"

#: KV's limits: value size, key length (UTF-8 bytes), and how far ahead an expiration must be.
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_KEY_BYTES = 512
MIN_EXPIRATION_AHEAD = 60
#: Added to KV's minimum so a request that takes a while, or a clock a little behind
#: Cloudflare's, is not refused.
EXPIRATION_SLACK = 5
#: A KV expiration closer than this may have been clamped: read the exact one from metadata.
_CLAMP_WINDOW = 120
#: A bulk write's pairs and (about) bytes per request; Cloudflare allows 10,000 pairs, 100 MB.
BULK_PAIRS = 1000
BULK_BYTES = 8 * 1024 * 1024


def kv_expiration(expires: datetime, now: datetime) -> int:
    """The ``expiration`` to send KV for an exact expiry: epoch seconds, rounded up, and at
    least 65 seconds after ``now`` (KV refuses less than 60).

    Example::

        >>> from datetime import timedelta
        >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> kv_expiration(now + timedelta(days=1), now) - int(now.timestamp())
        86400
        >>> kv_expiration(now + timedelta(seconds=2), now) - int(now.timestamp())
        65
    """
    floor = math.floor(now.timestamp()) + MIN_EXPIRATION_AHEAD + EXPIRATION_SLACK
    return max(math.ceil(expires.timestamp()), floor)


def _moment(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc)


class WorkersKVStore(Store):
    """Records in a Workers KV namespace, over Cloudflare's REST API.

    It cannot apply change sets atomically (KV has no compare-and-set; see the module's
    docs), so ``atomic_changes`` is False. Pass ``client=`` / ``async_client=`` (httpx) to
    share connection pools; the store adds the ``Authorization`` header itself when
    ``api_token`` is given, and never closes clients it did not open.

    Example::

        >>> store = WorkersKVStore(account_id="acc", namespace_id="ns", api_token="t", prefix="s:")
        >>> store.url_for("0" * 32)
        'https://api.cloudflare.com/client/v4/accounts/acc/storage/kv/namespaces/ns/values/s%3A00000000000000000000000000000000'
    """

    kind = "workers-kv"
    atomic_changes = False
    native_ttl = True

    def __init__(
        self,
        *,
        account_id: str | None = None,
        namespace_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
        prefix: str = "",
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        default_ttl: float | None = None,
        touch_interval: float = 60.0,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret)
        if base_url is None:
            if not account_id or not namespace_id:
                raise ConfigurationError(
                    "the Workers KV store needs account_id= and namespace_id= (or base_url=)"
                )
            base_url = API_BASE.format(
                account_id=quote(account_id, safe=""), namespace_id=quote(namespace_id, safe="")
            )
        if len((prefix + "0" * 64).encode("utf-8")) > MAX_KEY_BYTES:
            raise ConfigurationError(
                f"prefix {prefix[:20]!r}... leaves no room for an id in KV's 512-byte keys"
            )
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix
        self.timeout = timeout
        self.touch_interval = touch_interval
        self._headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        self._client = client
        self._async_client = async_client
        self._own_client = False
        self._own_async_client = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WorkersKVStore({self.base_url!r}, prefix={self.prefix!r})"

    def url_for(self, id: str) -> str:
        """The REST URL of the value for ``id``."""
        return self._value_url(self.storage_key(id))

    def _value_url(self, key: str) -> str:
        return f"{self.base_url}/values/{quote(self.prefix + key, safe='')}"

    def _metadata_url(self, key: str) -> str:
        return f"{self.base_url}/metadata/{quote(self.prefix + key, safe='')}"

    # -- the sync door -------------------------------------------------------------------------

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        id = self.new_id()
        self._send(self._put(self.storage_key(id), codec.encode(data), expires))
        return id

    def read(self, id: str, touch: datetime | None) -> Record | None:
        found = self._get(self.storage_key(id))
        if found is None:
            return None
        raw, record = found
        if touch is not None and touch_due(record.expires, touch, self.clock(), self.touch_interval):
            # KV cannot change an expiration alone: write the value back with the new one.
            self._send(self._put(self.storage_key(id), raw, touch))
            record = Record(record.data, touch)
        return record

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        found = self._get(self.storage_key(id))
        if found is None:
            return None
        data = changes.apply(found[1].data)
        self._send(self._put(self.storage_key(id), codec.encode(data), expires))
        return Record(data, expires)

    def delete(self, id: str) -> None:
        self._send(self._request("DELETE", self.url_for(id)), missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._own_client and self._client is not None:
                self._client.close()
                self._client, self._own_client = None, False

    # -- the async door ------------------------------------------------------------------------

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        id = self.new_id()
        await self._asend(self._put(self.storage_key(id), codec.encode(data), expires))
        return id

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        found = await self._aget(self.storage_key(id))
        if found is None:
            return None
        raw, record = found
        if touch is not None and touch_due(record.expires, touch, self.clock(), self.touch_interval):
            await self._asend(self._put(self.storage_key(id), raw, touch))
            record = Record(record.data, touch)
        return record

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        found = await self._aget(self.storage_key(id))
        if found is None:
            return None
        data = changes.apply(found[1].data)
        await self._asend(self._put(self.storage_key(id), codec.encode(data), expires))
        return Record(data, expires)

    async def adelete(self, id: str) -> None:
        await self._asend(self._request("DELETE", self.url_for(id)), missing_ok=True)

    async def aclose(self) -> None:
        client, self._async_client = (
            (self._async_client, None) if self._own_async_client else (None, self._async_client)
        )
        self._own_async_client = False
        if client is not None:
            await client.aclose()
        self.close()

    # -- maintenance ---------------------------------------------------------------------------

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Stream live records: list keys under the prefix a page at a time (1000 per request,
        with a cursor), then read each one that the listing does not already show expired."""
        for key, _ in self._listed():
            found = self._get(key)
            if found is not None:
                yield key, found[1]

    def count(self) -> int:
        """Live keys under the prefix, from the key listing alone (values are not read): each
        listed key carries its expiration and metadata."""
        return sum(1 for _ in self._listed())

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        """A PUT with the expiration (and the exact expiry in metadata).

        KV has no conditional write: ``replace=False`` reads first and writes only when no live
        value is there, so a session created between the two requests is overwritten.
        """
        if self.is_expired(expires):
            return False
        key = self.storage_key(id)
        if not replace and self._get(key) is not None:
            return False
        self._send(self._put(key, codec.encode(data), expires))
        return True

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """Write through KV's bulk endpoint (``PUT .../bulk``), up to ``BULK_PAIRS`` pairs or
        about ``BULK_BYTES`` per request: Cloudflare's API allows some 1200 requests in five
        minutes, so a PUT per session would take hours for a large migration. With
        ``replace=False`` each id is read first (not atomic, as in :meth:`write`)."""
        written = 0
        pairs: list[dict[str, Any]] = []
        size = 0
        for id, record in records:
            key = self.storage_key(id)
            if self.is_expired(record.expires) or (not replace and self._get(key) is not None):
                continue
            pair = self._pair(key, codec.encode(record.data), record.expires)
            pairs.append(pair)
            size += len(pair["value"])
            if len(pairs) >= BULK_PAIRS or size >= BULK_BYTES:
                written += self._bulk(pairs)
                pairs, size = [], 0
        if pairs:
            written += self._bulk(pairs)
        return written

    def _listed(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(storage key, listing entry)`` for keys under the prefix that the listing shows
        alive (the storage key is the id unless ids are hashed)."""
        cursor = ""
        while True:
            params = {"prefix": self.prefix, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            response = self._send(self._request("GET", f"{self.base_url}/keys", params=params))
            assert response is not None
            page = response.json()
            for entry in page.get("result") or []:
                key = str(entry.get("name", ""))[len(self.prefix) :]
                if self.is_storage_key(key) and not self.is_expired(_listed_expiry(entry)):
                    yield key, entry
            cursor = (page.get("result_info") or {}).get("cursor") or ""
            if not cursor:
                return

    def _pair(self, key: str, raw: bytes, expires: datetime | None) -> dict[str, Any]:
        if len(raw) > MAX_VALUE_BYTES:
            raise RecordTooLargeError(
                f"the session is {len(raw)} bytes; Workers KV values are at most {MAX_VALUE_BYTES}"
            )
        pair: dict[str, Any] = {"key": self.prefix + key, "value": raw.decode("utf-8")}
        if expires is not None:
            pair["expiration"] = kv_expiration(expires, self.clock())
            pair["metadata"] = {"expires": math.ceil(expires.timestamp() * 1000)}
        return pair

    def _bulk(self, pairs: list[dict[str, Any]]) -> int:
        response = self._send(self._request("PUT", f"{self.base_url}/bulk", json=pairs))
        assert response is not None
        try:
            result = response.json().get("result") or {}
        except ValueError:
            result = {}
        failed = result.get("unsuccessful_keys") if isinstance(result, dict) else None
        if failed:
            raise StoreUnavailableError(
                f"Workers KV did not write {len(failed)} of {len(pairs)} keys in a bulk write",
                solution="run the command again: writing a session twice is harmless",
            )
        return len(pairs)

    # -- the reading logic, shared by both doors -----------------------------------------------
    #
    # A read is a small state machine: GET the value; if KV's expiration is close, GET the
    # metadata too. Each door runs the requests; _parse_value / _exact_expiry decide.

    def _get(self, key: str) -> tuple[bytes, Record] | None:
        response = self._send(self._request("GET", self._value_url(key)), missing_ok=True)
        parsed = self._parse_value(key, response)
        if parsed is None:
            return None
        raw, data, expiration = parsed
        metadata = None
        if self._needs_metadata(expiration):
            metadata = self._send(self._request("GET", self._metadata_url(key)), missing_ok=True)
        return self._finish(raw, data, expiration, metadata)

    async def _aget(self, key: str) -> tuple[bytes, Record] | None:
        response = await self._asend(self._request("GET", self._value_url(key)), missing_ok=True)
        parsed = self._parse_value(key, response)
        if parsed is None:
            return None
        raw, data, expiration = parsed
        metadata = None
        if self._needs_metadata(expiration):
            metadata = await self._asend(self._request("GET", self._metadata_url(key)), missing_ok=True)
        return self._finish(raw, data, expiration, metadata)

    def _parse_value(
        self, id: str, response: httpx.Response | None
    ) -> tuple[bytes, dict[str, Any], float | None] | None:
        if response is None:
            return None
        try:
            data = codec.decode_record(response.content)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None
        header = response.headers.get("expiration")
        try:
            expiration = float(header) if header else None
        except ValueError:
            expiration = None
        return response.content, data, expiration

    def _needs_metadata(self, expiration: float | None) -> bool:
        return expiration is not None and expiration - self.clock().timestamp() <= _CLAMP_WINDOW

    def _finish(
        self, raw: bytes, data: dict[str, Any], expiration: float | None, metadata: httpx.Response | None
    ) -> tuple[bytes, Record] | None:
        expires = None if expiration is None else _moment(expiration)
        if metadata is not None:
            exact = _metadata_expiry(metadata)
            if exact is not None:
                expires = exact
        if self.is_expired(expires):
            return None
        return raw, Record(data, expires)

    # -- requests ------------------------------------------------------------------------------

    def _put(self, key: str, raw: bytes, expires: datetime | None) -> _Call:
        if len(raw) > MAX_VALUE_BYTES:
            raise RecordTooLargeError(
                f"the session is {len(raw)} bytes; Workers KV values are at most {MAX_VALUE_BYTES}"
            )
        params: dict[str, str] = {}
        files: dict[str, tuple[None, bytes | str, str]] = {"value": (None, raw, "application/json")}
        if expires is not None:
            params["expiration"] = str(kv_expiration(expires, self.clock()))
            exact = {"expires": math.ceil(expires.timestamp() * 1000)}
            files["metadata"] = (None, codec.dumps(exact), "application/json")
        return self._request("PUT", self._value_url(key), params=params, files=files)

    def _request(self, method: str, url: str, **kwargs: Any) -> _Call:
        return _Call(method, url, {"headers": self._headers, **kwargs})

    def _send(self, call: _Call, *, missing_ok: bool = False) -> httpx.Response | None:
        try:
            response = self._sync_client().request(call.method, call.url, **call.options)
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"Workers KV at {self.base_url}: {exc!r}") from exc
        return self._check(response, missing_ok)

    async def _asend(self, call: _Call, *, missing_ok: bool = False) -> httpx.Response | None:
        try:
            response = await self._async_client_open().request(call.method, call.url, **call.options)
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"Workers KV at {self.base_url}: {exc!r}") from exc
        return self._check(response, missing_ok)

    def _check(self, response: httpx.Response, missing_ok: bool) -> httpx.Response | None:
        status = response.status_code
        if status < 300:
            return response
        if status == 404 and missing_ok and _error_code(response) in (10009, None):
            return None
        message = f"Workers KV answered {status} to {response.request.method}: {_error_message(response)}"
        if status == 429 or status >= 500:
            raise StoreUnavailableError(message)
        if status == 413:
            raise RecordTooLargeError(message)
        if status in (401, 403):
            raise SessionStoreError(
                message, solution="check api_token: it needs Workers KV Storage edit rights"
            )
        raise SessionStoreError(message)

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=self.timeout, limits=POOL_LIMITS)
                    self._own_client = True
        return self._client

    def _async_client_open(self) -> httpx.AsyncClient:
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(timeout=self.timeout)
            self._own_async_client = True
        return self._async_client


class _Call(NamedTuple):
    """One REST request, prepared once and sent by either door."""

    method: str
    url: str
    options: dict[str, Any]


def _listed_expiry(entry: Mapping[str, Any]) -> datetime | None:
    """A listed key's expiry: the exact one in its metadata, else KV's ``expiration``."""
    metadata = entry.get("metadata")
    exact = metadata.get("expires") if isinstance(metadata, dict) else None
    try:
        if isinstance(exact, (int, float)):
            return _moment(exact / 1000)
        expiration = entry.get("expiration")
        return _moment(float(expiration)) if isinstance(expiration, (int, float)) else None
    except (OverflowError, OSError, ValueError):
        return None


def _metadata_expiry(response: httpx.Response) -> datetime | None:
    try:
        result = response.json().get("result")
        expires = result.get("expires") if isinstance(result, dict) else None
        return None if not isinstance(expires, (int, float)) else _moment(expires / 1000)
    except (ValueError, AttributeError, OverflowError, OSError):
        return None


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        errors = response.json().get("errors") or []
        return errors[0] if errors and isinstance(errors[0], dict) else {}
    except (ValueError, AttributeError):
        return {}


def _error_code(response: httpx.Response) -> int | None:
    code = _error_body(response).get("code")
    return code if isinstance(code, int) else None


def _error_message(response: httpx.Response) -> str:
    body = _error_body(response)
    if body:
        return f"{body.get('message')} (code {body.get('code')})"
    return response.text[:200]


__all__ = [
    "API_BASE",
    "MAX_VALUE_BYTES",
    "WorkersKVStore",
    "create_workers_kv_session_storage",
    "kv_expiration",
]


def create_workers_kv_session_storage(
    *,
    cookie: CookieLike = None,
    account_id: str | None = None,
    namespace_id: str | None = None,
    api_token: str | None = None,
    base_url: str | None = None,
    prefix: str = "",
    client: httpx.Client | None = None,
    async_client: httpx.AsyncClient | None = None,
    timeout: float = 10.0,
    default_ttl: float | None = None,
    touch_interval: float = 60.0,
    rolling: bool = True,
    save_uninitialized: bool = False,
    absolute_timeout: float | None = None,
    storage_key_secret: str | bytes | None = None,
    clock: Clock = utcnow,
    codec: CodecLike = None,
) -> SessionStorage:
    """Sessions in a Cloudflare Workers KV namespace, as Remix's ``createWorkersKVSessionStorage``.

    KV has no compare-and-set, so concurrent commits to one session are **not** merged
    atomically (last write wins; see the module docs). ``base_url`` replaces
    ``https://api.cloudflare.com/client/v4/accounts/{account_id}/storage/kv/namespaces/{namespace_id}``.

    ``absolute_timeout`` (seconds) ends a session that long after its id was issued, however
    active; ``storage_key_secret`` keeps records under a keyed hash of the id, so a dump of the
    store holds no live ids (docs/security.md).

    Example (needs Cloudflare or a local KV server)::

        from websession import create_cookie, create_workers_kv_session_storage

        storage = create_workers_kv_session_storage(
            cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
            account_id="...", namespace_id="...", api_token="...", prefix="session:",
        )
        session = storage.get_session(None)
        session["user"] = 42
        header = storage.commit_session(session)   # PUT .../values/session:<id>
    """
    store = WorkersKVStore(
        account_id=account_id,
        namespace_id=namespace_id,
        api_token=api_token,
        base_url=base_url,
        prefix=prefix,
        client=client,
        async_client=async_client,
        timeout=timeout,
        default_ttl=default_ttl,
        touch_interval=touch_interval,
        clock=clock,
        storage_key_secret=storage_key_secret,
    )
    store.explicit_ttl = default_ttl is not None  # an explicit lifetime wins over the cookie's
    return SessionStorage(
        cookie=as_cookie(cookie),
        store=store,
        rolling=rolling,
        save_uninitialized=save_uninitialized,
        absolute_timeout=absolute_timeout,
        codec=codec,
    )


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``workers-kv://ACCOUNT_ID/NAMESPACE_ID?prefix=session:``.

    The API token comes from the ``api_token`` option or the ``CLOUDFLARE_API_TOKEN``
    environment variable (keep it out of URLs that end up in logs). ``base_url`` points the
    store at another server speaking the same API.
    """
    import os

    account_id = url.netloc
    namespace_id = url.path.strip("/")
    if not account_id or not namespace_id:
        raise ConfigurationError("a workers-kv:// URL is workers-kv://ACCOUNT_ID/NAMESPACE_ID")
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    lifetime = options.pop("ttl", None)
    api_token = options.pop("api_token", None) or os.environ.get("CLOUDFLARE_API_TOKEN")
    prefix = options.pop("prefix", "")
    base_url = options.pop("base_url", None)
    timeout = float(options.pop("timeout", 10.0))
    touch_interval = float(options.pop("touch_interval", 60.0))
    reject_unknown("workers-kv", options)
    return create_workers_kv_session_storage(
        cookie=cookie,
        account_id=account_id,
        namespace_id=namespace_id,
        api_token=api_token,
        base_url=base_url,
        prefix=prefix,
        timeout=timeout,
        default_ttl=None if lifetime is None else float(lifetime),
        touch_interval=touch_interval,
        **shared,
    )
