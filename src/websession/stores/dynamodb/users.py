"""Users and their devices (websession.users) on DynamoDB: signing a session in, unbinding
it, listing a user's sessions, revoking one or all, and the generation counter.

A sign-in is one TransactWriteItems: the session's Put (if its id is free) and the entry's
Update of the user item (if the generation is still the one read and the index is not full),
so it is atomic. The other operations take several requests, ordered so that a failure
between any two leaves no live session outside the index: unbinding (take_for_user) deletes
the session, then its entry; revoking moves the entries into a tombstone while it bumps the
generation, deletes the sessions, then drops the tombstone. A revocation that failed halfway
raises, and is finished by a retry or by the user's next listing.

What DynamoDB guarantees: a transaction of up to 100 actions happens whole or not at all, and
its cancellation says which action failed and why (one reason per action); an UpdateItem with
``ReturnValues=ALL_OLD`` hands back the item as it was in the same atomic step. What it does
not: make two requests atomic outside a transaction (hence the orders above), queue a request
behind a transaction in flight on the same item (it is cancelled or refused; the operation
waits and tries again), or keep an item over 400 KB (a full index is tidied once, then the
sign-in is refused). Reads of the user item are strongly consistent; a session's expiry is read
from its own item, since TTL deletes it only within about 48 hours."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...errors import SessionStoreError, StoreUnavailableError
from ...users import Device, Entry, Taken
from ..base import Data
from ..steps import Steps
from .attributes import marshal
from .cleanup import IndexCleanup
from .errors import _Cancelled, _NoIndex
from .items import ENTRIES_ATTRIBUTE, GENERATION_ATTRIBUTE
from .plans import _Call, _Request, busy_pause
from .user_items import _EMPTY, _GENERATION_OK, _HAS_INDEX, _ONE, USER_ATTEMPTS

#: Cancellation reasons that go away when the transaction is sent again a little later.
_BUSY_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)


class _Outcome(enum.Enum):
    """What a cancelled binding transaction calls for."""

    RETRY = "retry"
    REFUSED = "refused"
    BUSY = "busy"
    FULL = "full"


class UserIndex(IndexCleanup):
    """The user-index operations of the store, each written once as a plan for both doors."""

    def create_for_user(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
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
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
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

    # -- the plans -----------------------------------------------------------------------------

    def _bind_steps(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
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
                yield busy_pause(attempt)
            if outcome is _Outcome.FULL:
                if tidied:
                    raise self._too_large("user index")
                yield from self._tidy_steps(self._user_key(user))
                tidied = True
        raise StoreUnavailableError(
            f"{self._where}: could not bind a session to its user after {USER_ATTEMPTS} tries "
            "(transaction conflicts)"
        )

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
        raise SessionStoreError(f"{self._where}: binding cancelled: {codes}")

    def _take_for_user_steps(self, id: str, user: str) -> Steps[_Request, Taken]:
        """First take the record, then remove the entry (reading it and the generation).

        If the second request fails, what is left is an entry without a session, which
        sessions_of drops; the other order would leave a live session out of revoke_user's
        reach. A revocation that lands between the two has already unindexed the session: the
        entry is missing, so the record taken is reported as None and never moves. One that
        lands after sees the generation move on under the move's create_for_user."""
        key = self.storage_key(id)
        reply = yield _Call("delete_item", self._take(id))
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
        live = yield from self._prune_index_steps(self._user_key(user), entries)
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


__all__ = ["UserIndex"]
