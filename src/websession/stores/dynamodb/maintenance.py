"""Maintenance of the sessions' table (the ``websession`` command): creating it, scanning,
counting, writing sessions under given ids, and purging expired ones.

What DynamoDB guarantees: a Scan pages through the whole table (each page at most 1 MB,
``LastEvaluatedKey`` naming where to go on), strongly consistent when asked; a conditional
PutItem or DeleteItem is atomic on its item, so a purge never deletes a session rolled
meanwhile and ``replace=False`` never overwrites a live one; TTL, once enabled on the expiry
attribute, deletes expired items by itself. What it does not: count without reading (and
billing) every item; carry conditions in a BatchWriteItem (25 items, each on its own, some left
unprocessed when throttled and sent again); delete on time (TTL deletes within about 48 hours),
which is why :meth:`Maintenance.purge_expired` exists even with native TTL; or create a table
at once (it is CREATING for a while). An item over 400 KB is refused (RecordTooLargeError);
nothing here needs a transaction, each item being written on its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from ...errors import SessionStoreError
from ..base import Record
from ..steps import Steps
from .cleanup import IndexCleanup
from .errors import _Conflict, code_of
from .items import USER_ITEM_PREFIX
from .plans import BATCH_WRITE_ITEMS, _Call, _Pause, _Request, arun_plan, batch_steps, run_plan


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
    run_plan(client, nullcontext(), _create_table_steps(table, idx, ttl, wait))


async def acreate_dynamodb_table(
    client: Any, table: str, *, idx: str = "_idx", ttl: str = "_ttl", wait: float = 60.0
) -> None:
    """Async twin of :func:`create_dynamodb_table`, for an aiobotocore client."""
    await arun_plan(client, nullcontext(), _create_table_steps(table, idx, ttl, wait))


def _create_table_steps(table: str, idx: str, ttl: str, wait: float) -> Steps[_Request, None]:
    spec = {
        "TableName": table,
        "KeySchema": [{"AttributeName": idx, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": idx, "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    try:
        yield _Call("create_table", spec)
    except ClientError as exc:
        if code_of(exc) != "ResourceInUseException":
            raise
    deadline = time.monotonic() + wait
    while (yield _Call("describe_table", {"TableName": table}))["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise SessionStoreError(f"DynamoDB table {table!r} did not become ACTIVE in {wait} s")
        yield _Pause(0.5)
    described = (yield _Call("describe_time_to_live", {"TableName": table}))["TimeToLiveDescription"]
    if not (
        described.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and described.get("AttributeName") == ttl
    ):
        yield _Call(
            "update_time_to_live",
            {"TableName": table, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": ttl}},
        )


class Maintenance(IndexCleanup):
    """What the ``websession`` command asks of the store; requests never call it."""

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Stream live items with a paginated Scan (reads the whole table: for the CLI)."""
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": self.consistent_read}
        for page in self._pages(request):
            for item in page.get("Items", []):
                id = item.get(self.idx, {}).get("S")
                if not id or str(id).startswith(USER_ITEM_PREFIX):
                    continue  # a user's index, not a session
                record = self._record(str(id), item)
                if record is not None:
                    yield str(id), record

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
        return sum(int(page.get("Count", 0)) for page in self._pages(request))

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
        return self._conditional(
            client.put_item,
            TableName=self.table,
            Item=item,
            # An expired item that DynamoDB has not deleted yet is taken over.
            ConditionExpression="attribute_not_exists(#i) OR #t <= :now",
            ExpressionAttributeNames=self._names,
            ExpressionAttributeValues={":now": {"N": repr(self.clock().timestamp())}},
        )

    def _conditional(self, operation: Callable[..., Any], **request: Any) -> int:
        """Send a conditional write: 1 when it was made, 0 when its condition failed."""
        try:
            with self._errors:
                operation(**request)
        except _Conflict:
            return 0
        return 1

    def _batch_write(self, client: Any, items: list[dict[str, Any]]) -> None:
        requests: dict[str, Any] = {self.table: [{"PutRequest": {"Item": item}} for item in items]}
        batch = batch_steps(
            self._where,
            self.table,
            "batch_write_item",
            requests,
            "UnprocessedItems",
            left="unwritten",
            solution="raise the table's write capacity, or use a smaller --batch-size",
        )
        run_plan(client, self._errors, batch)

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
        for page in self._pages(request):
            for item in page.get("Items", []):
                key = {self.idx: item[self.idx]}
                if str(item[self.idx].get("S", "")).startswith(USER_ITEM_PREFIX):
                    self._run(self._tidy_steps(key))  # reads the whole item: its tombstones too
                    continue
                deleted += self._conditional(
                    client.delete_item,
                    TableName=self.table,
                    Key=key,
                    ConditionExpression="#t <= :now",
                    ExpressionAttributeNames={"#t": self.ttl},
                    ExpressionAttributeValues={":now": {"N": repr(now)}},
                )
        return deleted

    def _pages(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The pages of a Scan, each requested when the one before has been used."""
        while True:
            with self._errors:
                page: dict[str, Any] = self._sync().scan(**request)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


__all__ = ["Maintenance", "acreate_dynamodb_table", "create_dynamodb_table"]
