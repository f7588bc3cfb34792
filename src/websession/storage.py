"""SessionStorage: get_session, commit_session and destroy_session over any store.

One storage object has two doors: ``get_session`` / ``commit_session`` / ``destroy_session``
for sync code and ``aget_session`` / ``acommit_session`` / ``adestroy_session`` for async code.
Both doors share every decision; only the store call differs. The decisions follow the commit
table in DESIGN.md:

=================================  ======================================  =====================
situation                          store                                   Set-Cookie
=================================  ======================================  =====================
no cookie, session untouched       nothing                                 none
new session with data              create                                  id cookie
existing session, changed          update(changes), atomically             if rolling / re-sign
existing session, unchanged        touched inside read when rolling        if rolling / re-sign
destroyed                          delete                                  expired cookie
regenerated                        take the old record, create it anew     new id cookie
signed in (``session.login``)      regenerate, and index it for the user   new id cookie
=================================  ======================================  =====================

A session bound to a user (``session.login``) goes through the ``*_for_user`` store calls,
which keep the user's index in step with the record in the same atomic step (websession.users).

Example::

    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    >>> session = storage.get_session(None)
    >>> session["user"] = 7
    >>> header = storage.commit_session(session)
    >>> storage.get_session(header.split(";")[0])["user"]
    7
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic

from .changes import Changes
from .codec import CodecLike, CorruptRecordError, as_codec, log_corrupt, logger
from .cookie import Cookie, find_cookie
from .errors import CookieTooLargeError
from .ids import created_at
from .session import Data, Flash, Session
from .stores.base import Clock, Record, Store, utcnow
from .users import (
    USER_KEY,
    Device,
    Entry,
    Taken,
    UserIndexUnsupportedError,
    check_user_id,
    generation_of,
    user_of,
)

#: Browsers keep cookies up to 4096 bytes, name, value and attributes together.
MAX_COOKIE_SIZE = 4096

_LIFETIME_OPTIONS = ("max_age", "expires")
_NO_CHANGES = Changes()


class _Op(enum.Enum):
    NONE = "none"
    CREATE = "create"
    UPDATE = "update"
    REGENERATE = "regenerate"
    DELETE = "delete"


@dataclass(slots=True)
class _Step:
    """What a commit must do: one store operation and what it needs."""

    op: _Op
    header: str | None = None
    data: dict[str, Any] | None = None
    changes: Changes | None = None
    expires: datetime | None = None
    send_cookie: bool = False
    #: ``data`` as session values, when the codec stores them in another form.
    values: dict[str, Any] | None = None


@dataclass(slots=True)
class _Lookup:
    """What a Cookie header asks for: the id to read and the expiry to roll it to."""

    id: str
    touch: datetime | None
    resign: bool
    now: datetime


class _Stale:
    """The request carried a session cookie that cannot lead to a stored session."""


_STALE = _Stale()


class _StorageBase(Generic[Data, Flash]):
    """What cookie storage and store-backed storage share: the cookie and the rules."""

    def __init__(
        self,
        *,
        cookie: Cookie,
        rolling: bool = True,
        save_uninitialized: bool = False,
        clock: Clock = utcnow,
        codec: CodecLike = None,
    ) -> None:
        self.cookie = cookie
        self.rolling = rolling
        self.save_uninitialized = save_uninitialized
        self.clock = clock
        #: Which values sessions may hold, and how they are stored (:mod:`websession.codec`).
        self.codec = as_codec(codec)

    def _serialize(self, value: Any, session: Session[Data, Flash], overrides: dict[str, Any]) -> str:
        return self.cookie.serialize(value, binding=session.binding, **overrides)

    def _rolls(self, overrides: dict[str, Any]) -> bool:
        """Whether an unchanged session's cookie is re-sent: rolling with a max_age."""
        return self.rolling and self.cookie.with_overrides(overrides).max_age is not None

    def _cookie_due(self, session: Session[Data, Flash], overrides: dict[str, Any]) -> bool:
        return session.resign or bool(overrides) or self._rolls(overrides)


class SessionStorage(_StorageBase[Data, Flash]):
    """Sessions whose data lives in a :class:`~websession.stores.base.Store`; the cookie holds
    only the signed id.

    ``rolling`` (default True) refreshes the record's expiry whenever the session is used and
    re-sends the cookie with a fresh Max-Age: the record lifetime is then an idle timeout.
    ``save_uninitialized`` (default False) stores new sessions even when nothing was set in them.
    ``absolute_timeout`` (seconds) ends every session that long after its id was issued, however
    active it is; the store's expiry is never set beyond it.

    ``codec`` says which values sessions may hold: plain JSON by default (Remix-compatible),
    or ``"tagged"`` (:class:`~websession.codec.TaggedJSON`: datetime, date, UUID, Decimal,
    bytes, tuples, in Flask's tagged-JSON format). The store only ever sees JSON: values are
    converted when a commit writes them and when a read returns them (docs/codecs.md).

    ``SessionStorage[Data, Flash]`` (two TypedDicts) makes every session it returns a
    ``Session[Data, Flash]`` (docs/typed-sessions.md); a bare ``SessionStorage`` is untyped.

    Example::

        >>> from websession import create_cookie
        >>> from websession.stores.memory import MemoryStore
        >>> storage = SessionStorage(cookie=create_cookie("s", secrets=["k"]), store=MemoryStore())
        >>> storage.commit_session(storage.get_session(None)) is None
        True
        >>> from datetime import date
        >>> cookie = create_cookie("s", secrets=["k"])
        >>> tagged = SessionStorage(cookie=cookie, store=MemoryStore(), codec="tagged")
        >>> session = tagged.get_session(None)
        >>> session["since"] = date(2024, 5, 1)
        >>> tagged.get_session(tagged.commit_session(session))["since"]
        datetime.date(2024, 5, 1)
    """

    def __init__(
        self,
        *,
        cookie: Cookie,
        store: Store,
        rolling: bool = True,
        save_uninitialized: bool = False,
        absolute_timeout: float | None = None,
        codec: CodecLike = None,
    ) -> None:
        super().__init__(
            cookie=cookie,
            rolling=rolling,
            save_uninitialized=save_uninitialized,
            clock=store.clock,
            codec=codec,
        )
        self.store = store
        self.absolute_timeout = None if absolute_timeout is None else timedelta(seconds=absolute_timeout)
        cookie.warn_if_unsigned()

    def __repr__(self) -> str:
        return f"SessionStorage(cookie={self.cookie!r}, store={type(self.store).__name__})"

    # -- the sync door ---------------------------------------------------------------------

    def get_session(
        self, cookie_header: str | bytes | None = None, *, binding: str | None = None
    ) -> Session[Data, Flash]:
        """Return the session named by a Cookie header; a new one when there is none.

        No cookie means no store I/O. A cookie that does not verify, or names an unknown or
        expired id, gives a fresh session: its id is never reused. ``binding`` (a client
        fingerprint such as the user agent) must match the one the cookie was issued with.
        """
        lookup = self._lookup(cookie_header, binding)
        if not isinstance(lookup, _Lookup):
            return self._fresh(lookup, binding)
        return self._found(lookup, self.store.read(lookup.id, lookup.touch), binding)

    def commit_session(self, session: Session[Data, Flash], **overrides: Any) -> str | None:
        """Store what this request changed and return the Set-Cookie value, or None when the
        browser's cookie can stay as it is.

        ``overrides`` change cookie attributes for this response (``max_age=...``).
        """
        step = self._plan(session, overrides)
        store = self.store
        if step.op is _Op.NONE:
            return step.header
        user = self._bound_user(session)
        if step.op is _Op.DELETE:
            if session.id is not None:
                if user is None:
                    store.delete(session.id)
                else:
                    store.take_for_user(session.id, user)
            return self._expire(session, overrides)
        if step.op is _Op.UPDATE:
            assert session.id is not None and step.changes is not None and session.record is not None
            record = store.update(session.id, step.changes, step.expires, session.record)
            return self._updated(session, record, step, overrides)
        assert step.data is not None
        taken: Taken | None = None
        if step.op is _Op.REGENERATE and session.id is not None:
            taken = (
                store.take_for_user(session.id, user) if user is not None else _taken(store.take(session.id))
            )
            if taken.record is None or not self._move(session, taken.record, step):
                # Destroyed or revoked meanwhile (a sign-out in another tab): never bring it back.
                return self._expire(session, overrides)
        bind = self._binding(session, step, user, taken)
        if bind is None:
            new_id: str | None = store.create(step.data, step.expires)
        else:
            new_id = store.create_for_user(step.data, step.expires, *bind)
        if new_id is None:
            # The user was revoked while this session moved: it must not live on.
            return self._expire(session, overrides)
        return self._created(session, new_id, step, overrides)

    def destroy_session(self, session: Session[Data, Flash], **overrides: Any) -> str:
        """Delete the session's record and return a Set-Cookie value that expires the cookie."""
        session.destroy()
        header = self.commit_session(session, **overrides)
        assert header is not None
        return header

    # -- the async door --------------------------------------------------------------------

    async def aget_session(
        self, cookie_header: str | bytes | None = None, *, binding: str | None = None
    ) -> Session[Data, Flash]:
        """Async twin of :meth:`get_session`."""
        lookup = self._lookup(cookie_header, binding)
        if not isinstance(lookup, _Lookup):
            return self._fresh(lookup, binding)
        return self._found(lookup, await self.store.aread(lookup.id, lookup.touch), binding)

    async def acommit_session(self, session: Session[Data, Flash], **overrides: Any) -> str | None:
        """Async twin of :meth:`commit_session`."""
        step = self._plan(session, overrides)
        store = self.store
        if step.op is _Op.NONE:
            return step.header
        user = self._bound_user(session)
        if step.op is _Op.DELETE:
            if session.id is not None:
                if user is None:
                    await store.adelete(session.id)
                else:
                    await store.atake_for_user(session.id, user)
            return self._expire(session, overrides)
        if step.op is _Op.UPDATE:
            assert session.id is not None and step.changes is not None and session.record is not None
            record = await store.aupdate(session.id, step.changes, step.expires, session.record)
            return self._updated(session, record, step, overrides)
        assert step.data is not None
        taken: Taken | None = None
        if step.op is _Op.REGENERATE and session.id is not None:
            if user is not None:
                taken = await store.atake_for_user(session.id, user)
            else:
                taken = _taken(await store.atake(session.id))
            if taken.record is None or not self._move(session, taken.record, step):
                return self._expire(session, overrides)
        bind = self._binding(session, step, user, taken)
        if bind is None:
            new_id: str | None = await store.acreate(step.data, step.expires)
        else:
            new_id = await store.acreate_for_user(step.data, step.expires, *bind)
        if new_id is None:
            return self._expire(session, overrides)
        return self._created(session, new_id, step, overrides)

    async def adestroy_session(self, session: Session[Data, Flash], **overrides: Any) -> str:
        """Async twin of :meth:`destroy_session`."""
        session.destroy()
        header = await self.acommit_session(session, **overrides)
        assert header is not None
        return header

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await self.store.aclose()

    # -- users and their devices (websession.users) ------------------------------------------

    def sessions_of(self, user_id: str | int) -> list[Device]:
        """The sessions ``user_id`` is signed in with ("your devices"), oldest sign-in first.

        One read of the user's index plus one look at each of its sessions, never a scan of
        the store; sessions that ended meanwhile leave the index on the way.

        Example::

            >>> from websession import create_cookie, create_memory_session_storage
            >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
            >>> session = storage.get_session(None)
            >>> session.login("ada")
            >>> _ = storage.commit_session(session)
            >>> [device.key == session.id for device in storage.sessions_of("ada")]
            [True]
        """
        return self.store.sessions_of(check_user_id(user_id))

    def revoke(self, session: Session[Any, Any] | Device | str, *, user: str | int | None = None) -> bool:
        """Sign one session out, wherever it is used: delete its record and index entry.

        ``session`` is a Session, a :class:`~websession.users.Device` from :meth:`sessions_of`,
        or a session id. A request racing the revocation can neither keep the session nor
        carry it over to a new id. Returns True when a session was deleted. A storage key (ids
        hashed with ``storage_key_secret``, so a device's key too) needs ``user=``.

        Example::

            >>> from websession import create_cookie, create_memory_session_storage
            >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
            >>> session = storage.get_session(None)
            >>> session.login("ada")
            >>> _ = storage.commit_session(session)
            >>> storage.revoke(storage.sessions_of("ada")[0], user="ada"), storage.sessions_of("ada")
            (True, [])
        """
        target = self._revocation(session, user)
        if target is None:
            return False
        key, session_id, known = target
        if known is None:
            assert session_id is not None
            record = self.store.read(session_id, None)
            known = None if record is None else user_of(record.data)
            if known is None:
                return record is not None and self.store.take(session_id) is not None
        return self.store.revoke(key, known)

    def revoke_user(self, user_id: str | int, *, keep: Session[Any, Any] | Device | str | None = None) -> int:
        """Sign ``user_id`` out everywhere ("sign out everywhere"), or everywhere but ``keep``
        (the current session: "sign out everywhere else"); return how many sessions ended.

        Atomic in the store, and O(sessions of that user): a request racing it can neither
        keep nor resurrect a revoked session.

        Example::

            >>> from websession import create_cookie, create_memory_session_storage
            >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
            >>> for _ in range(3):
            ...     session = storage.get_session(None)
            ...     session.login("ada")
            ...     _ = storage.commit_session(session)
            >>> storage.revoke_user("ada", keep=session), len(storage.sessions_of("ada"))
            (2, 1)
        """
        return self.store.revoke_user(check_user_id(user_id), self._key_of(keep))

    async def asessions_of(self, user_id: str | int) -> list[Device]:
        """Async twin of :meth:`sessions_of`."""
        return await self.store.asessions_of(check_user_id(user_id))

    async def arevoke(
        self, session: Session[Any, Any] | Device | str, *, user: str | int | None = None
    ) -> bool:
        """Async twin of :meth:`revoke`."""
        target = self._revocation(session, user)
        if target is None:
            return False
        key, session_id, known = target
        if known is None:
            assert session_id is not None
            record = await self.store.aread(session_id, None)
            known = None if record is None else user_of(record.data)
            if known is None:
                return record is not None and await self.store.atake(session_id) is not None
        return await self.store.arevoke(key, known)

    async def arevoke_user(
        self, user_id: str | int, *, keep: Session[Any, Any] | Device | str | None = None
    ) -> int:
        """Async twin of :meth:`revoke_user`."""
        return await self.store.arevoke_user(check_user_id(user_id), self._key_of(keep))

    def _key_of(self, value: Session[Any, Any] | Device | str | None) -> str | None:
        """The storage key of a session, a device or an id (or a storage key as listed)."""
        if value is None:
            return None
        if isinstance(value, Device):
            return value.key
        if isinstance(value, Session):
            return None if value.id is None else self.store.storage_key(value.id)
        if self.store.is_valid_id(value):
            return self.store.storage_key(value)
        if self.store.hashes_ids and self.store.is_storage_key(value):
            return value
        return None

    def _revocation(
        self, value: Session[Any, Any] | Device | str, user: str | int | None
    ) -> tuple[str, str | None, str | None] | None:
        """(storage key, session id if known, user if known) of what ``revoke`` targets."""
        if not self.store.user_index:
            raise self.store._no_user_index()
        key = self._key_of(value)
        if key is None:
            return None
        known = None if user is None else check_user_id(user)
        session_id: str | None = None
        if isinstance(value, Session):
            session_id = value.id
            known = known or _record_user(value)
        elif isinstance(value, str) and self.store.is_valid_id(value):
            session_id = value
        elif isinstance(value, Device) and not self.store.hashes_ids and self.store.is_valid_id(value.key):
            session_id = value.key  # unhashed, a device's key is its session id
        if known is None and session_id is None:
            raise ValueError("revoking by storage key needs user=: the key does not say whose it is")
        return key, session_id, known

    def _bound_user(self, session: Session[Data, Flash]) -> str | None:
        """The user the stored session was bound to when this request read it."""
        if session.signing_in is not None and not self.store.user_index:
            # Refused before any I/O, so a sign-in never half-happens on such a store.
            raise self.store._no_user_index()
        return _record_user(session) if self.store.user_index else None

    def _binding(
        self, session: Session[Data, Flash], step: _Step, old_user: str | None, taken: Taken | None
    ) -> tuple[str, Entry, int | None] | None:
        """How a new record joins its user's index: (user, entry, generation to require)."""
        assert step.data is not None
        user = user_of(step.data) if self.store.user_index else None
        if user is None:
            return None
        now = self.clock()
        lifetime = None if step.expires is None else (step.expires - now).total_seconds()
        labels = session.signing_in
        if labels is not None or taken is None or taken.entry is None or old_user != user:
            # A sign-in: a new entry, whatever revocations came before it.
            return user, Entry(now, labels or {}, lifetime), None
        # The same signed-in session moving to a new id: it keeps its entry, and moves only if
        # no revocation of its user landed since it was taken.
        return user, Entry(taken.entry.created, taken.entry.labels, lifetime), taken.generation

    # -- decisions shared by both doors ----------------------------------------------------

    def expires_at(
        self, overrides: dict[str, Any] | None = None, session_id: str | None = None
    ) -> datetime | None:
        """When a record committed now expires: an explicit ``ttl=``, else the cookie's
        lifetime, else the store's ``default_ttl``, else never (None); never after the
        absolute timeout of ``session_id`` (or of a session created now)."""
        return self._expiry(self.clock(), overrides, session_id)

    def _expiry(
        self, now: datetime, overrides: dict[str, Any] | None, session_id: str | None
    ) -> datetime | None:
        store = self.store
        if store.explicit_ttl and store.default_ttl is not None:
            # An explicit ttl= is how long the store keeps the record (Remix's Redis `ttl`).
            expires: datetime | None = now + timedelta(seconds=store.default_ttl)
        else:
            expires = self.cookie.expires_at(now, overrides)
            if expires is None and store.default_ttl is not None:
                expires = now + timedelta(seconds=store.default_ttl)
        return self.capped(expires, now, session_id)

    def capped(self, expires: datetime | None, now: datetime, session_id: str | None) -> datetime | None:
        """``expires``, or the absolute end of ``session_id`` (a session created ``now`` when
        None) when that comes first: for integrations that compute a lifetime of their own.

        Example::

            >>> from websession import create_memory_session_storage
            >>> storage = create_memory_session_storage(absolute_timeout=60)
            >>> now = storage.clock()
            >>> storage.capped(now + timedelta(days=1), now, None) == now + timedelta(seconds=60)
            True
        """
        if self.absolute_timeout is not None:
            deadline = self._deadline(session_id, now)
            if deadline is not None and (expires is None or deadline < expires):
                expires = deadline
        return expires

    def usable_id(self, session_id: object, now: datetime) -> bool:
        """Whether an id that arrived from a client may be looked up: one the store could have
        issued and, with ``absolute_timeout``, dated and not past its end.

        Example::

            >>> from websession import create_memory_session_storage, generate_id
            >>> storage = create_memory_session_storage(absolute_timeout=60)
            >>> storage.usable_id(generate_id(), storage.clock()), storage.usable_id("x", storage.clock())
            (True, False)
        """
        if not self.store.is_valid_id(session_id):
            return False
        assert isinstance(session_id, str)
        if self.absolute_timeout is None:
            return True
        if created_at(session_id) is None:
            # An id that does not say when it was issued cannot prove it is within the
            # absolute timeout: refuse it rather than let the session live forever.
            _warn_undated_id(self.store.kind)
            return False
        deadline = self._deadline(session_id, now)
        return deadline is None or deadline > now

    def _deadline(self, session_id: str | None, now: datetime) -> datetime | None:
        """The absolute end of a session: its id's creation time plus ``absolute_timeout``."""
        if self.absolute_timeout is None:
            return None
        created = created_at(session_id) if session_id is not None else now
        return (created or now) + self.absolute_timeout

    def _lookup(self, header: str | bytes | None, binding: str | None) -> _Lookup | _Stale | None:
        verified = self.cookie.read(header, binding=binding)
        if verified is None:
            # A cookie of ours that does not verify is stale; no cookie at all is not.
            return _STALE if find_cookie(header, self.cookie.name) else None
        session_id = verified.value
        now = self.clock()
        if not self.usable_id(session_id, now):
            return _STALE  # malformed, or past its absolute timeout: not even worth a read
        touch = self._expiry(now, None, session_id) if self.rolling else None
        return _Lookup(session_id, touch, verified.stale, now)

    def _fresh(self, lookup: _Stale | None, binding: str | None) -> Session[Data, Flash]:
        session: Session[Data, Flash] = Session(codec=self.codec)
        session.stale_cookie = lookup is _STALE
        session.binding = binding
        return session

    def _found(self, lookup: _Lookup, record: Record | None, binding: str | None) -> Session[Data, Flash]:
        if record is None or (record.expires is not None and record.expires <= lookup.now):
            return self._fresh(_STALE, binding)
        codec = self.codec
        data = record.data
        if not codec.plain:
            try:
                data = codec.decode_data(data)
            except CorruptRecordError as exc:
                # Like a record the store could not decode: logged, and no session.
                log_corrupt(self.store.kind, lookup.id, exc)
                return self._fresh(_STALE, binding)
        session = Session(data, lookup.id, record=record, codec=codec)
        session.resign = lookup.resign
        session.binding = binding
        return session

    def _plan(self, session: Session[Data, Flash], overrides: dict[str, Any]) -> _Step:
        if session.destroyed:
            return _Step(_Op.DELETE)
        keeps_id = not session.is_new and not session.regenerating
        now = self.clock()
        expires = self._expiry(now, overrides, session.id if keeps_id else None)
        if expires is not None and expires <= now:
            # An already-expired lifetime: delete rather than write (never a zero TTL).
            return _Step(_Op.DELETE)
        if session.is_new:
            if session or self.save_uninitialized:
                return self._with_data(_Op.CREATE, session, expires)
            if session.stale_cookie:
                return _Step(_Op.NONE, header=self.cookie.serialize_expired(**overrides))
            return _Step(_Op.NONE)
        if session.regenerating:
            return self._with_data(_Op.REGENERATE, session, expires)
        changes = session.changes if session.modified else _NO_CHANGES
        lifetime_override = bool(overrides) and any(name in overrides for name in _LIFETIME_OPTIONS)
        if changes or lifetime_override:
            if not self.codec.plain:
                changes = self.codec.encode_changes(changes)
            return _Step(
                _Op.UPDATE, changes=changes, expires=expires, send_cookie=self._cookie_due(session, overrides)
            )
        if self._cookie_due(session, overrides):
            assert session.id is not None
            return _Step(_Op.NONE, header=self._serialize(session.id, session, overrides))
        return _Step(_Op.NONE)

    def _with_data(self, op: _Op, session: Session[Data, Flash], expires: datetime | None) -> _Step:
        """A step that writes the session's whole data (create, regenerate) in stored form."""
        data = session.data
        if self.codec.plain:
            return _Step(op, data=data, expires=expires)
        return _Step(op, data=self.codec.encode_data(data), expires=expires, values=data)

    def _move(self, session: Session[Data, Flash], taken: Record, step: _Step) -> bool:
        """Point a regenerate step at the data it moves with: this request's changes applied
        to the record as it was taken, so a concurrent update of another key is kept (changes,
        not a snapshot). False when the taken record cannot be read."""
        codec = self.codec
        if codec.plain:
            step.data = _moved(session, taken)
            return True
        # Untouched values move in their stored form, never decoded and encoded again.
        changes = codec.encode_changes(session.changes) if session.modified else _NO_CHANGES
        step.data = changes.apply(taken.data)
        try:
            step.values = codec.decode_data(step.data)
        except CorruptRecordError as exc:
            log_corrupt(self.store.kind, session.id or "", exc)
            return False
        return True

    def _created(
        self, session: Session[Data, Flash], new_id: str, step: _Step, overrides: dict[str, Any]
    ) -> str:
        assert step.data is not None
        session._committed(new_id, Record(step.data, step.expires), step.values)
        return self._serialize(new_id, session, overrides)

    def _updated(
        self, session: Session[Data, Flash], record: Record | None, step: _Step, overrides: dict[str, Any]
    ) -> str | None:
        if record is None:
            # Another request destroyed the session (or it expired): never bring it back.
            return self._expire(session, overrides)
        session_id = session.id
        assert session_id is not None
        session._committed(session_id, record, self._values(session, record))
        return self._serialize(session_id, session, overrides) if step.send_cookie else None

    def _values(self, session: Session[Data, Flash], record: Record) -> dict[str, Any] | None:
        """The data of a record an update returned, as session values (None: as stored)."""
        if self.codec.plain:
            return None
        try:
            return self.codec.decode_data(record.data)
        except CorruptRecordError as exc:
            # Another request stored what cannot be read; the write itself succeeded, so keep
            # this request's own view until the next read finds the record unreadable.
            log_corrupt(self.store.kind, session.id or "", exc)
            return session.data

    def _expire(self, session: Session[Data, Flash], overrides: dict[str, Any]) -> str:
        session._mark_destroyed()
        return self.cookie.serialize_expired(**_without_lifetime(overrides))


class CookieSessionStorage(_StorageBase[Data, Flash]):
    """Sessions whose data lives in the signed cookie itself; no server-side store.

    The cookie is the source of truth, so concurrent requests cannot be merged: the last
    response the browser receives wins. A Set-Cookie over 4096 bytes raises
    :class:`~websession.errors.CookieTooLargeError`.

    Example::

        >>> from websession import create_cookie
        >>> storage = CookieSessionStorage(cookie=create_cookie("s", secrets=["k"]))
        >>> session = storage.get_session(None)
        >>> session["n"] = 1
        >>> storage.get_session(storage.commit_session(session))["n"]
        1
    """

    #: Cookie data cannot be merged between concurrent requests.
    atomic_changes = False
    #: Where users' generations are kept (a store with a user index), so that signed-in
    #: cookies can be revoked: ``create_cookie_session_storage(revocation=...)``.
    revocation: Store | None = None

    def __repr__(self) -> str:
        return f"CookieSessionStorage(cookie={self.cookie!r})"

    def get_session(
        self, cookie_header: str | bytes | None = None, *, binding: str | None = None
    ) -> Session[Data, Flash]:
        """Return the session carried by a Cookie header; a new one when there is none, or
        when it is signed in as a user revoked since (one read of ``revocation``)."""
        session = self._open(cookie_header, binding)
        signed_in = self._signed_in(session)
        if signed_in is not None and self._revoked(session, signed_in[0].generation(signed_in[1])):
            return self._signed_out(binding)
        return session

    async def aget_session(
        self, cookie_header: str | bytes | None = None, *, binding: str | None = None
    ) -> Session[Data, Flash]:
        """Async twin of :meth:`get_session`."""
        session = self._open(cookie_header, binding)
        signed_in = self._signed_in(session)
        if signed_in is not None and self._revoked(session, await signed_in[0].ageneration(signed_in[1])):
            return self._signed_out(binding)
        return session

    def _open(self, cookie_header: str | bytes | None, binding: str | None) -> Session[Data, Flash]:
        """The session the cookie carries, without the revocation check."""
        verified = self.cookie.read(cookie_header, binding=binding)
        data = None if verified is None else self._decoded(verified.value)
        if verified is None or data is None:
            session: Session[Data, Flash] = Session(codec=self.codec)
            session.stale_cookie = bool(find_cookie(cookie_header, self.cookie.name))
        else:
            # The version is the signed text and its binding: an unchanged session is sent back
            # as it came, never re-encoded.
            record = Record(verified.value, None, (verified.signed, binding))
            session = Session(data, record=record, codec=self.codec)
            session.resign = verified.stale
        session.binding = binding
        return session

    def _decoded(self, value: Any) -> dict[str, Any] | None:
        """The session values a verified cookie carries; None when it carries none."""
        if not isinstance(value, dict):
            return None
        if self.codec.plain:
            return value
        try:
            return self.codec.decode_data(value)
        except CorruptRecordError as exc:
            logger.warning("websession: the %s cookie's data is unreadable: %s", self.cookie.name, exc)
            return None

    # -- users: revocation by generation ---------------------------------------------------

    def _signed_in(self, session: Session[Data, Flash]) -> tuple[Store, str] | None:
        """(where generations are kept, the user) of a revocable signed-in cookie session."""
        if self.revocation is None or session.is_new:
            return None
        user = user_of(session.data)
        return None if user is None else (self.revocation, user)

    def _revoked(self, session: Session[Data, Flash], current: int) -> bool:
        return generation_of(session.data) != current

    def _signed_out(self, binding: str | None) -> Session[Data, Flash]:
        session: Session[Data, Flash] = Session(codec=self.codec)
        session.stale_cookie = True  # the next commit expires the revoked cookie
        session.binding = binding
        return session

    def _unstamped(self, session: Session[Data, Flash]) -> tuple[Store, str] | None:
        """(where generations are kept, the user) of a sign-in whose cookie does not carry
        the generation yet."""
        if session.signing_in is None or self.revocation is None:
            return None
        data = session.data
        user = user_of(data)
        return None if user is None or generation_of(data) is not None else (self.revocation, user)

    def _stamp(self, session: Session[Data, Flash], user: str, generation: int) -> None:
        session[USER_KEY] = {"id": user, "gen": generation}

    def sessions_of(self, user_id: str | int) -> list[Device]:
        """Cookie sessions live in browsers: they cannot be listed."""
        raise UserIndexUnsupportedError(
            "cookie sessions live in the browsers: they cannot be listed",
            solution="keep sessions in a server-side store to list a user's devices",
        )

    def revoke(self, session: Any, *, user: str | int | None = None) -> bool:
        """One cookie session cannot be revoked on its own: see :meth:`revoke_user`."""
        raise UserIndexUnsupportedError(
            "a single cookie session cannot be revoked from the server",
            solution="revoke_user(user_id, keep=current_session) signs out every other device",
        )

    def revoke_user(self, user_id: str | int, *, keep: Session[Any, Any] | None = None) -> int:
        """Sign ``user_id`` out of every cookie session, or every one but ``keep`` (the
        current request's session, re-issued at its commit with the new generation): the
        user's generation in ``revocation`` is incremented, and cookies carrying an older one
        give a fresh session from then on. Returns 0: cookies cannot be counted.

        Example::

            >>> from websession import create_cookie, create_cookie_session_storage
            >>> from websession import create_memory_session_storage
            >>> storage = create_cookie_session_storage(
            ...     cookie=create_cookie("s", secrets=["k"]), revocation=create_memory_session_storage())
            >>> session = storage.get_session(None)
            >>> session.login("ada")
            >>> header = storage.commit_session(session).split(";")[0]
            >>> storage.get_session(header).user
            'ada'
            >>> storage.revoke_user("ada")
            0
            >>> storage.get_session(header).user is None
            True
        """
        user = check_user_id(user_id)
        generation = self._revocation_store().generation(user, bump=True)
        self._keep(keep, user, generation)
        return 0

    async def arevoke_user(self, user_id: str | int, *, keep: Session[Any, Any] | None = None) -> int:
        """Async twin of :meth:`revoke_user`."""
        user = check_user_id(user_id)
        generation = await self._revocation_store().ageneration(user, bump=True)
        self._keep(keep, user, generation)
        return 0

    async def asessions_of(self, user_id: str | int) -> list[Device]:
        """Async twin of :meth:`sessions_of`."""
        return self.sessions_of(user_id)

    async def arevoke(self, session: Any, *, user: str | int | None = None) -> bool:
        """Async twin of :meth:`revoke`."""
        return self.revoke(session, user=user)

    def _keep(self, keep: Session[Any, Any] | None, user: str, generation: int) -> None:
        if keep is not None and user_of(keep.data) == user:
            self._stamp(keep, user, generation)

    def _revocation_store(self) -> Store:
        if self.revocation is None:
            raise UserIndexUnsupportedError(
                "this cookie storage keeps no user generations, so its sessions cannot be revoked",
                solution="create_cookie_session_storage(..., revocation=<a storage with a user index>)",
            )
        return self.revocation

    def commit_session(self, session: Session[Data, Flash], **overrides: Any) -> str | None:
        """Return the Set-Cookie value carrying the session's data, or None when unchanged."""
        unstamped = self._unstamped(session)
        if unstamped is not None:
            store, user = unstamped
            self._stamp(session, user, store.generation(user))
        return self._commit(session, overrides)

    async def acommit_session(self, session: Session[Data, Flash], **overrides: Any) -> str | None:
        """Async twin of :meth:`commit_session`."""
        unstamped = self._unstamped(session)
        if unstamped is not None:
            store, user = unstamped
            self._stamp(session, user, await store.ageneration(user))
        return self._commit(session, overrides)

    def _commit(self, session: Session[Data, Flash], overrides: dict[str, Any]) -> str | None:
        if not overrides and self.rolling:
            header = self._rolled(session)
            if header is not None:
                return header
        if session.destroyed:
            return self.destroy_session(session, **overrides)
        unchanged = not session.is_new and not session.modified and not session.regenerating
        if (
            unchanged
            and not overrides
            and self.cookie.options.expires is None
            and not self._cookie_due(session, {})
        ):
            return None  # nothing to send, and no fixed expiry that could have passed
        now = self.clock()
        expires = self.cookie.expires_at(now, overrides)
        if expires is not None and expires <= now:
            return self.destroy_session(session, **overrides)
        if session.is_new and not (session or session.modified or self.save_uninitialized):
            return (
                self.cookie.serialize_expired(**_without_lifetime(overrides))
                if session.stale_cookie
                else None
            )
        if unchanged and not self._cookie_due(session, overrides):
            return None
        data = session.data
        record = session.record
        version = None if record is None else record.version
        reuse = (
            unchanged and not session.resign and isinstance(version, tuple) and version[1] == session.binding
        )
        if self.codec.plain:
            stored = data
        elif reuse and record is not None:
            stored = record.data  # unchanged: what the cookie carries already
        else:
            stored = self.codec.encode_data(data)
        if reuse:
            assert isinstance(version, tuple)
            signed = version[0]
        else:
            signed = self.cookie.sign(stored, binding=session.binding)
            version = (signed, session.binding)
        header = self.cookie.serialize_raw(signed, **overrides)
        size = len(header.encode("utf-8"))
        if size > MAX_COOKIE_SIZE:
            raise CookieTooLargeError(
                f"the {self.cookie.name!r} cookie would be {size} bytes; "
                f"browsers keep at most {MAX_COOKIE_SIZE}"
            )
        session._committed(None, Record(stored, expires, version), None if self.codec.plain else data)
        return header

    def _rolled(self, session: Session[Data, Flash]) -> str | None:
        """The Set-Cookie of an unchanged session that only rolls (its cookie has a max_age,
        and there are no overrides): the signed value it came with behind the cookie's own
        attributes, neither encoded nor signed again. None when the whole commit must decide;
        whenever this returns a header, the whole commit would return the same one."""
        record = session.record
        if record is None or session.resign or session.destroyed or session.regenerating or session.modified:
            return None
        version = record.version
        cookie = self.cookie
        if not isinstance(version, tuple) or version[1] != session.binding or cookie.options.max_age is None:
            return None
        now = self.clock()
        expires = cookie.expires_at(now)
        if expires is None or expires <= now:
            return None  # a max_age of 0: the whole commit expires the cookie
        header = cookie.serialize_raw(version[0])
        if len(header.encode("utf-8")) > MAX_COOKIE_SIZE:
            return None  # the whole commit raises
        if self.codec.plain:
            session._committed(None, Record(session.data, expires, version))
        else:
            session._committed(None, Record(record.data, expires, version), session.data)
        return header

    def destroy_session(self, session: Session[Data, Flash], **overrides: Any) -> str:
        """Return a Set-Cookie value that expires the cookie."""
        session._mark_destroyed()
        return self.cookie.serialize_expired(**_without_lifetime(overrides))

    async def adestroy_session(self, session: Session[Data, Flash], **overrides: Any) -> str:
        """Async twin of :meth:`destroy_session`."""
        return self.destroy_session(session, **overrides)

    def close(self) -> None:
        """Nothing to close."""

    async def aclose(self) -> None:
        """Nothing to close."""


_warned_undated: set[str] = set()


def _warn_undated_id(kind: str) -> None:
    if kind not in _warned_undated:
        _warned_undated.add(kind)
        logger.warning(
            "websession: absolute_timeout is set but the %s store issues ids without a creation "
            "time; such sessions are refused. Issue ids with websession.generate_id().",
            kind,
        )


def _record_user(session: Session[Any, Any]) -> str | None:
    record = session.record
    return None if record is None else user_of(record.data)


def _taken(record: Record | None) -> Taken:
    return Taken(record, None, 0)


def _moved(session: Session, taken: Record) -> dict[str, Any]:
    """The data a regenerated session moves with: this request's changes applied to the
    record as it was taken, so a concurrent update of another key is kept (changes, not a
    snapshot)."""
    return session.changes.apply(taken.data) if session.modified else dict(taken.data)


def _without_lifetime(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overrides.items() if k not in _LIFETIME_OPTIONS}


__all__ = ["MAX_COOKIE_SIZE", "CookieSessionStorage", "SessionStorage"]
