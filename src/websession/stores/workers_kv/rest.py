"""Cloudflare's Workers KV REST API, for both doors: one httpx client each, opened on first use,
and every failure turned into websession's errors.

A request is prepared once as a :class:`Call` and sent by either door; :func:`checked` reads
the answer the same way for both. Cloudflare's answers map as: 2xx the response; 404 on a read
or delete of a missing key None (when asked); 429 and 5xx (rate limits, including KV's one
write per key per second) and transport failures :class:`~websession.errors.StoreUnavailableError`;
413 :class:`~websession.errors.RecordTooLargeError`; anything else
:class:`~websession.errors.SessionStoreError`.

What the API guarantees here: a 2xx answer to a write means KV has the whole value. What it
does not: show that write everywhere at once (other locations may read the old value for up
to 60 seconds), or accept more than one write per key per second. Nothing here retries: a
refused or failed request fails the operation. ``timeout`` (10 s) bounds each phase of a
request (connect, send, each read), not the whole, on the clients this module opens; clients
passed in (``client=``, ``async_client=``) keep their own timeouts and are never closed.

Example::

    >>> rest = KVClient(namespace_url("acc", "ns", None), api_token="t")
    >>> rest.call("GET", rest.base_url + "/keys").url
    'https://api.cloudflare.com/client/v4/accounts/acc/storage/kv/namespaces/ns/keys'
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from ...errors import ConfigurationError, RecordTooLargeError, SessionStoreError, StoreUnavailableError
from ..base import ErrorRules, translate_errors

#: Every pooled connection may stay open (httpx keeps 20 by default). httpcore's sync pool can
#: close a "surplus" keep-alive connection that another thread was just handed, failing that
#: request with EBADF or a read timeout (encode/httpcore#1110); seen with 50 threads in the
#: security suite, never with this setting.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)

API_BASE = "https://api.cloudflare.com/client/v4/accounts/{account_id}/storage/kv/namespaces/{namespace_id}"


def namespace_url(account_id: str | None, namespace_id: str | None, base_url: str | None) -> str:
    """The REST URL of a namespace: ``base_url`` when given, else Cloudflare's for the ids.

    Example::

        >>> namespace_url(None, None, "http://127.0.0.1:8787/kv/")
        'http://127.0.0.1:8787/kv'
    """
    if base_url is None:
        if not account_id or not namespace_id:
            raise ConfigurationError(
                "the Workers KV store needs account_id= and namespace_id= (or base_url=)"
            )
        base_url = API_BASE.format(
            account_id=quote(account_id, safe=""), namespace_id=quote(namespace_id, safe="")
        )
    return base_url.rstrip("/")


class Call(NamedTuple):
    """One REST request, prepared once and sent by either door."""

    method: str
    url: str
    options: dict[str, Any]


def _unreachable(error: BaseException, where: str) -> StoreUnavailableError:
    return StoreUnavailableError(f"{where}: {error!r}")


TRANSPORT_ERRORS: ErrorRules = ((httpx.TransportError, _unreachable),)


class KVClient:
    """The REST API of one namespace. Pass ``client=`` / ``async_client=`` (httpx) to share
    connection pools; the ``Authorization`` header is added to each request when ``api_token``
    is given, and clients it did not open are never closed."""

    def __init__(
        self,
        base_url: str,
        *,
        api_token: str | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        self._client = client
        self._async_client = async_client
        self._own_client = False
        self._own_async_client = False
        self._lock = threading.Lock()
        self._errors = translate_errors(TRANSPORT_ERRORS, f"Workers KV at {base_url}")

    def call(self, method: str, url: str, **kwargs: Any) -> Call:
        """A request with this namespace's headers; ``kwargs`` go to httpx's ``request``."""
        return Call(method, url, {"headers": self._headers, **kwargs})

    def send(self, call: Call, *, missing_ok: bool = False) -> httpx.Response | None:
        with self._errors:
            response = self._sync_client().request(call.method, call.url, **call.options)
        return checked(response, missing_ok)

    async def asend(self, call: Call, *, missing_ok: bool = False) -> httpx.Response | None:
        with self._errors:
            response = await self._async_client_open().request(call.method, call.url, **call.options)
        return checked(response, missing_ok)

    def close(self) -> None:
        with self._lock:
            if self._own_client and self._client is not None:
                self._client.close()
                self._client, self._own_client = None, False

    async def aclose(self) -> None:
        client, self._async_client = (
            (self._async_client, None) if self._own_async_client else (None, self._async_client)
        )
        self._own_async_client = False
        if client is not None:
            await client.aclose()
        self.close()

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


def checked(response: httpx.Response, missing_ok: bool) -> httpx.Response | None:
    """``response`` if it succeeded, None for a missing key when ``missing_ok``; else raise."""
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
        raise SessionStoreError(message, solution="check api_token: it needs Workers KV Storage edit rights")
    raise SessionStoreError(message)


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


__all__ = ["API_BASE", "POOL_LIMITS", "Call", "KVClient", "checked", "namespace_url"]
