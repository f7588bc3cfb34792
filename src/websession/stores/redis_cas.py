"""The compare-and-set script that applies a change set to a JSON record in Redis.

Shared by the Redis store and the Upstash store (which runs it over REST). The script never
decodes JSON: Redis's Lua cjson turns ``[]`` into ``{}`` and big integers into floats, so a
script that re-encodes the record would corrupt data the request never touched. Instead
Python applies the changes and sends the new record with a digest of the record it started
from; the script writes only when the stored record still has that digest.

Replies: ``1`` written; ``nil`` the record is gone (never recreated); a bulk string: the record
changed meanwhile, here is the current one (apply the changes to it and try again).

Example::

    >>> from websession.changes import Changes
    >>> attempt = apply_to(Changes({"b": 2}), b'{"a":[]}')
    >>> attempt.new_raw, attempt.expected == digest(b'{"a":[]}')
    (b'{"a":[],"b":2}', True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import codec
from ..changes import Changes

#: KEYS[1] the record; ARGV[1] sha1 hex of the record as read; ARGV[2] the new record;
#: ARGV[3] TTL in seconds, 0 for none.
CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return false end
if redis.sha1hex(current) ~= ARGV[1] then return current end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""

CAS_SHA1 = hashlib.sha1(CAS_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA1

#: How many times a commit re-applies its changes to a record that keeps changing under it.
#: When N requests commit to one session at the same moment, each round has one winner, so
#: the last of them needs N tries: this bounds the concurrent writers that always succeed.
MAX_ATTEMPTS = 100


def digest(raw: bytes) -> str:
    """SHA1 hex of a stored record, as the script's ``redis.sha1hex`` computes it."""
    return hashlib.sha1(raw).hexdigest()  # noqa: S324 - a change detector, not a security digest


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of the script: the record to write, the digest it must replace, the data."""

    new_raw: bytes
    expected: str
    data: dict[str, Any]


def apply_to(
    changes: Changes,
    raw: bytes,
    *,
    decode: Callable[[bytes], dict[str, Any]] = codec.decode_record,
    encode: Callable[[Mapping[str, Any]], bytes] = codec.encode,
) -> Attempt:
    """The changes applied to ``raw``: first the record this request read, then, after a
    mismatch, the current record the script returned. Raises CorruptRecordError if ``raw``
    is not a JSON object. ``decode``/``encode`` choose another record format
    (``codec.decode_v3``/``codec.encode_v3`` for "remix-v3").

    Example::

        >>> v3 = {"decode": codec.decode_v3, "encode": codec.encode_v3}
        >>> apply_to(Changes({"b": 2}), b'[{"a":[]},{}]', **v3).new_raw
        b'[{"a":[],"b":2},{}]'
    """
    data = changes.apply(decode(raw))
    return Attempt(encode(data), digest(raw), data)
