"""Every Lua script the Redis-protocol stores run (Redis, Redis Cluster, Upstash), with the
keys and arguments each takes.

Redis runs a script alone, start to finish (one thread, no other command in between), so each
script below is atomic: that is why an operation that reads and writes is a script rather than
two commands. Redis does not undo a script that fails halfway (a write before the error stays),
so every script checks before it writes. On Redis Cluster a script may only touch keys of one
hash slot, declared up front: the record scripts take one key; the index scripts take the
index and, on one server only, a record (or name records from inside, which a single server
allows and Redis Cluster does not). Scripts are sent by SHA1 (``EVALSHA``) and whole after
``NOSCRIPT``; a restart or ``SCRIPT FLUSH`` just costs one more round trip.

Example::

    >>> HASH_TAKE.source.strip().splitlines()[0]
    "local fields = redis.call('HGETALL', KEYS[1])"
"""

from __future__ import annotations

from .redis_cas import CAS_SCRIPT, CAS_SHA1
from .redis_commands import Script

#: The index field that holds the user's generation; storage keys are hex, never this.
GENERATION_FIELD = "#gen"
#: What a revocation on Redis Cluster leaves in place of an entry until the record is deleted
#: (never an entry's JSON, which is an object): the session is revoked, and whoever finds
#: this deletes its record, then the field.
TOMBSTONE = "#revoked"

# -- records ---------------------------------------------------------------------------------
#
# The string layout needs no script but the compare-and-set (websession.stores.redis_cas). The
# hash layout: one field per session key; the empty field '' (value '', never JSON) keeps an
# empty session's hash alive.


def _fill_hash(first: int, ttl: int, expire: str) -> str:
    """Lua: set the field, value pairs from ARGV[first], the keep-alive field, and the expiry
    ARGV[ttl] (0: none) with ``expire``."""
    return f"""for i = {first}, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSETNX', KEYS[1], '', '')
local ttl = tonumber(ARGV[{ttl}])
if ttl > 0 then redis.call('{expire}', KEYS[1], ttl) end
"""


#: KEYS[1] the hash; ARGV[1] TTL seconds (0: none); then field, value pairs.
HASH_CREATE = Script.of(
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
"""
    + _fill_hash(2, 1, "EXPIRE")
    + "return 1\n"
)

#: KEYS[1] the hash; ARGV[1] TTL seconds. HGETALL and move the expiry in one round trip.
HASH_READ_TOUCH = Script.of("""
local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return fields
""")

#: KEYS[1] the hash; ARGV[1] TTL seconds (0: none); ARGV[2] n, then n fields to delete, then
#: field, value pairs to set. Returns 0 and writes nothing when the hash is gone.
HASH_UPDATE = Script.of("""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed = tonumber(ARGV[2])
for i = 3, 2 + removed do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = 3 + removed, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSETNX', KEYS[1], '', '')
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return 1
""")

#: KEYS[1] the hash; ARGV[1] 1 to replace, 0 to leave a live hash alone; ARGV[2] PTTL in
#: milliseconds (0: none); then field, value pairs. Returns 1 when it wrote the hash.
HASH_WRITE = Script.of(
    """
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
"""
    + _fill_hash(3, 2, "PEXPIRE")
    + "return 1\n"
)

#: KEYS[1] the hash. HGETALL and DEL in one step: how regenerate takes a session to move it.
HASH_TAKE = Script.of("""
local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then redis.call('DEL', KEYS[1]) end
return fields
""")

#: The string layout's compare-and-set (websession.stores.redis_cas).
CAS = Script(CAS_SCRIPT, CAS_SHA1)

# -- users and their devices (websession.stores.redis_users) ------------------------------
#
# KEYS[1] is always the index. `generation()` reads a damaged counter as 0 rather than failing
# the request. `bump()` also takes any expiry off the index: once it holds a generation other
# than 0 it must never vanish, since cookie storages keep their revocations in it (an index
# that never held one vanishes by itself with its last entry, as an empty hash does).

_PRELUDE = f"""
local function generation()
  return tonumber(redis.call('HGET', KEYS[1], '{GENERATION_FIELD}') or '0') or 0
end
local function bump()
  local gen = generation() + 1
  redis.call('HSET', KEYS[1], '{GENERATION_FIELD}', gen)
  redis.call('PERSIST', KEYS[1])
  return gen
end
local function is_session(field)
  return field ~= '{GENERATION_FIELD}' and string.match(field, '^[%x%-]+$') ~= nil
end
"""


def _script(body: str) -> Script:
    return Script.of(_PRELUDE + body)


# Single server: the record is KEYS[2] (or named from inside the script).

#: ARGV[1] the generation to require ('' for none), ARGV[2] the storage key, ARGV[3] the
#: entry, ARGV[4] the record's TTL in seconds (0: none), ARGV[5] the key prefix, then the
#: record. Returns -1 (the generation moved: nothing written), 0 (the id is taken), 1.
_CREATE_HEAD = """
if ARGV[1] ~= '' and generation() ~= tonumber(ARGV[1]) then return -1 end
local ttl = tonumber(ARGV[4])
"""
_CREATE_TAIL = """
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if is_session(field) and redis.call('EXISTS', ARGV[5] .. field) == 0 then
    redis.call('HDEL', KEYS[1], field)
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PERSIST', KEYS[1])
return 1
"""
CREATE_STRING = _script(
    _CREATE_HEAD
    + """
local written
if ttl > 0 then
  written = redis.call('SET', KEYS[2], ARGV[6], 'NX', 'EX', ttl)
else
  written = redis.call('SET', KEYS[2], ARGV[6], 'NX')
end
if not written then return 0 end
"""
    + _CREATE_TAIL
)
#: The hash layout: ARGV[6..] are field, value pairs; the empty field keeps the hash alive.
CREATE_HASH = _script(
    _CREATE_HEAD
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSETNX', KEYS[2], '', '')
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
"""
    + _CREATE_TAIL
)

#: ARGV[1] the storage key. Removes the entry and the record (whatever its type: one of
#: another type is unreadable, and gone afterwards); returns {entry, generation, record}.
_TAKE = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry then redis.call('HDEL', KEYS[1], ARGV[1]) end
local record = redis.pcall('{read}', KEYS[2])
if type(record) == 'table' and record.err then record = false end
redis.call('DEL', KEYS[2])
return {{entry, generation(), record}}
"""
TAKE_STRING = _script(_TAKE.format(read="GET"))
TAKE_HASH = _script(_TAKE.format(read="HGETALL"))

#: ARGV[1] the storage key. Returns 1 when the record was deleted.
REVOKE = _script("""
bump()
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('DEL', KEYS[2])
""")

#: ARGV[1] the storage key to keep ('' for none), ARGV[2] the key prefix. Returns how many
#: records were deleted.
REVOKE_USER = _script("""
bump()
local deleted = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if field ~= ARGV[1] and is_session(field) then
    redis.call('HDEL', KEYS[1], field)
    deleted = deleted + redis.call('DEL', ARGV[2] .. field)
  end
end
return deleted
""")

#: ARGV[1] the key prefix. Drops the entries of records that are gone; returns storage key,
#: entry, PTTL triples for the others.
SESSIONS = _script("""
local found = {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local field = fields[i]
  if is_session(field) then
    local pttl = redis.call('PTTL', ARGV[1] .. field)
    if pttl == -2 then
      redis.call('HDEL', KEYS[1], field)
    else
      found[#found + 1] = field
      found[#found + 1] = fields[i + 1]
      found[#found + 1] = pttl
    end
  end
end
return found
""")

#: Increments the generation (for good: a cookie storage's revocations must outlive its
#: cookies). Returns the new generation.
BUMP = _script("""
return bump()
""")

# Redis Cluster: the index alone (KEYS[1]); the records are written and deleted apart.

#: ARGV[1] the generation to require ('' for none), ARGV[2] the storage key, ARGV[3] the
#: entry. Returns -1 when the generation moved (nothing written), else how many entries.
INDEX_ADD = _script(f"""
if ARGV[1] ~= '' and generation() ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PERSIST', KEYS[1])
return redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '{GENERATION_FIELD}')
""")

#: ARGV[1] the storage key. Bumps the generation and puts a tombstone in place of the entry
#: (there or not: the record goes either way).
INDEX_REVOKE = _script(f"""
bump()
redis.call('HSET', KEYS[1], ARGV[1], '{TOMBSTONE}')
return 1
""")

#: ARGV[1] the storage key to keep ('' for none). Bumps the generation, puts a tombstone in
#: place of every other entry, and returns the storage keys of all tombstones, those an earlier
#: revocation left unfinished included (even the one to keep: it was revoked already).
INDEX_REVOKE_USER = _script(f"""
bump()
local revoked = {{}}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local field, value = fields[i], fields[i + 1]
  if is_session(field) and (field ~= ARGV[1] or value == '{TOMBSTONE}') then
    if value ~= '{TOMBSTONE}' then redis.call('HSET', KEYS[1], field, '{TOMBSTONE}') end
    revoked[#revoked + 1] = field
  end
end
return revoked
""")


__all__ = [
    "BUMP",
    "CAS",
    "CREATE_HASH",
    "CREATE_STRING",
    "GENERATION_FIELD",
    "HASH_CREATE",
    "HASH_READ_TOUCH",
    "HASH_TAKE",
    "HASH_UPDATE",
    "HASH_WRITE",
    "INDEX_ADD",
    "INDEX_REVOKE",
    "INDEX_REVOKE_USER",
    "REVOKE",
    "REVOKE_USER",
    "SESSIONS",
    "TAKE_HASH",
    "TAKE_STRING",
    "TOMBSTONE",
]
