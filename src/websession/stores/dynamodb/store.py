"""The DynamoDB store: :class:`DynamoDBStore`, with its records' sync (boto3) and async
(aiobotocore) doors, and setup. Its other parts live beside it: the item layout and clients
(items.py), the user index (users.py, user_items.py, cleanup.py) and maintenance.

Each operation on a session is one request: ``create`` a PutItem with
``attribute_not_exists``; ``read`` a GetItem (and, when rolling moves the expiry far enough,
an UpdateItem of the expiry alone); ``update`` one UpdateItem that SETs the keys set and
REMOVEs the keys removed; ``take`` a DeleteItem returning the old item.

What DynamoDB guarantees: each of those requests is atomic on its item, and conditions on the
item existing and being unexpired make concurrent requests never undo each other nor bring back
a destroyed session; a read asked for as strongly consistent sees every acknowledged write.
What it does not: delete an item when it expires (its TTL deletes within about 48 hours), so
expiry is checked on every read and in every update's condition; hold an item over 400 KB
(RecordTooLargeError); or make two items change together outside a TransactWriteItems (which
the user index uses for a sign-in, up to 100 actions)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...changes import Changes
from ..base import Record, touch_due
from .errors import _Conflict
from .maintenance import Maintenance, acreate_dynamodb_table, create_dynamodb_table
from .users import UserIndex


class DynamoDBStore(UserIndex, Maintenance):
    """Sessions as items of a DynamoDB table in Remix's arc-table layout.

    Clients: pass ``client=`` (boto3) and/or ``async_client=`` (aiobotocore, already entered).
    A door without a client opens its own from ``region``, ``endpoint_url`` and
    ``client_options`` (e.g. credentials), unless only the other door's client was passed and
    none of those was; then that door raises :class:`~websession.errors.ConfigurationError`
    saying what to pass. Clients passed in are never closed by the store.

    ``idx`` and ``ttl`` name the partition-key and expiry attributes; ``consistent_read``
    (default True) makes reads strongly consistent; a rolling read rewrites the expiry only
    when it moves by more than ``touch_interval`` seconds (or a tenth of the lifetime).
    ``max_user_sessions`` bounds the sessions of one user (the user item stays under 400 KB).

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

    # -- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the table with TTL enabled, using this store's client (idempotent)."""
        with self._errors:
            create_dynamodb_table(self._sync(), self.table, idx=self.idx, ttl=self.ttl)

    async def asetup(self) -> None:
        """Async twin of :meth:`setup`."""
        with self._errors:
            await acreate_dynamodb_table(await self._async(), self.table, idx=self.idx, ttl=self.ttl)

    # -- the sync door -------------------------------------------------------------------------
    #
    # Written out for each door, not as plans: these are the hot paths, and a plan costs a
    # generator and a driver per request.

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        client = self._sync()
        while True:
            id = self.new_id()
            try:
                with self._errors:
                    client.put_item(**self._put(id, data, expires))
                return id
            except _Conflict:  # pragma: no cover - 128 random bits
                continue

    def read(self, id: str, touch: datetime | None) -> Record | None:
        client = self._sync()
        with self._errors:
            item = client.get_item(**self._get(id)).get("Item")
        record = self._record(id, item)
        if record is None or touch is None or not self._rolls(record, touch):
            return record
        try:
            with self._errors:
                client.update_item(**self._touch(id, touch))
        except _Conflict:
            return None
        return Record(record.data, touch)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        request = self._update(id, changes, expires)
        try:
            with self._errors:
                item = self._sync().update_item(**request).get("Attributes")
        except _Conflict:
            return None
        return self._record(id, item)

    def delete(self, id: str) -> None:
        with self._errors:
            self._sync().delete_item(TableName=self.table, Key=self._key(id))

    def take(self, id: str) -> Record | None:
        with self._errors:
            reply = self._sync().delete_item(**self._take(id))
        return self._record(id, reply.get("Attributes"))

    # -- the async door ------------------------------------------------------------------------

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        client = await self._async()
        while True:
            id = self.new_id()
            try:
                with self._errors:
                    await client.put_item(**self._put(id, data, expires))
                return id
            except _Conflict:  # pragma: no cover - 128 random bits
                continue

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        client = await self._async()
        with self._errors:
            item = (await client.get_item(**self._get(id))).get("Item")
        record = self._record(id, item)
        if record is None or touch is None or not self._rolls(record, touch):
            return record
        try:
            with self._errors:
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
            with self._errors:
                item = (await client.update_item(**request)).get("Attributes")
        except _Conflict:
            return None
        return self._record(id, item)

    async def adelete(self, id: str) -> None:
        client = await self._async()
        with self._errors:
            await client.delete_item(TableName=self.table, Key=self._key(id))

    async def atake(self, id: str) -> Record | None:
        client = await self._async()
        with self._errors:
            reply = await client.delete_item(**self._take(id))
        return self._record(id, reply.get("Attributes"))

    def _rolls(self, record: Record, touch: datetime) -> bool:
        """Whether a rolling read moves the stored expiry to ``touch``: only when it moves far
        enough (touch_interval), since each move is a write."""
        return touch_due(record.expires, touch, self.clock(), self.touch_interval)


__all__ = ["DynamoDBStore"]
