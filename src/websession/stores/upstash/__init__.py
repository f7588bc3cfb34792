"""The Upstash store: sessions in Upstash Redis, spoken to over its REST API.

Records follow WIRE-FORMAT.md: the key is ``prefix + id`` and the value is the JSON of the flat
session data, the layout Remix's Upstash examples use, so a JavaScript app and a Python service
can share a database. Each operation is one HTTPS request:

=======  ==================================================================================
create   ``SET key value NX EX ttl`` (a new id on the vanishing chance of a collision)
read     ``GETEX key EX ttl`` when rolling (the TTL moves in the same request), else ``GET``
update   ``EVALSHA`` of the compare-and-set script in :mod:`websession.stores.redis_cas`
         (``EVAL`` after ``NOSCRIPT``): the new record is encoded in Python and written only
         if the stored record still has the digest this request read; otherwise the changes
         are applied to the current record and the call retried. A deleted record is never
         brought back. A change of lifetime only is ``GETEX key EX ttl`` (``PERSIST`` for
         none): the bytes stay as they are, whoever wrote them.
delete   ``DEL key``
users    one ``EVALSHA`` per operation (sign-in, sign-out, listing, revocations): the scripts
         of the Redis store's user index (:mod:`websession.stores.redis_users`), over the
         same keys, so both stores can share a database; a sign-in of an existing session
         adds a ``GETDEL``
=======  ==================================================================================

Two transports carry the commands. With ``url`` and ``token`` the store speaks the REST
protocol itself through httpx (sync and async clients made on first use): JSON command arrays
POSTed with a Bearer token, ``Upstash-Encoding: base64`` replies decoded, the
``upstash-sync-token`` of each reply sent back for read-your-writes, and explicit timeouts.
With ``client=`` it uses an ``upstash_redis.Redis`` (sync door) or
``upstash_redis.asyncio.Redis`` (async door) you already have.

What Upstash guarantees: each request's command, and each Lua script run by ``EVALSHA``, is
atomic; ``/multi-exec`` is a transaction; a client that sends back the sync token reads its
own writes, even from a read replica of a global database. What it does not: a ``/pipeline``
is not atomic (other clients' commands may interleave), other processes may briefly read a
replica that lags the primary, requests are limited in size (1 MB on the free plan), and a
request that timed out may still have run.

Failures are never silent (the seed blog's example ignored HTTP errors and lost sessions):
network errors, timeouts, HTTP 429 and 5xx raise :class:`~websession.errors.StoreUnavailableError`;
a refused token (401) or a command error raises :class:`~websession.errors.SessionStoreError`
carrying the server's message.

The modules: :mod:`.store` (the store and its maintenance methods), :mod:`.commands` (the
shared Redis plans as REST commands), :mod:`.rest` (the httpx REST client), :mod:`.sdk` (an
``upstash_redis`` client), :mod:`.errors` (failures), :mod:`.factory` (the storage factory and
store URLs).

Example::

    >>> from websession import create_cookie, create_upstash_session_storage
    >>> storage = create_upstash_session_storage(
    ...     cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
    ...     url="https://eu1-example.upstash.io", token="AX...")
    >>> storage.store.prefix
    'session:'
"""

from __future__ import annotations

from ..redis_cas import MAX_ATTEMPTS
from .errors import UpstashCommandError
from .factory import create_upstash_session_storage, open_url
from .rest import DEFAULT_TIMEOUT, POOL_LIMITS, Command, UpstashRestClient
from .store import DEFAULT_TTL, WRITE_BATCH, WRITE_BATCH_BYTES, UpstashStore

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "MAX_ATTEMPTS",
    "POOL_LIMITS",
    "WRITE_BATCH",
    "WRITE_BATCH_BYTES",
    "Command",
    "UpstashCommandError",
    "UpstashRestClient",
    "UpstashStore",
    "create_upstash_session_storage",
    "open_url",
]
