"""The Workers KV store: Cloudflare's KV REST API through httpx, sync and async.

Records follow Remix's ``createWorkersKVSessionStorage``: the key is the bare id (plus an
optional ``prefix``), the value is the JSON of the flat session data, and the expiry is KV's
own ``expiration`` in absolute epoch seconds. A Remix Worker and a Python service can share
the namespace.

What Workers KV guarantees:

- **Global storage with its own expiry.** A value is kept until it expires or is deleted, and
  every Cloudflare location can read it; nothing needs purging.
- **Values up to 25 MiB** (a larger session is refused with
  :class:`~websession.errors.RecordTooLargeError` before it is sent).

What it does not:

- **Consistent reads.** KV is eventually consistent: a write can take up to 60 seconds to be
  seen from other locations, so a request served elsewhere may read the session as it was.
- **Atomic changes.** KV has no compare-and-set, so an update reads the current value, applies
  the request's changes in Python and writes the whole value back: **last write wins**. Two
  requests that commit to one session at the same moment can lose one of their changes, and a
  request that commits just after another destroyed the session can write it back.
  ``atomic_changes`` is False, and the conformance suite's concurrency tests are declared, not
  run, for this store. Use Redis, PostgreSQL or DynamoDB when concurrent requests to one
  session must merge.
- **Short lifetimes.** KV refuses expirations less than 60 seconds ahead: the ``expiration``
  sent is clamped to at least 65 seconds ahead, the exact expiry is kept in the key's metadata,
  and a read never returns a session whose exact expiry has passed
  (:mod:`~websession.stores.workers_kv.expiry`).
- **Frequent writes to one key.** KV allows one write per key per second; more are refused
  with 429, raised as :class:`~websession.errors.StoreUnavailableError`. A rolling read
  writes the value back only when the expiry would move by more than ``touch_interval``
  (60 s) or a tenth of the lifetime, so reads alone rarely hit the limit.

The modules: :mod:`~websession.stores.workers_kv.rest` (the Cloudflare REST client and its
errors), :mod:`~websession.stores.workers_kv.expiry` (exact expiry over KV's),
:mod:`~websession.stores.workers_kv.store` (the store), and
:mod:`~websession.stores.workers_kv.factory` (the storage factory and ``workers-kv://`` URLs).

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

from .expiry import EXPIRATION_SLACK, MIN_EXPIRATION_AHEAD, kv_expiration
from .factory import create_workers_kv_session_storage, open_url
from .rest import API_BASE, POOL_LIMITS
from .store import BULK_BYTES, BULK_PAIRS, MAX_KEY_BYTES, MAX_VALUE_BYTES, WorkersKVStore

__all__ = [
    "API_BASE",
    "BULK_BYTES",
    "BULK_PAIRS",
    "EXPIRATION_SLACK",
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "MIN_EXPIRATION_AHEAD",
    "POOL_LIMITS",
    "WorkersKVStore",
    "create_workers_kv_session_storage",
    "kv_expiration",
    "open_url",
]
