"""What each Upstash store operation sends: its command plan, written once for both doors.

Each plan is a generator (:mod:`websession.stores.steps`): it yields a command as the REST
API takes it, receives the decoded reply (or has the command's error thrown in) and returns
the result, so :class:`~.store.UpstashStore` runs it with a blocking or an awaiting transport.

What Upstash guarantees that the plans rely on: every command is atomic, and so is a Lua
script sent with ``EVALSHA``, which is how an update compares and sets in one step
(``CAS_SCRIPT`` of :mod:`websession.stores.redis_cas`). ``GETEX`` reads and moves the TTL in
one command, ``GETDEL`` reads and deletes in one, ``SET ... NX`` creates only what is absent.

What it does not: a script cache that survives everything (``NOSCRIPT`` is answered by sending
the script whole with ``EVAL``), nor atomicity across requests, which is why an update retries
on the current record when another request's update landed between its read and its write.

Example::

    >>> from websession.stores.steps import run_steps
    >>> from websession.stores.upstash import UpstashRestClient, UpstashStore
    >>> store = UpstashStore(UpstashRestClient("https://x.upstash.io", "AX..."), prefix="app:")
    >>> sent = []
    >>> run_steps(delete(store, "an-id"), sent.append)
    >>> sent
    [['DEL', 'app:an-id']]
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ... import codec
from ...changes import Changes
from ...errors import SessionStoreError
from .. import redis_users
from ..base import Record
from ..redis_cas import CAS_SCRIPT, CAS_SHA1, Attempt, apply_to, digest
from ..steps import Steps
from .errors import UpstashCommandError
from .rest import Command

if TYPE_CHECKING:
    from .store import UpstashStore

T = TypeVar("T")

#: Compare-and-set attempts before an update gives up. Each lost attempt means another
#: request's update landed, so n concurrent writers to one session need at most n - 1 retries.
MAX_ATTEMPTS = 100


def create(store: UpstashStore, data: Mapping[str, Any], expires: datetime | None) -> Steps[Command, str]:
    """``SET key value NX EX ttl``, with a new id on the vanishing chance of a collision."""
    value = codec.dumps(data)
    ttl = store.seconds_until(expires)
    while True:
        id = store.new_id()
        command: Command = ["SET", store.key(id), value, "NX"]
        if ttl is not None:
            command += ["EX", ttl]
        reply = yield command
        if reply is True or reply == "OK":
            return id
        # nil: the key exists. 128 random bits make this all but impossible; try another id.


def read(store: UpstashStore, id: str, touch: datetime | None) -> Steps[Command, Record | None]:
    """``GETEX key EX ttl`` when rolling (the TTL moves in the same request), else ``GET``."""
    key = store.key(id)
    ttl = store.seconds_until(touch)
    if ttl is None:
        return _record(store, id, ["GET", key], None)
    return _record(store, id, ["GETEX", key, "EX", ttl], touch)


def take(store: UpstashStore, id: str) -> Steps[Command, Record | None]:
    """``GETDEL``: one command, so a destroy lands wholly before or after it."""
    return _record(store, id, ["GETDEL", store.key(id)], None)


def _record(
    store: UpstashStore, id: str, command: Command, expires: datetime | None
) -> Steps[Command, Record | None]:
    try:
        reply = yield command
    except (codec.CorruptRecordError, UpstashCommandError) as exc:
        if isinstance(exc, UpstashCommandError) and not exc.reply.startswith("WRONGTYPE"):
            raise
        # Not UTF-8, or a list or set under the session's key: an unreadable record.
        codec.log_corrupt(store.kind, id, exc)
        return None
    if reply is None:
        return None
    raw = raw_bytes(reply)
    data = decode(store, id, raw)
    return None if data is None else Record(data, expires, raw)


def update(
    store: UpstashStore, id: str, changes: Changes, expires: datetime | None, seen: Record
) -> Steps[Command, Record | None]:
    """``EVALSHA`` of the compare-and-set script (``EVAL`` after ``NOSCRIPT``): the new record
    is written only if the stored one still has the digest this request read; otherwise the
    changes are applied to the current record and the call retried. A deleted record is never
    brought back."""
    key = store.key(id)
    ttl = store.seconds_until(expires) or 0  # 0: the script writes without a TTL
    raw = seen.version
    if not isinstance(raw, bytes):
        reply = yield ["GET", key]
        if reply is None:
            return None
        raw = raw_bytes(reply)
    for _ in range(MAX_ATTEMPTS):
        try:
            attempt = _attempt(changes, raw)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(store.kind, id, exc)
            return None
        args: Command = [1, key, attempt.expected, attempt.new_raw.decode("utf-8"), ttl]
        try:
            reply = yield ["EVALSHA", CAS_SHA1, *args]
        except UpstashCommandError as exc:
            if "WRONGTYPE" in exc.reply:  # replaced by a list or set since it was read
                codec.log_corrupt(store.kind, id, exc)
                return None
            if not exc.reply.startswith("NOSCRIPT"):
                raise
            reply = yield ["EVAL", CAS_SCRIPT, *args]  # also caches the script for next time
        if reply is None:
            return None  # gone: deleted or expired, and it stays that way
        if reply == 1:
            return Record(attempt.data, expires, attempt.new_raw)
        raw = raw_bytes(reply)  # changed meanwhile: apply the changes to the current record
    raise SessionStoreError(
        f"the session record changed under {MAX_ATTEMPTS} attempts in a row to update it",
        solution="too many concurrent requests write to one session",
    )


def delete(store: UpstashStore, id: str) -> Steps[Command, None]:
    """``DEL key``."""
    yield ["DEL", store.key(id)]


def over_rest(steps: redis_users.Steps[T]) -> Steps[Command, T]:
    """Run the Redis store's index steps as REST commands: a script by its SHA, sent whole
    after ``NOSCRIPT`` (which also caches it); bytes as the UTF-8 text they are."""
    try:
        op = next(steps)
    except StopIteration as done:  # answered without a command (a key no store writes)
        answer: T = done.value
        return answer
    while True:
        if isinstance(op, redis_users.Call):
            reply = yield [_argument(arg) for arg in op.args]
        elif isinstance(op, redis_users.Eval):
            args: Command = [len(op.keys), *op.keys, *map(_argument, op.args)]
            try:
                reply = yield ["EVALSHA", op.script.sha, *args]
            except UpstashCommandError as exc:
                if not exc.reply.startswith("NOSCRIPT"):
                    raise
                reply = yield ["EVAL", op.script.source, *args]
        else:  # pragma: no cover - batches are for Redis Cluster only
            raise TypeError(f"cannot send {type(op).__name__} over REST")
        try:
            op = steps.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result


def decode(store: UpstashStore, id: str, raw: bytes) -> dict[str, Any] | None:
    """The session data of a stored record, or None (logged) when it is not one."""
    try:
        return codec.decode_record(raw)
    except codec.CorruptRecordError as exc:
        codec.log_corrupt(store.kind, id, exc)
        return None


def raw_bytes(reply: Any) -> bytes:
    """A string reply as the bytes Redis holds."""
    if isinstance(reply, bytes):
        return reply
    if isinstance(reply, str):
        return reply.encode("utf-8")
    raise SessionStoreError(f"Upstash sent {type(reply).__name__} where a string was expected")


def _argument(value: Any) -> str | int:
    if isinstance(value, bytes):
        return value.decode("utf-8")  # encoded JSON records and entries
    if isinstance(value, (str, int)):
        return value
    return str(value)


def _attempt(changes: Changes, raw: bytes) -> Attempt:
    if changes:
        return apply_to(changes, raw)
    # Nothing changed (only the lifetime): write back the very bytes read, re-encoding nothing.
    return Attempt(raw, digest(raw), codec.decode_record(raw))


__all__ = ["MAX_ATTEMPTS", "create", "decode", "delete", "over_rest", "raw_bytes", "read", "take", "update"]
