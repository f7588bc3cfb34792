"""The table, its clients, and a session's item: the requests that write one and how one is
read back. :class:`ItemTable` is what every part of the DynamoDB store builds on.

A session is one item in Remix's arc-table layout: the partition key attribute ``idx`` holds
its storage key, every session key is a top-level attribute, and the ``ttl`` attribute holds
the expiry in epoch seconds. A key equal to ``idx`` or ``ttl`` (or empty) is refused, since it
would overwrite the item's key or expiry.

What DynamoDB guarantees: a PutItem or UpdateItem with a condition is atomic on its item, so a
create never overwrites and an update conditioned on the item being there and unexpired never
brings back a destroyed session; one UpdateItem applies its SET and REMOVE together, so
concurrent requests changing different keys never undo each other; a GetItem with
ConsistentRead (asked for unless ``consistent_read=False``) sees every acknowledged write. What
it does not: delete an item when its TTL passes (typically within 48 hours, not at once), so
expiry is checked on every read and in every update's condition; or hold an item over 400 KB;
or change two items together but in a TransactWriteItems (up to 100 actions), which only a
sign-in uses.

Example (needs DynamoDB, so not run as a doctest)::

    store = DynamoDBStore(table="sessions", region="eu-west-1")
    store.read(id, None)    # one strongly consistent GetItem
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from aiobotocore.session import get_session
from botocore.config import Config

from ... import codec
from ...changes import Changes
from ...errors import ConfigurationError, SessionStoreError
from ..base import Record, Store, StoreArguments, translate_errors

if TYPE_CHECKING:
    from typing_extensions import Unpack
from ..steps import Steps
from .attributes import epoch, marshal, moment, unmarshal
from .errors import RULES, table_name
from .plans import _Request, arun_plan, run_plan

#: Used when the store opens its own clients: fail fast, so a request answers 503 in seconds.
DEFAULT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})

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

T = TypeVar("T")


class ItemTable(Store):
    """A DynamoDB table of session items, with its clients: what the store's parts share."""

    kind = "dynamodb"

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
        touch_interval: float = 60.0,
        **shared: Unpack[StoreArguments],
    ) -> None:
        super().__init__(**shared)
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
        #: How errors name the table, and the one (stateless) translator every call runs in.
        self._where = table_name(table)
        self._errors = translate_errors(RULES, self._where)

    def __repr__(self) -> str:
        return f"DynamoDBStore(table={self.table!r}, idx={self.idx!r}, ttl={self.ttl!r})"

    # -- a session's item: requests ------------------------------------------------------------

    def _key(self, id: str) -> dict[str, Any]:
        return {self.idx: {"S": self.storage_key(id)}}

    def _get(self, id: str) -> dict[str, Any]:
        return {"TableName": self.table, "Key": self._key(id), "ConsistentRead": self.consistent_read}

    def _take(self, id: str) -> dict[str, Any]:
        # DeleteItem hands back the item it deleted: one atomic request.
        return {"TableName": self.table, "Key": self._key(id), "ReturnValues": "ALL_OLD"}

    def _item(self, id: str, data: Mapping[str, Any], expires: datetime | None) -> dict[str, Any]:
        item = {self._check_key(k): marshal(k, v) for k, v in data.items()}
        item.update(self._key(id))
        if expires is not None:
            item[self.ttl] = epoch(expires)
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
            "ExpressionAttributeValues": {**values, ":touch": epoch(touch)},
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
            values[":t"] = epoch(expires)
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

    # -- a session's item: reading it ----------------------------------------------------------

    def _record(self, id: str, item: Mapping[str, Any] | None) -> Record | None:
        if not item or str(item.get(self.idx, {}).get("S", "")).startswith(USER_ITEM_PREFIX):
            return None  # a user's index is never a session, whoever asks for it
        expires = None
        try:
            if self.ttl in item:
                if "N" not in item[self.ttl]:
                    # A text or boolean expiry is not one websession (or Remix) wrote.
                    raise ValueError(f"the {self.ttl} attribute is not a number")
                expires = moment(unmarshal(item[self.ttl]))
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
                with self._errors:
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
        with self._errors:
            client = await context.__aenter__()
        if self._async_client is not None:  # another request opened one meanwhile
            await context.__aexit__(None, None, None)
            return self._async_client
        self._async_client, self._async_context = client, context
        return client

    def close(self) -> None:
        with self._lock:
            if self._own_client and self._client is not None:
                self._client.close()
                self._client, self._own_client = None, False

    async def aclose(self) -> None:
        context, self._async_context = self._async_context, None
        if context is not None:
            self._async_client = None
            await context.__aexit__(None, None, None)
        self.close()

    # -- running plans (websession.stores.dynamodb.plans) ---------------------------------------

    def _run(self, plan: Steps[_Request, T]) -> T:
        return run_plan(self._sync(), self._errors, plan)

    async def _arun(self, plan: Steps[_Request, T]) -> T:
        return await arun_plan(await self._async(), self._errors, plan)


__all__ = [
    "DEFAULT_CONFIG",
    "ENTRIES_ATTRIBUTE",
    "GENERATION_ATTRIBUTE",
    "TOMBSTONE_PREFIX",
    "USER_ITEM_PREFIX",
    "ItemTable",
]
