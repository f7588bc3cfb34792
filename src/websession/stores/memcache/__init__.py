"""The memcached store: pymemcache for the sync door, aiomcache for the async door.

Records follow WIRE-FORMAT.md: the key is ``prefix + id`` and the value is the JSON of the flat
session data. Each operation is one round trip in the common case (``add``, ``gats``/``gets``,
``cas``, ``delete``; :mod:`~websession.stores.memcache.store` tells which and when).

What memcached guarantees:

- **Atomic changes.** An update is a ``cas`` with the token read, retried on the current record
  when another request wrote first, so concurrent changes to one session merge.
- **Native TTL.** memcached drops a record when its expiry passes; nothing needs purging.

What it does not:

- **Keeping live sessions.** When its memory is full memcached evicts the least recently used
  items, live sessions included; size it so that eviction does not happen (``stats``'s
  ``evictions``).
- **Persistence.** Data lives in memory only: a restart loses every session it held.
- **Large records.** An item holds at most ``-I`` bytes (1 MB by default); a larger record is
  refused with :class:`~websession.errors.RecordTooLargeError` before it is sent.
- **Listing.** memcached cannot enumerate keys, so ``websession stats``/``ls`` and migrations
  *from* memcached are not possible.
- **Meta commands before 1.6.** The exact expiry ``websession show`` prints needs ``mg``
  (memcached 1.6+); ``gats`` needs 1.5.3, and older servers are read with ``gets`` + ``touch``.

With several servers, each key belongs to one server by rendezvous hashing, the same for both
doors and the same placement as pymemcache's ``HashClient``. A server that is down makes its
sessions unavailable (``StoreUnavailableError``) instead of moving them to another server,
which would fork them.

The modules: :mod:`~websession.stores.memcache.clients` (servers, the pymemcache and aiomcache
adapters, error translation), :mod:`~websession.stores.memcache.store` (the store logic),
:mod:`~websession.stores.memcache.factory` (the storage factory and ``memcache://`` URLs).

Example::

    >>> from websession import create_cookie, create_memcache_session_storage
    >>> storage = create_memcache_session_storage(
    ...     cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
    ...     servers=["10.0.0.5:11211", "10.0.0.6:11211"], prefix="app:")
    >>> [server.name for server in storage.store.servers]
    ['10.0.0.5:11211', '10.0.0.6:11211']
"""

from __future__ import annotations

from .clients import TTL_UNKNOWN, Server, parse_server
from .factory import create_memcache_session_storage, open_url
from .store import (
    DEFAULT_ITEM_SIZE,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    ITEM_OVERHEAD,
    MAX_ATTEMPTS,
    MAX_KEY_LENGTH,
    RELATIVE_EXPIRY_LIMIT,
    MemcacheStore,
)

__all__ = [
    "DEFAULT_ITEM_SIZE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "ITEM_OVERHEAD",
    "MAX_ATTEMPTS",
    "MAX_KEY_LENGTH",
    "RELATIVE_EXPIRY_LIMIT",
    "TTL_UNKNOWN",
    "MemcacheStore",
    "Server",
    "create_memcache_session_storage",
    "open_url",
    "parse_server",
]
