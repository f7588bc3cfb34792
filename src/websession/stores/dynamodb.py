"""The DynamoDB store: Remix's arc table layout, with boto3 (sync) and aiobotocore (async).

An item is one session: the partition key attribute ``idx`` (conventionally ``_idx``) holds
the id, every session key is a top-level attribute, and the ``ttl`` attribute (conventionally
``_ttl``) holds the expiry in epoch seconds, as Remix's ``createArcTableSessionStorage`` writes
it. A Remix app and a Python service can share the table.

- Values are stored as native DynamoDB types (S, N, BOOL, NULL, L, M), as the JavaScript
  document client writes them. Numbers are sent and read back as decimal text, never through
  a binary float, so ``2**63-1``, ``2**64+1`` and ``0.1 + 0.2`` survive exactly. DynamoDB
  numbers have no int/float distinction (neither does JavaScript): a float with an integral
  value (``1.0``, ``1e20``) comes back as an int. Numbers DynamoDB cannot hold (more than 38
  significant digits, magnitude from 1e126 up or below 1e-130) are refused at commit with
  :class:`~websession.errors.SessionStoreError` naming the key.
- A session key equal to the ``idx`` or ``ttl`` attribute name, or empty, is refused: it would
  overwrite the item's key or expiry (Remix allows it and corrupts the item).
- DynamoDB deletes expired items late (hours to days), so expiry is checked on every read and
  in every update's condition.
- ``create`` is a PutItem with ``attribute_not_exists``; a change set is one UpdateItem
  (``SET`` the keys set, ``REMOVE`` the keys removed) conditioned on the item existing and
  being unexpired, so concurrent requests never undo each other and a destroyed session is
  never brought back.
- Items over DynamoDB's 400 KB limit raise :class:`~websession.errors.RecordTooLargeError`.
- Users and their devices (websession.users): each signed-in user has one more item in the
  table, keyed ``"user#" + user_digest(user)`` (no session id can take that key), holding a map
  ``entries`` (storage key -> entry) and a number ``generation``. A sign-in is one
  TransactWriteItems (the session's Put and the entry's Update, conditioned on the generation),
  so it is atomic. Unbinding (take_for_user) deletes the session, then its entry. Revoking
  moves the entries into a tombstone attribute (``revoked#<random>``) while it bumps the
  generation, deletes the sessions, then drops the tombstone: neither a race nor a failure
  between two requests leaves a live session outside the index, and a revocation that failed
  halfway raises and is finished by a retry or the user's next listing. Scans, counts and
  purges skip user items; a purge also drops entries of dead sessions.

:func:`create_dynamodb_table` creates the table and enables TTL on the ``ttl`` attribute.

Example (needs DynamoDB or an emulator, so not run as a doctest)::

    from websession import create_cookie, create_dynamodb_session_storage

    storage = create_dynamodb_session_storage(
        cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
        table="sessions", region="eu-west-1",
    )
    storage.store.setup()      # create_dynamodb_table(...) with the store's client
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar, Union
from urllib.parse import SplitResult

import boto3
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from .. import codec
from ..changes import Changes
from ..codec import CodecLike
from ..cookie import CookieLike, as_cookie
from ..errors import ConfigurationError, RecordTooLargeError, SessionStoreError, StoreUnavailableError
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options
from ..users import Device, Entry, Taken, user_digest
from .base import Clock, Record, Store, touch_due, utcnow
from .steps import Steps, arun_steps, run_steps

#: DynamoDB's item size limit (attribute names and values together).
MAX_ITEM_BYTES = 400 * 1024

_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)

#: Used when the store opens its own clients: fail fast, so a request answers 503 in seconds.
DEFAULT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})

_MAX_DIGITS = 38

#: BatchWriteItem's limit of items per request, and how many times unprocessed items are sent.
BATCH_WRITE_ITEMS = 25
BATCH_WRITE_ATTEMPTS = 8
#: BatchGetItem's limit of keys per request.
BATCH_GET_ITEMS = 100

#: The partition key of a user's index item is this prefix + user_digest(user): no session id
#: or storage key (hex digits only) can take it, so no cookie can name a user item.
USER_ITEM_PREFIX = "user#"
#: A user item's attributes: storage key -> entry, and the revocation counter.
ENTRIES_ATTRIBUTE = "entries"
GENERATION_ATTRIBUTE = "generation"
#: A revocation cannot delete sessions in the request that unindexes them, so it moves their
#: entries into a tombstone, an attribute of the user item named this prefix + a random name
#: (storage key -> entry), in the same UpdateItem that bumps the generation; then it deletes
#: the sessions, then removes the tombstone. A tombstone left by a revocation that failed
#: halfway is finished by the user's next revoke, revoke_user or sessions_of (or by a sign-in
#: that finds the index full, or a purge).
TOMBSTONE_PREFIX = "revoked#"
#: Sessions one user may hold at a time. A typical entry (a storage key, the sign-in time, the
#: lifetime and a short label) takes about 100 to 250 bytes of the user item, so 1000 of them
#: stay well under DynamoDB's 400 KB item limit; a sign-in past it is refused.
MAX_USER_SESSIONS = 1000
#: How many times an operation on a user item is tried while transactions conflict on it.
USER_ATTEMPTS = 8
#: Index entries removed by one UpdateItem (expressions are limited to 4 KB).
_PRUNE_KEYS = 50

_ONE: dict[str, Any] = {"N": "1"}
_EMPTY: dict[str, Any] = {"M": {}}
#: Conditions on a user item's shape. Its index must be a map to add to or remove from, and
#: its generation a number to ADD to; an item damaged behind the store's back fails them and
#: is repaired (never an error a request sees).
_HAS_INDEX = "attribute_type(#e, :map)"
_GENERATION_OK = "(attribute_not_exists(#g) OR attribute_type(#g, :number))"
_TYPE_VALUES: dict[str, Any] = {":map": {"S": "M"}, ":number": {"S": "N"}}
#: Cancellation reasons that go away when the transaction is sent again a little later.
_BUSY_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)

T = TypeVar("T")


# -- the value encoding ---------------------------------------------------------------------


def marshal(key: str, value: Any) -> dict[str, Any]:
    """A JSON value as a DynamoDB attribute value; ``key`` names it in errors.

    Example::

        >>> marshal("k", {"a": [1, 0.5, None, True, "x"]})
        {'M': {'a': {'L': [{'N': '1'}, {'N': '0.5'}, {'NULL': True}, {'BOOL': True}, {'S': 'x'}]}}}
    """
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        text = str(value)
        if len(text.lstrip("-")) > _MAX_DIGITS:
            raise _unstorable(key, f"{text[:20]}... has more than {_MAX_DIGITS} digits")
        return {"N": text}
    if isinstance(value, float):
        magnitude = abs(value)
        if magnitude != 0 and not 1e-130 <= magnitude < 1e126:
            raise _unstorable(key, f"{value!r} is outside DynamoDB's number range (1e-130 to 1e126)")
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (list, tuple)):
        return {"L": [marshal(key, item) for item in value]}
    if isinstance(value, dict):
        return {"M": {k: marshal(key, v) for k, v in value.items()}}
    raise _unstorable(key, type(value).__name__)


def unmarshal(attribute: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as JSON; numbers with a point or exponent become floats.

    Example::

        >>> unmarshal({"L": [{"N": "9223372036854775807"}, {"N": "0.30000000000000004"}]})
        [9223372036854775807, 0.30000000000000004]
    """
    (kind, value), *rest = attribute.items()
    if rest:
        raise ValueError(f"attribute value with several types: {sorted(attribute)}")
    if kind == "S":
        return value
    if kind == "N":
        text = str(value)
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "L":
        return [unmarshal(item) for item in value]
    if kind == "M":
        return {k: unmarshal(v) for k, v in value.items()}
    raise ValueError(f"DynamoDB type {kind} has no JSON form")


def _unstorable(key: str, problem: str) -> SessionStoreError:
    return SessionStoreError(
        f"session value for {key!r} cannot be stored in DynamoDB: {problem}",
        solution="store it as a string",
    )


def _epoch(moment: datetime) -> int:
    """Whole epoch seconds, rounded up so an item never expires early."""
    return int(-(-moment.timestamp() // 1))


def _moment(epoch: Any) -> datetime:
    return datetime.fromtimestamp(float(epoch), timezone.utc)


# -- the table helper -------------------------------------------------------------------------


def create_dynamodb_table(
    client: Any, table: str, *, idx: str = "_idx", ttl: str = "_ttl", wait: float = 60.0
) -> None:
    """Create an on-demand table keyed by ``idx`` and enable TTL on ``ttl`` (idempotent).

    ``client`` is a boto3 DynamoDB client. Waits up to ``wait`` seconds for the table to be
    ACTIVE.

    Example (needs DynamoDB)::

        import boto3
        create_dynamodb_table(boto3.client("dynamodb"), "sessions")
    """
    try:
        client.create_table(**_table_spec(table, idx))
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
    deadline = time.monotonic() + wait
    while client.describe_table(TableName=table)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise SessionStoreError(f"DynamoDB table {table!r} did not become ACTIVE in {wait} s")
        time.sleep(0.5)
    described = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if not _ttl_enabled(described, ttl):
        client.update_time_to_live(TableName=table, TimeToLiveSpecification=_ttl_spec(ttl))


async def acreate_dynamodb_table(
    client: Any, table: str, *, idx: str = "_idx", ttl: str = "_ttl", wait: float = 60.0
) -> None:
    """Async twin of :func:`create_dynamodb_table`, for an aiobotocore client."""
    try:
        await client.create_table(**_table_spec(table, idx))
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
    deadline = time.monotonic() + wait
    while (await client.describe_table(TableName=table))["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise SessionStoreError(f"DynamoDB table {table!r} did not become ACTIVE in {wait} s")
        await asyncio.sleep(0.5)
    described = (await client.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
    if not _ttl_enabled(described, ttl):
        await client.update_time_to_live(TableName=table, TimeToLiveSpecification=_ttl_spec(ttl))


def _table_spec(table: str, idx: str) -> dict[str, Any]:
    return {
        "TableName": table,
        "KeySchema": [{"AttributeName": idx, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": idx, "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _ttl_spec(ttl: str) -> dict[str, Any]:
    return {"Enabled": True, "AttributeName": ttl}


def _ttl_enabled(described: Mapping[str, Any], ttl: str) -> bool:
    return (
        described.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and described.get("AttributeName") == ttl
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _uses(expression: str, placeholder: str) -> bool:
    """Whether an expression names ``placeholder`` (``#k`` is not ``#k0``)."""
    return re.search(re.escape(placeholder) + r"(?![A-Za-z0-9_])", expression) is not None


def _backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1`` on a busy user item, with jitter so that
    requests that conflicted once do not meet again."""
    return min(1.0, 0.02 * 2.0**attempt) * random.uniform(0.5, 1.0)


# -- the store --------------------------------------------------------------------------------


class DynamoDBStore(Store):
    """Sessions as items of a DynamoDB table in Remix's arc-table layout.

    Clients: pass ``client=`` (boto3) and/or ``async_client=`` (aiobotocore, already entered).
    A door without a client opens its own from ``region``, ``endpoint_url`` and
    ``client_options`` (e.g. credentials), unless only the other door's client was passed and
    none of those was; then that door raises :class:`~websession.errors.ConfigurationError`
    saying what to pass. Clients passed in are never closed by the store.

    Example (needs DynamoDB)::

        store = DynamoDBStore(table="sessions", region="eu-west-1")
        store.setup()
    """

    kind = "dynamodb"
    atomic_changes = True
    atomic_take = True
    #: DynamoDB deletes expired items itself, late; expiry is also checked on read.
    native_ttl = True
    user_index = True
    #: At most this many sessions per user (the user item must stay under 400 KB).
    max_user_sessions: int = MAX_USER_SESSIONS

    def __init__(
        self,
        *,
        table: str,
        idx: str = "_idx",
        ttl: str = "_ttl",
        client: Any = None,
        async_client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        client_options: Mapping[str, Any] | None = None,
        consistent_read: bool = True,
        default_ttl: float | None = None,
        touch_interval: float = 60.0,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret)
        if not table or not idx or not ttl or idx == ttl:
            raise ConfigurationError("table, idx and ttl must be non-empty, and idx and ttl must differ")
        if {idx, ttl} & {ENTRIES_ATTRIBUTE, GENERATION_ATTRIBUTE} or any(
            name.startswith(TOMBSTONE_PREFIX) for name in (idx, ttl)
        ):
            # A ttl named "generation" would let DynamoDB's TTL delete users' index items.
            raise ConfigurationError(
                f"idx and ttl cannot be {ENTRIES_ATTRIBUTE!r} or {GENERATION_ATTRIBUTE!r}, nor "
                f"start with {TOMBSTONE_PREFIX!r}: users' index items use those attributes"
            )
        self.table = table
        self.idx = idx
        self.ttl = ttl
        self.consistent_read = consistent_read
        self.touch_interval = touch_interval
        self.region = region
        self.endpoint_url = endpoint_url
        self.client_options = dict(client_options or {})
        self._client = client
        self._async_client = async_client
        self._async_context: Any = None
        self._may_open = (client is None and async_client is None) or bool(
            region or endpoint_url or client_options
        )
        self._own_client = False
        self._lock = threading.Lock()
        self._names = {"#i": idx, "#t": ttl}

    def __repr__(self) -> str:
        return f"DynamoDBStore(table={self.table!r}, idx={self.idx!r}, ttl={self.ttl!r})"

    # -- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the table with TTL enabled, using this store's client (idempotent)."""
        with self._errors():
            create_dynamodb_table(self._sync(), self.table, idx=self.idx, ttl=self.ttl)

    async def asetup(self) -> None:
        """Async twin of :meth:`setup`."""
        with self._errors():
            await acreate_dynamodb_table(await self._async(), self.table, idx=self.idx, ttl=self.ttl)

    # -- the sync door -------------------------------------------------------------------------

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        client = self._sync()
        while True:
            id = self.new_id()
            try:
                with self._errors():
                    client.put_item(**self._put(id, data, expires))
                return id
            except _Conflict:  # pragma: no cover - 128 random bits
                continue

    def read(self, id: str, touch: datetime | None) -> Record | None:
        client = self._sync()
        with self._errors():
            item = client.get_item(**self._get(id)).get("Item")
        record = self._record(id, item)
        if (
            record is None
            or touch is None
            or not touch_due(record.expires, touch, self.clock(), self.touch_interval)
        ):
            return record
        try:
            with self._errors():
                client.update_item(**self._touch(id, touch))
        except _Conflict:
            return None
        return Record(record.data, touch)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        request = self._update(id, changes, expires)
        try:
            with self._errors():
                item = self._sync().update_item(**request).get("Attributes")
        except _Conflict:
            return None
        return self._record(id, item)

    def delete(self, id: str) -> None:
        with self._errors():
            self._sync().delete_item(TableName=self.table, Key=self._key(id))

    def take(self, id: str) -> Record | None:
        # DeleteItem hands back the item it deleted: one atomic request.
        with self._errors():
            reply = self._sync().delete_item(TableName=self.table, Key=self._key(id), ReturnValues="ALL_OLD")
        return self._record(id, reply.get("Attributes"))

    def close(self) -> None:
        with self._lock:
            if self._own_client and self._client is not None:
                self._client.close()
                self._client, self._own_client = None, False

    # -- the async door ------------------------------------------------------------------------

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        client = await self._async()
        while True:
            id = self.new_id()
            try:
                with self._errors():
                    await client.put_item(**self._put(id, data, expires))
                return id
            except _Conflict:  # pragma: no cover - 128 random bits
                continue

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        client = await self._async()
        with self._errors():
            item = (await client.get_item(**self._get(id))).get("Item")
        record = self._record(id, item)
        if (
            record is None
            or touch is None
            or not touch_due(record.expires, touch, self.clock(), self.touch_interval)
        ):
            return record
        try:
            with self._errors():
                await client.update_item(**self._touch(id, touch))
        except _Conflict:
            return None
        return Record(record.data, touch)

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        request = self._update(id, changes, expires)
        client = await self._async()
        try:
            with self._errors():
                item = (await client.update_item(**request)).get("Attributes")
        except _Conflict:
            return None
        return self._record(id, item)

    async def adelete(self, id: str) -> None:
        client = await self._async()
        with self._errors():
            await client.delete_item(TableName=self.table, Key=self._key(id))

    async def atake(self, id: str) -> Record | None:
        client = await self._async()
        with self._errors():
            reply = await client.delete_item(TableName=self.table, Key=self._key(id), ReturnValues="ALL_OLD")
        return self._record(id, reply.get("Attributes"))

    async def aclose(self) -> None:
        context, self._async_context = self._async_context, None
        if context is not None:
            self._async_client = None
            await context.__aexit__(None, None, None)
        self.close()

    # -- users and their devices ---------------------------------------------------------------
    #
    # One item per user in the same table: ``idx`` = "user#" + user_digest(user) (no session id
    # or storage key, both hex, can take it), with a map attribute ``entries`` (storage key ->
    # entry) and a number ``generation``. It carries no ``ttl`` attribute, so DynamoDB's TTL
    # never removes it (the generation must outlive the sessions). Binding is one transaction.
    # The others take several requests, ordered so that a failure between any two leaves no
    # live session outside the index: unbinding deletes the session, then its entry; revoking
    # moves the entries into a tombstone, deletes the sessions, then drops the tombstone.

    def create_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        return self._run(self._bind_steps(data, expires, user, entry, generation))

    def take_for_user(self, id: str, user: str) -> Taken:
        return self._run(self._take_for_user_steps(id, user))

    def sessions_of(self, user: str) -> list[Device]:
        return self._run(self._sessions_of_steps(user))

    def revoke(self, key: str, user: str) -> bool:
        return self._run(self._revoke_steps(key, user))

    def revoke_user(self, user: str, keep: str | None) -> int:
        return self._run(self._revoke_user_steps(user, keep))

    def generation(self, user: str, *, bump: bool = False) -> int:
        return self._run(self._generation_steps(user, bump))

    async def acreate_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        return await self._arun(self._bind_steps(data, expires, user, entry, generation))

    async def atake_for_user(self, id: str, user: str) -> Taken:
        return await self._arun(self._take_for_user_steps(id, user))

    async def asessions_of(self, user: str) -> list[Device]:
        return await self._arun(self._sessions_of_steps(user))

    async def arevoke(self, key: str, user: str) -> bool:
        return await self._arun(self._revoke_steps(key, user))

    async def arevoke_user(self, user: str, keep: str | None) -> int:
        return await self._arun(self._revoke_user_steps(user, keep))

    async def ageneration(self, user: str, *, bump: bool = False) -> int:
        return await self._arun(self._generation_steps(user, bump))

    # Each operation is written once, as steps (websession.stores.steps) that both doors run.

    def _bind_steps(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> Steps[_Request, str | None]:
        """One TransactWriteItems: the new session (if its id is free) and its entry in the
        user's item (if the generation is still ``generation`` and the index is not full).

        A full index is tidied once before the sign-in is refused: DynamoDB's TTL deletes
        session items but never their entries, and a revocation that failed halfway leaves a
        tombstone that takes room in the item."""
        tidied = False
        for attempt in range(USER_ATTEMPTS):
            id = self.new_id()
            try:
                yield _Call("transact_write_items", self._bind(id, data, expires, user, entry, generation))
                return id
            except _Cancelled as cancelled:
                outcome = yield from self._bind_outcome(cancelled, user, generation)
            except _NoIndex:
                yield from self._repair_steps(user)
                outcome = _Outcome.RETRY
            if outcome is _Outcome.REFUSED:
                return None
            if outcome is _Outcome.BUSY:
                yield _Pause(_backoff(attempt))
            if outcome is _Outcome.FULL:
                if tidied:
                    raise self._too_large("user index")
                yield from self._tidy_steps(self._user_key(user))
                tidied = True
        raise StoreUnavailableError(
            f"DynamoDB table {self.table!r}: could not bind a session to its user after "
            f"{USER_ATTEMPTS} tries (transaction conflicts)"
        )

    def _bind_outcome(
        self, cancelled: _Cancelled, user: str, generation: int | None
    ) -> Steps[_Request, _Outcome]:
        """What a cancelled binding calls for, from its two reasons (the session's Put, the
        user's Update); makes the user's item first when that was the cause."""
        reasons = [*cancelled.reasons, {}, {}][:2]
        codes = [str(reason.get("Code") or "None") for reason in reasons]
        if any(code in _BUSY_REASONS for code in codes):
            return _Outcome.BUSY
        for reason, whose in zip(reasons, ("session", "user index"), strict=True):
            message = str(reason.get("Message") or "").lower()
            if reason.get("Code") == "ValidationError" and "size" in message and "exceed" in message:
                if whose == "session":
                    raise self._too_large(whose)
                return _Outcome.FULL
        if codes[1] == "ConditionalCheckFailed":
            item = reasons[1].get("Item")
            if item is None:
                if (yield from self._create_user_steps(user)):
                    return _Outcome.RETRY  # the user's first session
                # An endpoint that does not hand the item back: look.
                item = (yield _Call("get_item", self._user_get(user))).get("Item") or {}
            entries = item.get(ENTRIES_ATTRIBUTE)
            readable = self._generation_readable(item)
            if not (isinstance(entries, dict) and isinstance(entries.get("M"), dict)) or (
                generation is not None and not readable
            ):
                yield from self._repair_steps(user, None if readable else item.get(GENERATION_ATTRIBUTE))
                return _Outcome.RETRY
            if generation is not None and self._generation_of(item) != generation:
                return _Outcome.REFUSED
            if len(entries["M"]) >= self.max_user_sessions:
                return _Outcome.FULL
            return _Outcome.RETRY  # the index changed between the two: try again
        if codes[1] in ("ValidationError", "ValueError"):
            # No entries map to add to (moto says ValueError).
            yield from self._repair_steps(user)
            return _Outcome.RETRY
        if codes[0] == "ConditionalCheckFailed":
            return _Outcome.RETRY  # the new id was taken (128 random bits: never, in practice)
        raise SessionStoreError(f"DynamoDB table {self.table!r}: binding cancelled: {codes}")

    def _take_for_user_steps(self, id: str, user: str) -> Steps[_Request, Taken]:
        """First take the record, then remove the entry (reading it and the generation).

        If the second request fails, what is left is an entry without a session, which
        sessions_of drops; the other order would leave a live session out of revoke_user's
        reach. A revocation that lands between the two has already unindexed the session: the
        entry is missing, so the record taken is reported as None and never moves. One that
        lands after sees the generation move on under the move's create_for_user."""
        key = self.storage_key(id)
        reply = yield _Call(
            "delete_item", {"TableName": self.table, "Key": self._key(id), "ReturnValues": "ALL_OLD"}
        )
        record = self._record(id, reply.get("Attributes"))
        unindex = self._user_update(user, "REMOVE #e.#k", {"#k": key}, condition=_HAS_INDEX)
        old = yield from self._user_write(unindex)  # None: no index (or a damaged one)
        entry = self._entry_in(old, key)
        generation = self._generation_of(old)
        if entry is None:
            return Taken(None, None, generation)  # no entry: revoked, whatever is left of it
        return Taken(record, entry, generation)

    def _sessions_of_steps(self, user: str) -> Steps[_Request, list[Device]]:
        now = self.clock()
        item = (yield _Call("get_item", self._user_get(user))).get("Item")
        entries = self._entries_of(item)
        tombstones = self._tombstones_of(item)
        if tombstones:  # a revocation that failed halfway: finish it
            yield from self._finish_steps(self._user_key(user), tombstones, set(entries))
        live = yield from self._live_steps([key for key in entries if self.is_storage_key(key)])
        dead = [key for key in entries if key not in live]
        if dead:  # the lazy half of index expiry
            yield from self._prune_steps(self._user_key(user), dead)
        devices = []
        for key, expires in live.items():
            entry = self._parse_entry(key, entries[key])
            if entry is not None:
                # An unreadable entry is not listed, but stays while its session lives, so
                # revoke_user still ends it.
                devices.append(entry.device(key, expires, now))
        return sorted(devices, key=lambda device: device.created)

    def _revoke_steps(self, key: str, user: str) -> Steps[_Request, bool]:
        """Unindex the session into a tombstone and bump the generation in one UpdateItem, then
        delete the session (and those of any tombstone left behind), then the tombstones."""
        names = {"#k": key}
        values: dict[str, Any] = {":one": _ONE}
        expression = "REMOVE #e.#k ADD #g :one"
        tombstone = None
        if self.is_storage_key(key):  # anything else is no session (and never a user item)
            tombstone = names["#r"] = self._new_tombstone()
            values[":gone"] = {"M": {key: {"NULL": True}}}
            expression = "SET #r = :gone " + expression
        condition = f"{_HAS_INDEX} AND {_GENERATION_OK}"
        old = yield from self._shaped_write(
            user, self._user_update(user, expression, names, values, condition=condition)
        )
        tombstones = self._tombstones_of(old)
        if tombstone is not None:
            tombstones[tombstone] = [key]
        indexed = set(self._entries_of(old)) - {key}
        ended = yield from self._finish_steps(self._user_key(user), tombstones, indexed)
        return key in ended

    def _revoke_user_steps(self, user: str, keep: str | None) -> Steps[_Request, int]:
        """First move the index (but for ``keep``) into a tombstone and bump the generation in
        one UpdateItem, then delete the sessions it held (and those of any tombstone left
        behind), then the tombstones."""
        tombstone = self._new_tombstone()
        names = {"#r": tombstone}
        old: dict[str, Any] | None = None
        indexed: set[str] = set()
        if keep is not None and self.is_storage_key(keep):
            names_read = {"#e": ENTRIES_ATTRIBUTE, "#k": keep, "#g": GENERATION_ATTRIBUTE}
            item = (yield _Call("get_item", self._user_get(user, "#e.#k, #g", names_read))).get("Item") or {}
            if not self._generation_readable(item):
                # Repaired first, so that the update below fails only when the kept entry is
                # gone (and the session with it), never to revoke the session to keep.
                yield from self._repair_steps(user, item.get(GENERATION_ATTRIBUTE))
            kept = self._entries_of(item).get(keep)
            if kept is not None:
                # An entry never changes once written, so "still there" means "still this".
                old = yield from self._user_write(
                    self._user_update(
                        user,
                        "SET #r = #e, #e = :kept ADD #g :one",
                        {**names, "#k": keep},
                        {":kept": {"M": {keep: kept}}, ":one": _ONE},
                        condition=f"attribute_exists(#e.#k) AND {_GENERATION_OK}",
                    )
                )
                indexed = {keep} if old is not None else set()
        if old is None:
            # The tombstone takes the entries' place: the item does not grow.
            empty = self._user_update(
                user,
                "SET #r = #e, #e = :empty ADD #g :one",
                names,
                {":empty": _EMPTY, ":one": _ONE},
                condition=f"{_HAS_INDEX} AND {_GENERATION_OK}",
            )
            old = yield from self._shaped_write(user, empty)
        tombstones = {**self._tombstones_of(old), tombstone: list(self._entries_of(old))}
        ended = yield from self._finish_steps(self._user_key(user), tombstones, indexed)
        return len(ended)

    def _finish_steps(
        self, user_key: dict[str, Any], tombstones: Mapping[str, list[str]], indexed: set[str]
    ) -> Steps[_Request, set[str]]:
        """Delete the sessions of these tombstones, then the tombstones; return the storage
        keys of the sessions that were live.

        A key still in the index (``indexed``, as read with the tombstones) is skipped: it is
        the session a revoke_user kept. No other key can be in both, since a key leaves the
        index for good (ids are used once)."""
        doomed = {key for keys in tombstones.values() for key in keys}
        doomed = {key for key in doomed - indexed if self.is_storage_key(key)}
        ended = yield from self._delete_sessions_steps(sorted(doomed))
        names = list(tombstones)
        for start in range(0, len(names), _PRUNE_KEYS):
            chunk = names[start : start + _PRUNE_KEYS]
            yield from self._user_write(
                {
                    "TableName": self.table,
                    "Key": user_key,
                    "UpdateExpression": "REMOVE " + ", ".join(f"#r{n}" for n in range(len(chunk))),
                    "ExpressionAttributeNames": {f"#r{n}": name for n, name in enumerate(chunk)},
                }
            )
        return ended

    def _tidy_steps(self, user_key: dict[str, Any]) -> Steps[_Request, None]:
        """Finish the tombstones of a user item and drop the entries of ended sessions."""
        item = (
            yield _Call("get_item", {"TableName": self.table, "Key": user_key, "ConsistentRead": True})
        ).get("Item")
        entries = self._entries_of(item)
        tombstones = self._tombstones_of(item)
        if tombstones:
            yield from self._finish_steps(user_key, tombstones, set(entries))
        yield from self._prune_index_steps(user_key, entries)

    def _generation_steps(self, user: str, bump: bool) -> Steps[_Request, int]:
        if bump:
            request = self._user_update(
                user,
                "SET #e = if_not_exists(#e, :empty) ADD #g :one",
                {},
                {":empty": _EMPTY, ":one": _ONE},
                condition=_GENERATION_OK,
                returning="ALL_NEW",
            )
            return self._generation_of((yield from self._shaped_write(user, request)))
        request = self._user_get(user, "#g", {"#g": GENERATION_ATTRIBUTE})
        return self._generation_of((yield _Call("get_item", request)).get("Item"))

    def _shaped_write(self, user: str, request: dict[str, Any]) -> Steps[_Request, dict[str, Any]]:
        """An UpdateItem of a user's item whose condition checks only the item's shape (an
        index map, a number generation): when that fails, the item is made or repaired and the
        update sent again."""
        for _ in range(2):
            old = yield from self._user_write(request)
            if old is not None:
                return old
            if not (yield from self._create_user_steps(user)):
                yield from self._repair_steps(user)
        raise SessionStoreError(f"DynamoDB table {self.table!r}: a user's index item cannot be repaired")

    def _create_user_steps(self, user: str) -> Steps[_Request, bool]:
        """Put the user's item with an empty index, unless it exists; True when it was made."""
        item = {**self._user_key(user), ENTRIES_ATTRIBUTE: _EMPTY, GENERATION_ATTRIBUTE: {"N": "0"}}
        try:
            yield _Call(
                "put_item",
                {
                    "TableName": self.table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(#i)",
                    "ExpressionAttributeNames": {"#i": self.idx},
                },
            )
        except _Conflict:
            return False
        return True

    def _repair_steps(self, user: str, generation: Any = None) -> Steps[_Request, None]:
        """Give a user's item, written behind the store's back, an index map and a whole number
        generation where it lacks them: what was unreadable is dropped, never raised. An
        unreadable ``generation`` as read is replaced only if it is still there."""
        repairs = [
            ("SET #e = :empty", f"NOT {_HAS_INDEX}", {":empty": _EMPTY}),
            ("SET #g = :zero", "NOT attribute_type(#g, :number)", {":zero": {"N": "0"}}),
        ]
        if isinstance(generation, dict) and isinstance(generation.get("N"), str):
            # A number, but not a whole one: move on past it, so that a regenerate which read
            # it cannot match what replaces it.
            try:
                after = int(float(generation["N"])) + 1
            except (ValueError, OverflowError):
                after = 0
            repairs.append(
                ("SET #g = :after", "#g = :seen", {":after": {"N": str(after)}, ":seen": generation})
            )
        for expression, condition, values in repairs:
            request = self._user_update(user, expression, {}, values, condition=condition, returning="NONE")
            try:
                yield _Call("update_item", request)
            except (_Conflict, _Busy):
                continue  # nothing to repair (or a binding in flight: the next try tells)
            self._corrupt_index(self._user_key(user), ValueError(f"repaired with {expression!r}"))

    def _user_write(self, request: dict[str, Any]) -> Steps[_Request, dict[str, Any] | None]:
        """An UpdateItem of a user's item: what it returned, or None when its condition failed.
        A transaction in flight on the item (a binding) makes it wait its turn."""
        for attempt in range(USER_ATTEMPTS):
            try:
                reply = yield _Call("update_item", request)
                return dict(reply.get("Attributes") or {})
            except (_Conflict, _NoIndex):
                return None
            except _Busy:
                yield _Pause(_backoff(attempt))
        raise StoreUnavailableError(f"DynamoDB table {self.table!r}: a user's index stayed busy")

    def _live_steps(self, keys: list[str]) -> Steps[_Request, dict[str, datetime | None]]:
        """Which of these storage keys hold a live session, with its expiry: BatchGetItem, 100
        keys at a time, reading the key and expiry only."""
        live: dict[str, datetime | None] = {}
        for start in range(0, len(keys), BATCH_GET_ITEMS):
            requests: dict[str, Any] = {
                self.table: {
                    "Keys": [{self.idx: {"S": key}} for key in keys[start : start + BATCH_GET_ITEMS]],
                    "ProjectionExpression": "#i, #t",
                    "ExpressionAttributeNames": self._names,
                    "ConsistentRead": True,
                }
            }
            items = yield from self._batch_steps("batch_get_item", requests, "UnprocessedKeys")
            for item in items:
                key = str(item.get(self.idx, {}).get("S", ""))
                record = self._record(key, item)
                if record is not None:
                    live[key] = record.expires
        return live

    def _delete_sessions_steps(self, keys: list[str]) -> Steps[_Request, set[str]]:
        """Delete the sessions under these storage keys; return those that were live."""
        if len(keys) == 1:  # one DeleteItem says whether it was live
            [key] = keys
            request = {"TableName": self.table, "Key": {self.idx: {"S": key}}, "ReturnValues": "ALL_OLD"}
            reply = yield _Call("delete_item", request)
            return {key} if self._record(key, reply.get("Attributes")) is not None else set()
        live = yield from self._live_steps(keys)
        for start in range(0, len(keys), BATCH_WRITE_ITEMS):
            chunk = keys[start : start + BATCH_WRITE_ITEMS]
            requests = {self.table: [{"DeleteRequest": {"Key": {self.idx: {"S": key}}}} for key in chunk]}
            yield from self._batch_steps("batch_write_item", requests, "UnprocessedItems")
        return set(live)

    def _batch_steps(
        self, operation: str, requests: dict[str, Any], unprocessed: str
    ) -> Steps[_Request, list[dict[str, Any]]]:
        """A BatchGetItem or BatchWriteItem, sending what DynamoDB left unprocessed (throttled)
        again with backoff."""
        found: list[dict[str, Any]] = []
        for attempt in range(BATCH_WRITE_ATTEMPTS):
            reply = yield _Call(operation, {"RequestItems": requests})
            found.extend(reply.get("Responses", {}).get(self.table, []))
            requests = reply.get(unprocessed) or {}
            if not requests:
                return found
            yield _Pause(min(2.0, 0.05 * 2**attempt))
        raise StoreUnavailableError(
            f"DynamoDB table {self.table!r} left items unprocessed after {BATCH_WRITE_ATTEMPTS} tries "
            "(throttled)"
        )

    def _prune_steps(self, user_key: dict[str, Any], dead: list[str]) -> Steps[_Request, None]:
        """Remove the entries of sessions found dead. A dead key never comes back (ids are
        random and used once), so the removal needs no condition but the index's shape."""
        for start in range(0, len(dead), _PRUNE_KEYS):
            chunk = dead[start : start + _PRUNE_KEYS]
            names = {"#e": ENTRIES_ATTRIBUTE, **{f"#k{n}": key for n, key in enumerate(chunk)}}
            yield from self._user_write(
                {
                    "TableName": self.table,
                    "Key": user_key,
                    "UpdateExpression": "REMOVE " + ", ".join(f"#e.#k{n}" for n in range(len(chunk))),
                    "ConditionExpression": _HAS_INDEX,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":map": _TYPE_VALUES[":map"]},
                }
            )

    def _prune_index_steps(
        self, user_key: dict[str, Any], entries: Mapping[str, Any]
    ) -> Steps[_Request, None]:
        live = yield from self._live_steps([key for key in entries if self.is_storage_key(key)])
        dead = [key for key in entries if key not in live]
        if dead:
            yield from self._prune_steps(user_key, dead)

    # -- user items: requests and what they hold -----------------------------------------------

    def _user_key(self, user: str) -> dict[str, Any]:
        return {self.idx: {"S": USER_ITEM_PREFIX + user_digest(user)}}

    def _user_get(
        self, user: str, projection: str | None = None, names: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        request = {"TableName": self.table, "Key": self._user_key(user), "ConsistentRead": True}
        if projection is not None:
            request.update(ProjectionExpression=projection, ExpressionAttributeNames=dict(names or {}))
        return request

    def _user_update(
        self,
        user: str,
        expression: str,
        names: Mapping[str, str],
        values: Mapping[str, Any] | None = None,
        *,
        condition: str | None = None,
        returning: str = "ALL_OLD",
    ) -> dict[str, Any]:
        every = {"#e": ENTRIES_ATTRIBUTE, "#g": GENERATION_ATTRIBUTE, **names}
        values = {**_TYPE_VALUES, **(values or {})}
        used = expression + " " + (condition or "")
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._user_key(user),
            "UpdateExpression": expression,
            # DynamoDB refuses names and values an expression does not use.
            "ExpressionAttributeNames": {name: value for name, value in every.items() if _uses(used, name)},
            "ReturnValues": returning,
        }
        used_values = {name: value for name, value in values.items() if _uses(used, name)}
        if used_values:
            request["ExpressionAttributeValues"] = used_values
        if condition is not None:
            request["ConditionExpression"] = condition
        return request

    def _bind(
        self,
        id: str,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> dict[str, Any]:
        condition = f"{_HAS_INDEX} AND size(#e) < :max"
        values = {":entry": marshal("entry", entry.to_json()), ":max": {"N": str(self.max_user_sessions)}}
        if generation is not None:
            condition += " AND #g = :gen"
            values[":gen"] = {"N": str(generation)}
        key = {"#k": self.storage_key(id)}
        update = self._user_update(
            user, "SET #e.#k = :entry", key, values, condition=condition, returning="NONE"
        )
        del update["ReturnValues"]  # not allowed in a transaction
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {"TransactItems": [{"Put": self._put(id, data, expires)}, {"Update": update}]}

    def _entries_of(self, item: Mapping[str, Any] | None) -> dict[str, Any]:
        """A user item's entries (storage key -> stored map); {} when there are none."""
        if not item or ENTRIES_ATTRIBUTE not in item:
            return {}
        entries = item[ENTRIES_ATTRIBUTE]
        if not isinstance(entries, dict) or not isinstance(entries.get("M"), dict):
            self._corrupt_index(item, ValueError(f"{ENTRIES_ATTRIBUTE} is not a map"))
            return {}
        return dict(entries["M"])

    def _tombstones_of(self, item: Mapping[str, Any] | None) -> dict[str, list[str]]:
        """A user item's tombstones: attribute name -> the storage keys it holds."""
        found: dict[str, list[str]] = {}
        for name, value in (item or {}).items():
            if not name.startswith(TOMBSTONE_PREFIX):
                continue
            keys = value.get("M") if isinstance(value, dict) else None
            if not isinstance(keys, dict):
                self._corrupt_index(item, ValueError(f"{name} is not a map"))
                keys = {}
            found[name] = list(keys)
        return found

    @staticmethod
    def _new_tombstone() -> str:
        return TOMBSTONE_PREFIX + secrets.token_hex(8)

    def _generation_readable(self, item: Mapping[str, Any]) -> bool:
        attribute = item.get(GENERATION_ATTRIBUTE)
        if attribute is None:
            return True  # 0, as for a user never revoked
        try:
            value = unmarshal(attribute)
        except (ValueError, TypeError, AttributeError, StopIteration):
            return False
        return isinstance(value, int) and not isinstance(value, bool)

    def _generation_of(self, item: Mapping[str, Any] | None) -> int:
        attribute = (item or {}).get(GENERATION_ATTRIBUTE)
        if attribute is None:
            return 0
        try:
            value = unmarshal(attribute)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{GENERATION_ATTRIBUTE} is {value!r}")
        except (ValueError, TypeError, AttributeError, StopIteration) as exc:
            self._corrupt_index(item, exc)
            return 0
        return value

    def _entry_in(self, item: Mapping[str, Any] | None, key: str) -> Entry | None:
        stored = self._entries_of(item).get(key)
        return None if stored is None else self._parse_entry(key, stored)

    def _parse_entry(self, key: str, stored: Any) -> Entry | None:
        try:
            entry = Entry.from_json(unmarshal(stored))
        except (ValueError, TypeError, AttributeError, StopIteration):
            entry = None
        if entry is None:
            codec.log_corrupt(f"{self.kind} user index", key, ValueError("an entry is not one"))
        return entry

    def _corrupt_index(self, item: Mapping[str, Any] | None, exc: Exception) -> None:
        name = str((item or {}).get(self.idx, {}).get("S", ""))
        codec.log_corrupt(f"{self.kind} user index", name.removeprefix(USER_ITEM_PREFIX), exc)

    def _too_large(self, whose: str) -> RecordTooLargeError:
        where = f"DynamoDB table {self.table!r}"
        if whose == "session":
            return RecordTooLargeError(f"{where}: the session is larger than DynamoDB's 400 KB item limit")
        return RecordTooLargeError(
            f"{where}: the user's index item is full (at most {self.max_user_sessions} sessions, and "
            "DynamoDB's 400 KB item limit); the sign-in is refused",
            solution="end some of the user's sessions (storage.revoke_user or storage.revoke), "
            "or keep fewer or shorter labels",
        )

    # -- running steps ---------------------------------------------------------------------------

    def _run(self, steps: Steps[_Request, T]) -> T:
        client = self._sync()

        def call(request: _Request) -> Any:
            if isinstance(request, _Pause):
                time.sleep(request.seconds)
                return None
            with self._errors():
                return getattr(client, request.operation)(**request.kwargs)

        return run_steps(steps, call)

    async def _arun(self, steps: Steps[_Request, T]) -> T:
        client = await self._async()

        async def call(request: _Request) -> Any:
            if isinstance(request, _Pause):
                await asyncio.sleep(request.seconds)
                return None
            with self._errors():
                return await getattr(client, request.operation)(**request.kwargs)

        return await arun_steps(steps, call)

    # -- maintenance ---------------------------------------------------------------------------

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Stream live items with a paginated Scan (reads the whole table: for the CLI)."""
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": self.consistent_read}
        while True:
            with self._errors():
                page = self._sync().scan(**request)
            for item in page.get("Items", []):
                id = item.get(self.idx, {}).get("S")
                if not id or str(id).startswith(USER_ITEM_PREFIX):
                    continue  # a user's index, not a session
                record = self._record(str(id), item)
                if record is not None:
                    yield str(id), record
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def count(self) -> int:
        """Live items, counted by a paginated ``Scan`` with ``Select=COUNT`` (DynamoDB reads, and
        bills, the whole table; no item travels)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "Select": "COUNT",
            "FilterExpression": "(attribute_not_exists(#t) OR #t > :now) AND NOT begins_with(#i, :user)",
            "ExpressionAttributeNames": self._names,
            "ExpressionAttributeValues": {
                ":now": {"N": repr(self.clock().timestamp())},
                ":user": {"S": USER_ITEM_PREFIX},
            },
            "ConsistentRead": self.consistent_read,
        }
        total = 0
        while True:
            with self._errors():
                page = self._sync().scan(**request)
            total += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return total
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        """A PutItem; with ``replace=False`` conditioned on no live item having the id."""
        return self.write_many([(id, Record(dict(data), expires))], replace=replace) == 1

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """Write items in the arc layout: ``BatchWriteItem`` 25 at a time (unprocessed items
        are retried with backoff), or with ``replace=False`` one conditional PutItem each,
        since a batch cannot carry conditions."""
        client = self._sync()
        written = 0
        chunk: dict[str, dict[str, Any]] = {}
        for id, record in records:
            if self.is_expired(record.expires):
                continue
            item = self._item(id, record.data, record.expires)
            if not replace:
                written += self._put_if_absent(client, item)
                continue
            if id in chunk:  # a batch may not name one key twice; the later record wins
                self._batch_write(client, list(chunk.values()))
                chunk = {}
            chunk[id] = item
            written += 1
            if len(chunk) == BATCH_WRITE_ITEMS:
                self._batch_write(client, list(chunk.values()))
                chunk = {}
        if chunk:
            self._batch_write(client, list(chunk.values()))
        return written

    def _put_if_absent(self, client: Any, item: dict[str, Any]) -> int:
        try:
            with self._errors():
                client.put_item(
                    TableName=self.table,
                    Item=item,
                    # An expired item that DynamoDB has not deleted yet is taken over.
                    ConditionExpression="attribute_not_exists(#i) OR #t <= :now",
                    ExpressionAttributeNames=self._names,
                    ExpressionAttributeValues={":now": {"N": repr(self.clock().timestamp())}},
                )
        except _Conflict:
            return 0
        return 1

    def _batch_write(self, client: Any, items: list[dict[str, Any]]) -> None:
        requests: dict[str, Any] = {self.table: [{"PutRequest": {"Item": item}} for item in items]}
        for attempt in range(BATCH_WRITE_ATTEMPTS):
            with self._errors():
                requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
            if not requests:
                return
            time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off, then send the rest
        raise StoreUnavailableError(
            f"DynamoDB table {self.table!r} left items unwritten after {BATCH_WRITE_ATTEMPTS} tries "
            "(throttled)",
            solution="raise the table's write capacity, or use a smaller --batch-size",
        )

    def purge_expired(self) -> int:
        """Delete expired items now instead of waiting for DynamoDB's TTL (a full Scan), and
        tidy the users' items the same Scan meets: drop the entries of sessions that are gone,
        and finish revocations that failed halfway.

        Each delete is conditioned on the item still being expired, so a session that was
        rolled meanwhile survives. Returns how many session items were deleted.
        """
        now = self.clock().timestamp()
        request: dict[str, Any] = {
            "TableName": self.table,
            "ProjectionExpression": "#i",
            "FilterExpression": "#t <= :now OR begins_with(#i, :user)",
            "ExpressionAttributeNames": self._names,
            "ExpressionAttributeValues": {":now": {"N": repr(now)}, ":user": {"S": USER_ITEM_PREFIX}},
        }
        client = self._sync()
        deleted = 0
        while True:
            with self._errors():
                page = client.scan(**request)
            for item in page.get("Items", []):
                key = {self.idx: item[self.idx]}
                if str(item[self.idx].get("S", "")).startswith(USER_ITEM_PREFIX):
                    self._run(self._tidy_steps(key))  # reads the whole item: its tombstones too
                    continue
                try:
                    with self._errors():
                        client.delete_item(
                            TableName=self.table,
                            Key=key,
                            ConditionExpression="#t <= :now",
                            ExpressionAttributeNames={"#t": self.ttl},
                            ExpressionAttributeValues={":now": {"N": repr(now)}},
                        )
                    deleted += 1
                except _Conflict:
                    pass
            if "LastEvaluatedKey" not in page:
                return deleted
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- requests, shared by both doors --------------------------------------------------------

    def _key(self, id: str) -> dict[str, Any]:
        return {self.idx: {"S": self.storage_key(id)}}

    def _get(self, id: str) -> dict[str, Any]:
        return {"TableName": self.table, "Key": self._key(id), "ConsistentRead": self.consistent_read}

    def _item(self, id: str, data: Mapping[str, Any], expires: datetime | None) -> dict[str, Any]:
        item = {self._check_key(k): marshal(k, v) for k, v in data.items()}
        item.update(self._key(id))
        if expires is not None:
            item[self.ttl] = {"N": str(_epoch(expires))}
        return item

    def _put(self, id: str, data: Mapping[str, Any], expires: datetime | None) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Item": self._item(id, data, expires),
            "ConditionExpression": "attribute_not_exists(#i)",
            "ExpressionAttributeNames": {"#i": self.idx},
        }

    def _live_condition(self) -> tuple[str, dict[str, Any]]:
        now = {":now": {"N": repr(self.clock().timestamp())}}
        return "attribute_exists(#i) AND (attribute_not_exists(#t) OR #t > :now)", now

    def _touch(self, id: str, touch: datetime) -> dict[str, Any]:
        condition, values = self._live_condition()
        return {
            "TableName": self.table,
            "Key": self._key(id),
            "UpdateExpression": "SET #t = :touch",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": self._names,
            "ExpressionAttributeValues": {**values, ":touch": {"N": str(_epoch(touch))}},
        }

    def _update(self, id: str, changes: Changes, expires: datetime | None) -> dict[str, Any]:
        condition, values = self._live_condition()
        names = dict(self._names)
        assignments: list[str] = []
        removals: list[str] = []
        for n, (key, value) in enumerate(changes.set.items()):
            names[f"#s{n}"] = self._check_key(key)
            values[f":s{n}"] = marshal(key, value)
            assignments.append(f"#s{n} = :s{n}")
        for n, key in enumerate(sorted(changes.removed - set(changes.set))):
            names[f"#r{n}"] = self._check_key(key)
            removals.append(f"#r{n}")
        if expires is None:
            removals.append("#t")
        else:
            values[":t"] = {"N": str(_epoch(expires))}
            assignments.append("#t = :t")
        expression = "SET " + ", ".join(assignments) if assignments else ""
        if removals:
            expression += " REMOVE " + ", ".join(removals)
        return {
            "TableName": self.table,
            "Key": self._key(id),
            "UpdateExpression": expression.strip(),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }

    def _check_key(self, key: str) -> str:
        if key in (self.idx, self.ttl) or not key:
            role = "key" if key == self.idx else "expiry" if key == self.ttl else "no"
            raise SessionStoreError(
                f"session key {key!r} cannot be stored in DynamoDB: it would overwrite the "
                f"item's {role} attribute"
                if key
                else "an empty session key cannot be stored in DynamoDB",
                solution="rename the session key, or pass idx=/ttl= names your data does not use",
            )
        return key

    def _record(self, id: str, item: Mapping[str, Any] | None) -> Record | None:
        if not item or str(item.get(self.idx, {}).get("S", "")).startswith(USER_ITEM_PREFIX):
            return None  # a user's index is never a session, whoever asks for it
        expires = None
        try:
            if self.ttl in item:
                if "N" not in item[self.ttl]:
                    # A text or boolean expiry is not one websession (or Remix) wrote.
                    raise ValueError(f"the {self.ttl} attribute is not a number")
                expires = _moment(unmarshal(item[self.ttl]))
            data = {k: unmarshal(v) for k, v in item.items() if k not in (self.idx, self.ttl)}
        except (ValueError, TypeError, OverflowError, StopIteration) as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None
        if self.is_expired(expires):
            return None
        return Record(data, expires)

    # -- clients -------------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"config": DEFAULT_CONFIG, **self.client_options}
        if self.region is not None:
            kwargs["region_name"] = self.region
        if self.endpoint_url is not None:
            kwargs["endpoint_url"] = self.endpoint_url
        return kwargs

    def _sync(self) -> Any:
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is None:
                if not self._may_open:
                    raise ConfigurationError(
                        "this DynamoDB store was given an async client only, so it has no sync door",
                        solution="pass client=boto3.client('dynamodb', ...) too, or region=/endpoint_url=",
                    )
                with self._errors():
                    self._client = boto3.session.Session().client("dynamodb", **self._client_kwargs())
                self._own_client = True
            return self._client

    async def _async(self) -> Any:
        if self._async_client is not None:
            return self._async_client
        if not self._may_open:
            raise ConfigurationError(
                "this DynamoDB store was given a sync client only, so it has no async door",
                solution="pass async_client= (an aiobotocore DynamoDB client) too, or region=/endpoint_url=",
            )
        context = get_session().create_client("dynamodb", **self._client_kwargs())
        with self._errors():
            client = await context.__aenter__()
        if self._async_client is not None:  # another request opened one meanwhile
            await context.__aexit__(None, None, None)
            return self._async_client
        self._async_client, self._async_context = client, context
        return client

    def _errors(self) -> _DynamoErrors:
        return _DynamoErrors(self.table)


class _Conflict(Exception):
    """A condition failed: the item exists (create) or is gone (update)."""


class _Cancelled(SessionStoreError):
    """A transaction was cancelled; ``reasons`` has one entry per action, in order."""

    def __init__(self, message: str, reasons: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.reasons = reasons


class _Busy(StoreUnavailableError):
    """The item is part of a transaction in flight (TransactionConflictException)."""


class _NoIndex(SessionStoreError):
    """An update named a path inside a user item's index, and the item has no index yet."""


class _Outcome(enum.Enum):
    """What a cancelled binding transaction calls for."""

    RETRY = "retry"
    REFUSED = "refused"
    BUSY = "busy"
    FULL = "full"


@dataclass(frozen=True)
class _Call:
    """One request of the client: ``client.<operation>(**kwargs)``."""

    operation: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Pause:
    """Wait before trying again (time.sleep or asyncio.sleep, by door)."""

    seconds: float


_Request = Union[_Call, _Pause]  # noqa: UP007 - a runtime alias on 3.10


class _DynamoErrors:
    """Turn botocore's errors into websession's."""

    def __init__(self, table: str) -> None:
        self.table = table

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        where = f"DynamoDB table {self.table!r}"
        if isinstance(error, ClientError):
            code = _code(error)
            message = str(error.response.get("Error", {}).get("Message", ""))
            if code == "ConditionalCheckFailedException":
                raise _Conflict() from error
            if code == "TransactionCanceledException":
                reasons = list(error.response.get("CancellationReasons") or [])
                raise _Cancelled(f"{where}: {message}", reasons) from error
            if code == "TransactionConflictException":
                raise _Busy(f"{where}: {error}") from error
            if code == "ValidationException" and "document path" in message:
                raise _NoIndex(f"{where}: {message}") from error
            if code == "ValidationException" and "size" in message and "exceeded" in message:
                raise RecordTooLargeError(
                    f"{where}: the session is larger than DynamoDB's 400 KB item limit"
                ) from error
            if code in _UNAVAILABLE_CODES:
                raise StoreUnavailableError(f"{where}: {error}") from error
            if code == "ResourceNotFoundException":
                raise SessionStoreError(
                    f"{where} does not exist",
                    solution="create it with create_dynamodb_table() or store.setup()",
                ) from error
            raise SessionStoreError(f"{where}: {error}") from error
        if isinstance(error, (ConnectionError, HTTPClientError)):
            raise StoreUnavailableError(f"{where}: {error}") from error
        if isinstance(error, BotoCoreError):
            raise SessionStoreError(f"{where}: {error}") from error


__all__ = [
    "MAX_ITEM_BYTES",
    "DynamoDBStore",
    "acreate_dynamodb_table",
    "create_dynamodb_session_storage",
    "create_dynamodb_table",
    "marshal",
    "unmarshal",
]


def create_dynamodb_session_storage(
    *,
    cookie: CookieLike = None,
    table: str,
    idx: str = "_idx",
    ttl: str = "_ttl",
    client: Any = None,
    async_client: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    client_options: Mapping[str, Any] | None = None,
    consistent_read: bool = True,
    default_ttl: float | None = None,
    touch_interval: float = 60.0,
    rolling: bool = True,
    save_uninitialized: bool = False,
    absolute_timeout: float | None = None,
    storage_key_secret: str | bytes | None = None,
    clock: Clock = utcnow,
    codec: CodecLike = None,
) -> SessionStorage:
    """Sessions in a DynamoDB table laid out as Remix's ``createArcTableSessionStorage``.

    ``idx`` and ``ttl`` name the partition-key and expiry attributes. Pass boto3 ``client=``
    and/or aiobotocore ``async_client=``, or let the store open its own from ``region``,
    ``endpoint_url`` and ``client_options`` (any ``create_client`` keyword, e.g. credentials).
    Create the table once with ``storage.store.setup()`` or :func:`create_dynamodb_table`.

    ``absolute_timeout`` (seconds) ends a session that long after its id was issued, however
    active; ``storage_key_secret`` keeps records under a keyed hash of the id, so a dump of the
    store holds no live ids (docs/security.md).

    Example (needs DynamoDB)::

        from websession import create_cookie, create_dynamodb_session_storage

        storage = create_dynamodb_session_storage(
            cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
            table="sessions", region="eu-west-1",
        )
        session = storage.get_session(None)
        session["user"] = 42
        header = storage.commit_session(session)   # PutItem, then Set-Cookie
    """
    store = DynamoDBStore(
        table=table,
        idx=idx,
        ttl=ttl,
        client=client,
        async_client=async_client,
        region=region,
        endpoint_url=endpoint_url,
        client_options=client_options,
        consistent_read=consistent_read,
        default_ttl=default_ttl,
        touch_interval=touch_interval,
        clock=clock,
        storage_key_secret=storage_key_secret,
    )
    store.explicit_ttl = default_ttl is not None  # an explicit lifetime wins over the cookie's
    return SessionStorage(
        cookie=as_cookie(cookie),
        store=store,
        rolling=rolling,
        save_uninitialized=save_uninitialized,
        absolute_timeout=absolute_timeout,
        codec=codec,
    )


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``dynamodb://sessions?region=eu-west-1&endpoint=http://localhost:8000``.

    Other options: ``idx_attribute``, ``ttl_attribute`` (attribute names, default ``_idx`` and
    ``_ttl``), ``consistent_read``, ``touch_interval``, ``ttl`` (default lifetime in seconds, as
    in every store URL). Credentials come from the usual AWS environment and config files.
    """
    if not url.netloc:
        raise ConfigurationError("a dynamodb:// URL names the table: dynamodb://TABLE?region=...")
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    lifetime = options.pop("ttl", None)
    region = options.pop("region", None)
    endpoint = options.pop("endpoint", None)
    idx = options.pop("idx_attribute", "_idx")
    ttl = options.pop("ttl_attribute", "_ttl")
    consistent = str(options.pop("consistent_read", "true")).lower() in ("1", "true", "yes")
    touch_interval = float(options.pop("touch_interval", 60.0))
    reject_unknown("dynamodb", options)
    return create_dynamodb_session_storage(
        cookie=cookie,
        table=url.netloc,
        idx=idx,
        ttl=ttl,
        region=region,
        endpoint_url=endpoint,
        consistent_read=consistent,
        default_ttl=None if lifetime is None else float(lifetime),
        touch_interval=touch_interval,
        **shared,
    )
