"""A user's index item: the requests that read and change it, what it holds, and how a
damaged one is repaired.

Each signed-in user has one item in the sessions' table, keyed ``"user#" +
user_digest(user)``, holding a map ``entries`` (storage key -> entry), a number
``generation`` that every revocation increments, and the tombstones of revocations under way
(``revoked#<random>``: storage key -> entry). It carries no ``ttl`` attribute, so DynamoDB's
TTL never deletes it: the generation must outlive the sessions.

What DynamoDB guarantees: an UpdateItem is atomic on the item, so adding or removing one entry
and bumping the generation never lose a concurrent change, and a condition on the item's shape
(``attribute_type``) is checked in the same step. What it does not: keep the item under 400 KB
for us (hence :data:`MAX_USER_SESSIONS`), accept expression names or values an expression does
not use, or wait for a binding transaction in flight on the item (the update fails, and is sent
again after a pause). An item written behind the store's back may have any shape: it is
repaired, never an error a request sees. Reads of it are strongly consistent, so each step sees
the one before; a sign-in changes it together with the session's item in one TransactWriteItems
(two of the up to 100 actions allowed), and nothing else keeps it in step with the sessions:
cleanup.py drops what has drifted."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from ... import codec
from ...errors import RecordTooLargeError, SessionStoreError, StoreUnavailableError
from ...users import Entry, user_digest
from ..steps import Steps
from .attributes import unmarshal
from .errors import _Busy, _Conflict, _NoIndex, session_too_large
from .items import ENTRIES_ATTRIBUTE, GENERATION_ATTRIBUTE, TOMBSTONE_PREFIX, USER_ITEM_PREFIX, ItemTable
from .plans import _Call, _Request, busy_pause

#: Sessions one user may hold at a time. A typical entry (a storage key, the sign-in time, the
#: lifetime and a short label) takes about 100 to 250 bytes of the user item, so 1000 of them
#: stay well under DynamoDB's 400 KB item limit; a sign-in past it is refused.
MAX_USER_SESSIONS = 1000
#: How many times an operation on a user item is tried while transactions conflict on it.
USER_ATTEMPTS = 8

_ONE: dict[str, Any] = {"N": "1"}
_EMPTY: dict[str, Any] = {"M": {}}
#: Conditions on a user item's shape. Its index must be a map to add to or remove from, and
#: its generation a number to ADD to; an item damaged behind the store's back fails them and
#: is repaired (never an error a request sees).
_HAS_INDEX = "attribute_type(#e, :map)"
_GENERATION_OK = "(attribute_not_exists(#g) OR attribute_type(#g, :number))"
_TYPE_VALUES: dict[str, Any] = {":map": {"S": "M"}, ":number": {"S": "N"}}


def _uses(expression: str, placeholder: str) -> bool:
    """Whether an expression names ``placeholder`` (``#k`` is not ``#k0``)."""
    return re.search(re.escape(placeholder) + r"(?![A-Za-z0-9_])", expression) is not None


class UserItems(ItemTable):
    """The requests on users' index items, and reading what they hold."""

    #: At most this many sessions per user (the user item must stay under 400 KB).
    max_user_sessions: int = MAX_USER_SESSIONS

    # -- requests ------------------------------------------------------------------------------

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
                yield busy_pause(attempt)
        raise StoreUnavailableError(f"{self._where}: a user's index stayed busy")

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
        raise SessionStoreError(f"{self._where}: a user's index item cannot be repaired")

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

    # -- what a user item holds ----------------------------------------------------------------

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
        if whose == "session":
            return session_too_large(self._where)
        return RecordTooLargeError(
            f"{self._where}: the user's index item is full (at most {self.max_user_sessions} sessions, "
            "and DynamoDB's 400 KB item limit); the sign-in is refused",
            solution="end some of the user's sessions (storage.revoke_user or storage.revoke), "
            "or keep fewer or shorter labels",
        )


__all__ = ["MAX_USER_SESSIONS", "USER_ATTEMPTS", "UserItems"]
