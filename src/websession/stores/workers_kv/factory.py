"""The Workers KV storage factory and its URL: ``workers-kv://ACCOUNT_ID/NAMESPACE_ID``.

What Workers KV guarantees once this is done: nothing has been sent yet (the store opens its
httpx clients on first use), and records will live ``ttl``, else the cookie's lifetime: KV
deletes them itself then (:mod:`.expiry`). With neither, a record is kept until it is deleted.

What it does not: check the account, the namespace or the token here. A wrong one shows on the
first request as a :class:`~websession.errors.SessionStoreError` (401 or 403: the token), an
unreachable API as a :class:`~websession.errors.StoreUnavailableError`. The store it makes
does not change a session atomically (see :mod:`websession.stores.workers_kv`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

import httpx

from ...cookie import CookieLike
from ...errors import ConfigurationError
from ...options import StorageOptions, assemble, store_arguments, url_options
from ...storage import SessionStorage
from ...urls import cookie_from_options, reject_unknown
from .store import WorkersKVStore

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
    touch_interval: float = 60.0,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions in a Cloudflare Workers KV namespace, as Remix's ``createWorkersKVSessionStorage``.

    KV has no compare-and-set, so concurrent commits to one session are **not** merged
    atomically (last write wins; see the module docs). ``base_url`` replaces
    ``https://api.cloudflare.com/client/v4/accounts/{account_id}/storage/kv/namespaces/{namespace_id}``.

    ``ttl`` (or its older spelling ``default_ttl``, seconds) is the record lifetime whatever
    the cookie's; the other shared options (``rolling``, ``absolute_timeout``,
    ``storage_key_secret``, ...) are :class:`~websession.options.StorageOptions`.

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
        touch_interval=touch_interval,
        **store_arguments(options),
    )
    return assemble("create_workers_kv_session_storage", store, cookie, options)


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``workers-kv://ACCOUNT_ID/NAMESPACE_ID?prefix=session:``.

    The API token comes from the ``api_token`` option or the ``CLOUDFLARE_API_TOKEN``
    environment variable (keep it out of URLs that end up in logs). ``base_url`` points the
    store at another server speaking the same API.
    """
    account_id = url.netloc
    namespace_id = url.path.strip("/")
    if not account_id or not namespace_id:
        raise ConfigurationError("a workers-kv:// URL is workers-kv://ACCOUNT_ID/NAMESPACE_ID")
    cookie = cookie_from_options(options)
    shared = url_options(options)
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
        touch_interval=touch_interval,
        **shared,
    )


__all__ = ["create_workers_kv_session_storage", "open_url"]
