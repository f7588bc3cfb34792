"""Tidying a user's index item: finishing revocations (deleting the sessions a tombstone
holds, then the tombstone), and dropping the entries of sessions that have ended.

What DynamoDB guarantees: a BatchGetItem with ConsistentRead sees every acknowledged write, so
a session reported gone is gone; a DeleteItem with ``ReturnValues=ALL_OLD`` says in the same
step whether there was an item. What it does not: delete an expired session at once (its TTL
deletes within about 48 hours, and never touches the user item, whose entries stay until
dropped here), make a batch atomic or complete (unprocessed keys are sent again), or let one
UpdateItem name more than 4 KB of expression (so removals go 50 at a time). A key leaves an
index for good (ids are random and used once), so removing the entry of a dead session needs no
condition but the index's shape. No transaction spans deleting the sessions and removing their
entries (one holds at most 100 actions; an index, 1000 entries), so a failure between the two
leaves a tombstone to finish, never a live session outside the index; and tidying is what keeps
the user item under 400 KB."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..steps import Steps
from .items import ENTRIES_ATTRIBUTE
from .plans import BATCH_GET_ITEMS, BATCH_WRITE_ITEMS, _Call, _Request, batch_steps
from .user_items import _HAS_INDEX, _TYPE_VALUES, UserItems

#: Index entries or tombstones removed by one UpdateItem (expressions are limited to 4 KB).
_PRUNE_KEYS = 50


class IndexCleanup(UserItems):
    """Finishing tombstones and dropping the entries of ended sessions."""

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
        yield from self._remove_steps(user_key, list(tombstones), in_index=False)
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

    def _prune_index_steps(
        self, user_key: dict[str, Any], entries: Iterable[str]
    ) -> Steps[_Request, dict[str, datetime | None]]:
        """Drop the entries (storage keys) of sessions that are no longer live; return the live
        ones with their expiry."""
        keys = list(entries)
        live = yield from self._live_steps([key for key in keys if self.is_storage_key(key)])
        dead = [key for key in keys if key not in live]
        if dead:  # the lazy half of index expiry
            yield from self._remove_steps(user_key, dead, in_index=True)
        return live

    def _remove_steps(
        self, user_key: dict[str, Any], names: list[str], *, in_index: bool
    ) -> Steps[_Request, None]:
        """REMOVE these tombstones, or (``in_index``) these entries of the index, 50 per
        UpdateItem; entries only while the index is a map."""
        for start in range(0, len(names), _PRUNE_KEYS):
            chunk = {f"#k{n}": name for n, name in enumerate(names[start : start + _PRUNE_KEYS])}
            request: dict[str, Any] = {"TableName": self.table, "Key": user_key}
            if in_index:
                request["UpdateExpression"] = "REMOVE " + ", ".join(f"#e.{path}" for path in chunk)
                request["ConditionExpression"] = _HAS_INDEX
                request["ExpressionAttributeNames"] = {"#e": ENTRIES_ATTRIBUTE, **chunk}
                request["ExpressionAttributeValues"] = {":map": _TYPE_VALUES[":map"]}
            else:
                request["UpdateExpression"] = "REMOVE " + ", ".join(chunk)
                request["ExpressionAttributeNames"] = chunk
            yield from self._user_write(request)

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
            items = yield from batch_steps(
                self._where, self.table, "batch_get_item", requests, "UnprocessedKeys"
            )
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
            yield from batch_steps(self._where, self.table, "batch_write_item", requests, "UnprocessedItems")
        return set(live)


__all__ = ["IndexCleanup"]
