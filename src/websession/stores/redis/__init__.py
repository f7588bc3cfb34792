"""The Redis store: redis-py, sync and async, plain Redis, Redis Cluster or Sentinel.

Modules: :mod:`.store` (the store: keys, layouts, records, users), :mod:`.factory` (the
storage factory and ``redis://`` URLs), :mod:`.maintenance` (scan, count, peek, write),
:mod:`.wire` and :mod:`.connections` (how commands reach Redis: drive loops, held connections,
deadlines), :mod:`.errors` (redis-py's exceptions as websession's). The commands themselves are
plans with no I/O, shared with the Upstash store: :mod:`websession.stores.redis_records`,
:mod:`websession.stores.redis_users`, :mod:`websession.stores.redis_scripts`.

One storage object serves both doors. Built from ``url=``, it makes a ``redis.Redis`` for
the sync door and a ``redis.asyncio.Redis`` for the async door, each on first use (and one
async client per event loop, so ``asyncio.run`` twice still works). Handed a ``client=``, it
serves that client's door only; the other door raises :class:`ConfigurationError` naming the
client to pass. redis-py parses replies with hiredis when it is installed.

What Redis guarantees: a command or a Lua script runs alone (one thread), so every store
operation that reads and writes is one atomic command or script; records expire by
themselves (native TTL, moved by ``GETEX`` as they are read). What it does not: on Redis
Cluster a command or script reaches one hash slot only, so nothing spanning two keys in
different slots is atomic (the user index is then kept in ordered steps); a server at
``maxmemory`` evicts keys under its policy (a live session may end early); replication is
asynchronous, so after a failover the new primary may lack the last writes.

Every request costs at most the round trips it must: no cookie, none; an unchanged session,
one (``GETEX`` reads it and moves its expiry); a changed one, two (the read, then one script
call that applies the changes).

Layouts (``layout=``):

``"string"`` (the default, what Remix writes)
    ``prefix + id`` holds the JSON of the data. Changes are applied with a compare-and-set
    script (:mod:`websession.stores.redis_cas`): Python applies them to the record it read and
    sends the new record with a digest of the old; the script writes only if the record is
    still the one read, otherwise it returns the current record and Python tries again. The
    script never decodes JSON, so untouched values are never re-encoded by Lua's cjson.

``"hash"``
    ``prefix + id`` is a Redis hash: one field per session key, each value the JSON of that
    value. A commit sets and deletes only the fields it changed, in one script that first
    checks that the hash still exists, so a destroyed session stays destroyed. A field named
    ``""`` with an empty value (never valid JSON, so never data) keeps empty sessions alive.

Users and devices (``session.login``, ``sessions_of``, ``revoke``, ``revoke_user``): each user
has an index, the hash ``prefix + "user:" + user_digest(user)`` (storage key -> entry JSON, and
``#gen``). On one server every index operation is one Lua script over the index and the
records, so a sign-in costs the take of the old record plus one script; on Redis Cluster the
steps are single-key, in the order :mod:`websession.stores.redis_users` explains. Reads and
updates of signed-in sessions cost what any other does.

Formats (``format=``): ``"remix"`` is Remix v2 / React Router's flat JSON object and cookie;
``"remix-v3"`` is ``@remix-run/session-storage-redis``: ``[values, flash]`` records under
UUID ids and the ``@remix-run/cookie`` cookie (string layout only).

Example::

    >>> from websession import create_cookie, create_redis_session_storage
    >>> storage = create_redis_session_storage(
    ...     cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
    ...     url="redis://localhost:6379/0", prefix="myapp:session:")
"""

from __future__ import annotations

from ..redis_records import Format, Layout
from .connections import redis_url
from .factory import create_redis_session_storage, open_url
from .store import RedisStore

__all__ = ["Format", "Layout", "RedisStore", "create_redis_session_storage", "open_url", "redis_url"]
