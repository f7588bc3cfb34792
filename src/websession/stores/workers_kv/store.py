"""The Workers KV store: sessions as Remix's ``createWorkersKVSessionStorage`` keeps them.

Records follow Remix: the key is the bare id (plus an optional ``prefix``), the value is the
JSON of the flat session data, and the expiry is KV's own ``expiration`` in absolute epoch
seconds, with the exact one in the key's metadata (:mod:`~websession.stores.workers_kv.expiry`).
A Remix Worker and a Python service can share the namespace.

A read takes the value and KV's ``expiration`` response header in one request; only when that
expiration is close (so it may have been clamped) does it also read the metadata, and it never
returns a session whose exact expiry has passed. KV cannot change an expiration alone, so a
rolling read that is due to move the expiry writes the value back.

What KV guarantees: a value is kept until it expires (by itself) or is deleted, readable from
every location. What it does not: atomic changes (an update reads, applies the changes in
Python and writes the whole value back: last write wins), reads that see the latest write
everywhere (up to 60 s stale), values over 25 MiB, or more than one write per key per second
(429, :class:`~websession.errors.StoreUnavailableError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from ... import codec
from ...changes import Changes
from ...errors import ConfigurationError, RecordTooLargeError, StoreUnavailableError
from ..base import Record, Store, StoreArguments, touch_due

if TYPE_CHECKING:
    from typing_extensions import Unpack
from .expiry import CLAMP_WINDOW, exact_metadata, kv_expiration, listed_expiry, metadata_expiry, moment
from .rest import Call, KVClient, namespace_url

#: KV's limits: value size and key length (UTF-8 bytes).
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_KEY_BYTES = 512
#: A bulk write's pairs and (about) bytes per request; Cloudflare allows 10,000 pairs, 100 MB.
BULK_PAIRS = 1000
BULK_BYTES = 8 * 1024 * 1024


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
        touch_interval: float = 60.0,
        **shared: Unpack[StoreArguments],
    ) -> None:
        super().__init__(**shared)
        base_url = namespace_url(account_id, namespace_id, base_url)
        if len((prefix + "0" * 64).encode("utf-8")) > MAX_KEY_BYTES:
            raise ConfigurationError(
                f"prefix {prefix[:20]!r}... leaves no room for an id in KV's 512-byte keys"
            )
        self.rest = KVClient(
            base_url, api_token=api_token, client=client, async_client=async_client, timeout=timeout
        )
        self.base_url = base_url
        self.prefix = prefix
        self.timeout = timeout
        self.touch_interval = touch_interval

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
        self.rest.send(self._put(self.storage_key(id), codec.encode(data), expires))
        return id

    def read(self, id: str, touch: datetime | None) -> Record | None:
        found = self._get(self.storage_key(id))
        if found is None:
            return None
        raw, record = found
        if touch is not None and touch_due(record.expires, touch, self.clock(), self.touch_interval):
            # KV cannot change an expiration alone: write the value back with the new one.
            self.rest.send(self._put(self.storage_key(id), raw, touch))
            record = Record(record.data, touch)
        return record

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        found = self._get(self.storage_key(id))
        if found is None:
            return None
        data = changes.apply(found[1].data)
        self.rest.send(self._put(self.storage_key(id), codec.encode(data), expires))
        return Record(data, expires)

    def delete(self, id: str) -> None:
        self.rest.send(self.rest.call("DELETE", self.url_for(id)), missing_ok=True)

    def close(self) -> None:
        self.rest.close()

    # -- the async door ------------------------------------------------------------------------

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        id = self.new_id()
        await self.rest.asend(self._put(self.storage_key(id), codec.encode(data), expires))
        return id

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        found = await self._aget(self.storage_key(id))
        if found is None:
            return None
        raw, record = found
        if touch is not None and touch_due(record.expires, touch, self.clock(), self.touch_interval):
            await self.rest.asend(self._put(self.storage_key(id), raw, touch))
            record = Record(record.data, touch)
        return record

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        found = await self._aget(self.storage_key(id))
        if found is None:
            return None
        data = changes.apply(found[1].data)
        await self.rest.asend(self._put(self.storage_key(id), codec.encode(data), expires))
        return Record(data, expires)

    async def adelete(self, id: str) -> None:
        await self.rest.asend(self.rest.call("DELETE", self.url_for(id)), missing_ok=True)

    async def aclose(self) -> None:
        await self.rest.aclose()

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
        self.rest.send(self._put(key, codec.encode(data), expires))
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
            response = self.rest.send(self.rest.call("GET", f"{self.base_url}/keys", params=params))
            assert response is not None
            page = response.json()
            for entry in page.get("result") or []:
                key = str(entry.get("name", ""))[len(self.prefix) :]
                if self.is_storage_key(key) and not self.is_expired(listed_expiry(entry)):
                    yield key, entry
            cursor = (page.get("result_info") or {}).get("cursor") or ""
            if not cursor:
                return

    def _pair(self, key: str, raw: bytes, expires: datetime | None) -> dict[str, Any]:
        if len(raw) > MAX_VALUE_BYTES:
            raise _too_large(raw)
        pair: dict[str, Any] = {"key": self.prefix + key, "value": raw.decode("utf-8")}
        if expires is not None:
            pair["expiration"] = kv_expiration(expires, self.clock())
            pair["metadata"] = exact_metadata(expires)
        return pair

    def _bulk(self, pairs: list[dict[str, Any]]) -> int:
        response = self.rest.send(self.rest.call("PUT", f"{self.base_url}/bulk", json=pairs))
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
    # metadata too. Each door runs the requests; _parse_value / _finish decide.

    def _get(self, key: str) -> tuple[bytes, Record] | None:
        rest = self.rest
        parsed = self._parse_value(key, rest.send(rest.call("GET", self._value_url(key)), missing_ok=True))
        if parsed is None or not self._needs_metadata(parsed[2]):
            return self._finish(parsed, None)
        return self._finish(parsed, rest.send(rest.call("GET", self._metadata_url(key)), missing_ok=True))

    async def _aget(self, key: str) -> tuple[bytes, Record] | None:
        rest = self.rest
        response = await rest.asend(rest.call("GET", self._value_url(key)), missing_ok=True)
        parsed = self._parse_value(key, response)
        if parsed is None or not self._needs_metadata(parsed[2]):
            return self._finish(parsed, None)
        return self._finish(
            parsed, await rest.asend(rest.call("GET", self._metadata_url(key)), missing_ok=True)
        )

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
        return expiration is not None and expiration - self.clock().timestamp() <= CLAMP_WINDOW

    def _finish(
        self, parsed: tuple[bytes, dict[str, Any], float | None] | None, metadata: httpx.Response | None
    ) -> tuple[bytes, Record] | None:
        if parsed is None:
            return None
        raw, data, expiration = parsed
        expires = None if expiration is None else moment(expiration)
        if metadata is not None:
            exact = metadata_expiry(metadata)
            if exact is not None:
                expires = exact
        if self.is_expired(expires):
            return None
        return raw, Record(data, expires)

    def _put(self, key: str, raw: bytes, expires: datetime | None) -> Call:
        if len(raw) > MAX_VALUE_BYTES:
            raise _too_large(raw)
        params: dict[str, str] = {}
        files: dict[str, tuple[None, bytes | str, str]] = {"value": (None, raw, "application/json")}
        if expires is not None:
            params["expiration"] = str(kv_expiration(expires, self.clock()))
            files["metadata"] = (None, codec.dumps(exact_metadata(expires)), "application/json")
        return self.rest.call("PUT", self._value_url(key), params=params, files=files)


def _too_large(raw: bytes) -> RecordTooLargeError:
    return RecordTooLargeError(
        f"the session is {len(raw)} bytes; Workers KV values are at most {MAX_VALUE_BYTES}"
    )


__all__ = ["BULK_BYTES", "BULK_PAIRS", "MAX_KEY_BYTES", "MAX_VALUE_BYTES", "WorkersKVStore"]
