"""The store contract: four operations that every backend supplies, in sync and async.

Everything above a store (cookies, flash, expiry maths, rolling, regenerate, the commit
table) lives in :mod:`websession.storage`, once. A store only creates, reads, updates and
deletes records. ``update`` receives the request's :class:`~websession.changes.Changes` and
applies them to what is stored *now*, atomically, and never brings back a deleted record.

A store whose I/O blocks gets its async door for free: the base class runs the sync method in
a worker thread. Stores with native async clients override the ``a*`` methods.

Example (a store that keeps records in a dict, without locking)::

    class DictStore(Store):
        atomic_changes = False

        def __init__(self):
            super().__init__()
            self.records = {}

        def create(self, data, expires):
            id = self.new_id()
            self.records[id] = Record(dict(data), expires)
            return id

        def read(self, id, touch):
            return self.records.get(id)

        def update(self, id, changes, expires, seen):
            if id not in self.records:
                return None
            record = Record(changes.apply(self.records[id].data), expires)
            self.records[id] = record
            return record

        def delete(self, id):
            self.records.pop(id, None)
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, Final, TypedDict, TypeVar, Union

from ..changes import Changes
from ..errors import SessionStoreError
from ..ids import generate_id, is_valid_id
from ..users import Device, Entry, Taken, UserIndexUnsupportedError
from .steps import RoundTrips

Clock = Callable[[], datetime]
#: The session data a store is given to keep: a JSON object, as the codec encodes it.
Data = Mapping[str, Any]
_T = TypeVar("_T")

#: What a keyed storage key covers besides the id, so the same secret used elsewhere (say, to
#: sign cookies) never produces the same MAC.
STORAGE_KEY_CONTEXT = b"websession:storage-key:"
_HASHED_KEY = re.compile(r"[0-9a-f]{64}")


class StoreArguments(TypedDict, total=False):
    """What every :class:`Store` takes, whatever its backend; store constructors accept them
    as ``**shared`` and pass them on (:func:`websession.options.store_arguments` makes them
    from a factory's options)."""

    default_ttl: float | None
    clock: Clock
    storage_key_secret: str | bytes | None


class _Unset(enum.Enum):
    TOKEN = "unset"  # noqa: S105 - a sentinel, not a password


#: The default of a factory's ``ttl=`` argument: not given, so the cookie's lifetime decides.
UNSET: Final = _Unset.TOKEN
#: What a factory's ``ttl=`` accepts: seconds, None (no expiry of its own), or UNSET.
TtlOption = Union[float, None, _Unset]  # noqa: UP007 - a runtime alias on 3.10


def given_ttl(ttl: TtlOption, fallback: float | None) -> tuple[float | None, bool]:
    """A factory's ``ttl=`` as ``(default_ttl, explicit)``: an explicit number is the record's
    lifetime whatever the cookie says; UNSET falls back to ``fallback`` for cookies without a
    lifetime, and None means no lifetime of the store's own.

    Example::

        >>> given_ttl(3600, 604800), given_ttl(UNSET, 604800), given_ttl(None, 604800)
        ((3600.0, True), (604800, False), (None, False))
    """
    if isinstance(ttl, _Unset):
        return fallback, False
    if ttl is None:
        return None, False
    return float(ttl), True


def url_ttl(value: str | None) -> TtlOption:
    """The ``ttl`` option of a store URL: absent is UNSET, ``none`` or empty is None.

    Example::

        >>> url_ttl(None) is UNSET, url_ttl("none"), url_ttl("60")
        (True, None, 60.0)
    """
    if value is None:
        return UNSET
    return None if value in ("", "none") else float(value)


#: How a client library's exception becomes websession's: the exception class (called with
#: ``"<where>: <error>"``), or a function of the error and ``where`` that returns the
#: exception to raise, or None to let the original through.
Translation = Union[type[SessionStoreError], Callable[[BaseException, str], Union[BaseException, None]]]  # noqa: UP007
#: A backend's error mapping: ``(exception types, translation)`` pairs, the first match wins.
ErrorRules = tuple[tuple[Union[type[BaseException], tuple[type[BaseException], ...]], Translation], ...]  # noqa: UP007


class translate_errors:
    """Re-raise a client library's exceptions as websession's, the original kept as the cause.

    Each backend writes its :data:`ErrorRules` once; a store makes one instance per place (a
    table, a path) and enters it around every call to its client. websession's own errors
    pass through untouched. It is a class, not ``@contextmanager``, because it wraps every
    store operation and a generator-based manager costs a few microseconds each time.

    Example::

        >>> from websession.errors import StoreUnavailableError
        >>> rules = ((ConnectionError, StoreUnavailableError),)
        >>> try:
        ...     with translate_errors(rules, "my store"):
        ...         raise ConnectionRefusedError("refused")
        ... except StoreUnavailableError as error:
        ...     print(error)
        my store: refused
    """

    __slots__ = ("rules", "where")

    def __init__(self, rules: ErrorRules, where: str) -> None:
        self.rules = rules
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if error is None or isinstance(error, SessionStoreError):
            return
        for kinds, translation in self.rules:
            if isinstance(error, kinds):
                if isinstance(translation, type):
                    raise translation(f"{self.where}: {error}") from error
                translated = translation(error, self.where)
                if translated is not None:
                    raise translated from error
                return


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC: the default clock."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class Record:
    """A stored session: its data, when it expires (None: never or unknown), and a version.

    ``version`` is opaque to everything but the store that made it (a digest, a CAS token).
    """

    data: dict[str, Any]
    expires: datetime | None = None
    version: Any = None


class Store(ABC):
    """Base class of every backend. Subclasses implement create/read/update/delete.

    Class attributes tell the conformance suite (and the docs) what a store guarantees.
    """

    #: update() applies changes atomically against concurrent requests.
    atomic_changes: ClassVar[bool] = True
    #: take() removes and returns a record in one atomic step, so that a regenerate racing a
    #: destroy can never bring the session back under a new id.
    atomic_take: ClassVar[bool] = False
    #: The store expires records itself (Redis, memcached); otherwise expiry is checked on read.
    native_ttl: ClassVar[bool] = False
    #: A short name for logs and errors.
    kind: ClassVar[str] = "store"
    #: True when ``default_ttl`` was given explicitly (a factory's ``ttl=``): it is then the
    #: record's lifetime even when the cookie has one, as Remix's Redis ``ttl`` is.
    explicit_ttl: bool = False
    #: :meth:`counted` adds the round trips each operation makes (telemetry reports them).
    counts_round_trips: ClassVar[bool] = False

    def __init__(
        self,
        *,
        default_ttl: float | None = None,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        #: Record lifetime in seconds: used when the cookie sets neither max_age nor expires,
        #: and whatever the cookie says when ``explicit_ttl`` is set.
        self.default_ttl = default_ttl
        self.clock = clock
        self._key_mac: hmac.HMAC | None = None
        if storage_key_secret is not None:
            secret = (
                storage_key_secret.encode("utf-8")
                if isinstance(storage_key_secret, str)
                else bytes(storage_key_secret)
            )
            if not secret:
                raise ValueError("storage_key_secret must not be empty")
            self._key_mac = hmac.new(secret, STORAGE_KEY_CONTEXT, hashlib.sha256)

    # -- ids -------------------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh random id for a new record, stamped with this store's clock."""
        return generate_id(self.clock().timestamp())

    def is_valid_id(self, value: object) -> bool:
        """Whether ``value`` (from a cookie) is an id this store could have issued."""
        return is_valid_id(value)

    # -- storage keys ----------------------------------------------------------------------

    @property
    def hashes_ids(self) -> bool:
        """True when records are stored under a keyed hash of the id (``storage_key_secret``)."""
        return self._key_mac is not None

    def storage_key(self, id: str) -> str:
        """The key, row id, file name or item key a store keeps the record for ``id`` under.

        The id itself, unless the store was given ``storage_key_secret``: then the lowercase
        hex of HMAC-SHA256(secret, ``b"websession:storage-key:" + id``), so that a leaked dump
        of the store (a Redis RDB file, a SQL table) does not hold the ids that cookies carry.
        Every store addresses its records through this method only.

        Example::

            >>> from websession.stores.memory import MemoryStore
            >>> MemoryStore().storage_key("ab" * 20) == "ab" * 20
            True
            >>> MemoryStore(storage_key_secret="k").storage_key("ab" * 20)[:16]
            '0e99448a9416c4d3'
        """
        mac = self._key_mac
        if mac is None:
            return id
        keyed = mac.copy()
        keyed.update(id.encode("utf-8", "surrogatepass"))
        return keyed.hexdigest()

    def is_storage_key(self, value: object) -> bool:
        """Whether ``value`` (found while listing the store) is a key this store writes: a
        valid id, or a 64-character hex digest when ids are hashed."""
        if self._key_mac is None:
            return self.is_valid_id(value)
        return isinstance(value, str) and _HASHED_KEY.fullmatch(value) is not None

    # -- the sync door ---------------------------------------------------------------------

    @abstractmethod
    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        """Store ``data`` under a new id, expiring at ``expires``, and return the id."""

    @abstractmethod
    def read(self, id: str, touch: datetime | None) -> Record | None:
        """Return the live record for ``id`` or None. When ``touch`` is given, move its
        expiry there (rolling sessions), in the same round trip where the store allows."""

    @abstractmethod
    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        """Apply ``changes`` to the stored record atomically and set its expiry.

        ``seen`` is the record as this request read it. Return the record now stored, or
        None when the record is gone (deleted or expired): it must not be recreated.
        """

    @abstractmethod
    def delete(self, id: str) -> None:
        """Delete the record for ``id``; deleting a missing record is not an error."""

    def take(self, id: str) -> Record | None:
        """Remove the live record for ``id`` and return it; None when there is none.

        This is how ``regenerate`` moves a session to a new id: the new record is made from
        what was taken, so a destroy that lands first leaves nothing to move, and one that
        lands later finds nothing to delete. Stores that can do it in one atomic step (GETDEL,
        ``DELETE ... RETURNING``) override it and set ``atomic_take = True``; this default reads
        and then deletes, and a destroy between the two can still lose to the regenerate.

        Example::

            >>> from websession.stores.memory import MemoryStore
            >>> store = MemoryStore()
            >>> id = store.create({"n": 1}, None)
            >>> store.take(id).data, store.take(id)
            ({'n': 1}, None)
        """
        record = self.read(id, None)
        if record is not None:
            self.delete(id)
        return record

    def close(self) -> None:
        """Release connections and files the store opened itself."""

    # -- the async door --------------------------------------------------------------------

    #: False when the sync methods never block (the memory store): the async door then calls
    #: them directly, because a worker thread would cost far more than the call itself.
    blocking: ClassVar[bool] = True

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        if not self.blocking:
            return self.create(data, expires)
        return await asyncio.to_thread(self.create, data, expires)

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        if not self.blocking:
            return self.read(id, touch)
        return await asyncio.to_thread(self.read, id, touch)

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        if not self.blocking:
            return self.update(id, changes, expires, seen)
        return await asyncio.to_thread(self.update, id, changes, expires, seen)

    async def adelete(self, id: str) -> None:
        if not self.blocking:
            return self.delete(id)
        await asyncio.to_thread(self.delete, id)

    async def atake(self, id: str) -> Record | None:
        if not self.blocking:
            return self.take(id)
        # Through the async door's own read and delete, so stores that only hold an async
        # client need not override it.
        record = await self.aread(id, None)
        if record is not None:
            await self.adelete(id)
        return record

    async def _off_loop(self, method: Callable[..., _T], *args: Any) -> _T:
        """Call a sync method from the async door: in a worker thread, unless the store never
        blocks."""
        if not self.blocking:
            return method(*args)
        return await asyncio.to_thread(method, *args)

    async def aclose(self) -> None:
        self.close()

    # -- round trips (optional) ------------------------------------------------------------

    def counted(self, trips: RoundTrips, operation: str, *args: Any) -> Any:
        """Run the sync operation named ``operation`` (``"read"``, ``"create"``, ``"update"``,
        ``"delete"``, ``"take"``) with ``args``, adding the round trips it makes to ``trips``.

        How :mod:`websession.telemetry` learns round trips without a counter in the plain
        methods. This default counts nothing; a store that can count overrides it (and
        :meth:`acounted`) and sets ``counts_round_trips = True``.

        Example::

            >>> from websession.stores.memory import MemoryStore
            >>> from websession.stores.steps import RoundTrips
            >>> store, trips = MemoryStore(), RoundTrips()
            >>> store.counted(trips, "read", "0" * 40, None), trips.count
            (None, 0)
        """
        return getattr(self, operation)(*args)

    async def acounted(self, trips: RoundTrips, operation: str, *args: Any) -> Any:
        """Async twin of :meth:`counted`: runs ``"a" + operation``."""
        return await getattr(self, "a" + operation)(*args)

    # -- users and their devices (optional) ------------------------------------------------
    #
    # Stores that set ``user_index = True`` keep, beside the records, one index per user (the
    # storage keys of that user's sessions with an :class:`~websession.users.Entry` each) and
    # a generation counter that every revocation increments. SessionStorage drives them from
    # ``session.login`` / ``logout`` / ``regenerate`` / ``destroy`` and from ``sessions_of`` /
    # ``revoke`` / ``revoke_user``; websession.users explains the rules. The defaults raise
    # UserIndexUnsupportedError naming the store.

    #: The store keeps per-user indexes atomically with its records.
    user_index: ClassVar[bool] = False

    def create_for_user(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
    ) -> str | None:
        """Store ``data`` under a new id and add it to ``user``'s index, atomically, and return
        the id. When ``generation`` is given (a session moving to a new id), do it only if the
        user's generation still is ``generation``; otherwise store nothing and return None."""
        raise self._no_user_index()

    def take_for_user(self, id: str, user: str) -> Taken:
        """Remove the live record for ``id`` and its entry in ``user``'s index, and return
        them with the user's generation, all in one atomic step.

        A bound session without an entry has been revoked (revocations empty the index first
        and delete the records after), so its record is deleted and reported as None: this is
        what keeps a regenerate from carrying a session that is being revoked over to a new id
        on stores where the index and the record cannot change in one step (Redis Cluster,
        DynamoDB). Stores that can, do both in one step anyway."""
        raise self._no_user_index()

    def sessions_of(self, user: str) -> list[Device]:
        """The user's live sessions, oldest sign-in first. Entries whose record is gone or
        expired are dropped from the index on the way (the lazy half of index expiry)."""
        raise self._no_user_index()

    def revoke(self, key: str, user: str) -> bool:
        """Delete the session stored under storage key ``key`` and its entry in ``user``'s
        index, and increment the user's generation, atomically; True when a record was
        deleted. The generation step is what stops a regenerate of that very session, racing
        this call, from carrying it over to a new id."""
        raise self._no_user_index()

    def revoke_user(self, user: str, keep: str | None) -> int:
        """Delete every session in ``user``'s index except the one under storage key ``keep``,
        empty the index but for it, and increment the user's generation, atomically; return
        how many sessions were deleted."""
        raise self._no_user_index()

    def generation(self, user: str, *, bump: bool = False) -> int:
        """The user's generation (0 for a user never revoked); with ``bump``, increment it
        first. Cookie storages keep their revocations here."""
        raise self._no_user_index()

    async def acreate_for_user(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
    ) -> str | None:
        return await self._off_loop(self.create_for_user, data, expires, user, entry, generation)

    async def atake_for_user(self, id: str, user: str) -> Taken:
        return await self._off_loop(self.take_for_user, id, user)

    async def asessions_of(self, user: str) -> list[Device]:
        return await self._off_loop(self.sessions_of, user)

    async def arevoke(self, key: str, user: str) -> bool:
        return await self._off_loop(self.revoke, key, user)

    async def arevoke_user(self, user: str, keep: str | None) -> int:
        return await self._off_loop(self.revoke_user, user, keep)

    async def ageneration(self, user: str, *, bump: bool = False) -> int:
        return await self._off_loop(lambda: self.generation(user, bump=bump))

    def _no_user_index(self) -> UserIndexUnsupportedError:
        return UserIndexUnsupportedError(f"the {self.kind} store cannot keep a per-user index atomically")

    # -- maintenance (optional) ------------------------------------------------------------
    #
    # The `websession` command (stats, ls, show, rm, purge, migrate) is built on these hooks.
    # Requests never call them. A store that lacks one keeps the default, which raises
    # NotImplementedError naming the store, and the command reports that in one line. They
    # are sync only: maintenance runs in scripts, not in request handlers.

    #: count() answers from an index or a counter, without reading every record, so the CLI
    #: may call it to size a progress bar before a scan.
    cheap_count: ClassVar[bool] = False

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Yield ``(id, record)`` for every live record of this store, streaming.

        The contract every store keeps:

        - Memory stays bounded by one page of results: use a cursor, keyset pagination or
          ``SCAN MATCH <prefix>*`` (never ``KEYS``), and only this store's namespace (its
          prefix, table or directory).
        - ``record.expires`` is filled in; a store with native TTL reads it from the server
          (``PTTL``), because ``migrate`` and ``stats`` rely on it. None means no expiry.
        - Scanning does not touch records (no rolling) and skips expired and corrupt ones
          (``codec.log_corrupt``).
        - Records written during a scan may be missed, and an id may be yielded twice (Redis
          SCAN does this): callers must be idempotent.
        - When ids are hashed (``storage_key_secret``) they cannot be recovered: the first item
          of each pair is the storage key instead (which no cookie carries, so ``migrate``
          cannot copy such sessions out, by design).

        Example::

            >>> from websession.stores.memory import MemoryStore
            >>> store = MemoryStore()
            >>> id = store.create({"n": 1}, None)
            >>> [(found == id, record.data) for found, record in store.scan()]
            [(True, {'n': 1})]
        """
        raise NotImplementedError(f"the {self.kind} store cannot list its records")

    def count(self) -> int:
        """How many live records the store holds. The default counts a :meth:`scan`.

        Stores that can count cheaply override it and set ``cheap_count = True``.

        Example::

            >>> from websession.stores.memory import MemoryStore
            >>> store = MemoryStore()
            >>> _ = store.create({"n": 1}, None)
            >>> store.count()
            1
        """
        return sum(1 for _ in self.scan())

    def peek(self, id: str) -> Record | None:
        """The live record for ``id`` as :meth:`scan` would report it: not touched, with
        ``expires`` filled in (what ``websession show`` prints).

        ``read(id, None)`` may leave ``expires`` as None when the store would need another
        command to learn it (Redis answers ``GET`` without the TTL). The default is that read;
        stores whose read does not report the expiry override it.

        Example::

            >>> from websession.stores.memory import MemoryStore
            >>> store = MemoryStore()
            >>> store.peek(store.create({"n": 1}, None)).data, store.peek("0" * 32)
            ({'n': 1}, None)
        """
        return self.read(id, None)

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        """Store ``data`` under a given ``id`` expiring at ``expires``: how ``migrate`` copies
        sessions between stores without changing their ids (users stay signed in).

        The contract:

        - ``id`` is one this store accepts (the caller checks :meth:`is_valid_id`); a store
          whose keys are built from ids may raise ``ValueError`` for any other.
        - ``expires`` is absolute, so the remaining lifetime carries over; None means no
          expiry. An ``expires`` that has already passed writes nothing and returns False
          (never a zero or negative TTL).
        - ``replace=False`` keeps a live record already stored under ``id`` and returns False.
        - The data is encoded with :mod:`websession.codec`, as ``create`` would; a record over
          the store's item limit raises ``RecordTooLargeError``.
        - Returns True when the record was written.

        Example::

            >>> from websession.stores.memory import MemoryStore
            >>> store = MemoryStore()
            >>> store.write("0" * 32, {"n": 1}, None), store.write("0" * 32, {"n": 2}, None, replace=False)
            (True, False)
            >>> store.read("0" * 32, None).data
            {'n': 1}
        """
        raise NotImplementedError(f"the {self.kind} store cannot write records under given ids")

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """:meth:`write` each ``(id, record)`` and return how many were written.

        The caller bounds the batch (``migrate`` sends a few hundred at a time). The default
        calls :meth:`write` once per record; stores override it to spend one round trip or one
        transaction per batch (a pipeline, ``executemany``, ``BatchWriteItem``).

        Example::

            >>> from websession.stores.memory import MemoryStore
            >>> MemoryStore().write_many([("0" * 32, Record({"n": 1})), ("1" * 32, Record({}))])
            2
        """
        return sum(
            1 for id, record in records if self.write(id, record.data, record.expires, replace=replace)
        )

    def purge_expired(self) -> int:
        """Delete expired records and return how many; a no-op on stores with native TTL.

        Stores without native TTL (file, SQL) override it and delete in batches, so a purge
        of millions of rows neither holds a long lock nor loads every id; so does DynamoDB,
        whose native TTL deletes expired items only within a day or two. The default returns
        0 for stores with native TTL and raises NotImplementedError for the others.
        """
        if self.native_ttl:
            return 0
        raise NotImplementedError(f"the {self.kind} store cannot purge expired records")

    # -- helpers for subclasses ------------------------------------------------------------

    def seconds_until(self, expires: datetime | None) -> int | None:
        """Whole seconds from now until ``expires``, rounded up and at least 1; None: never."""
        if expires is None:
            return None
        seconds = (expires - self.clock()).total_seconds()
        return max(1, int(seconds + 0.999))

    def is_expired(self, expires: datetime | None) -> bool:
        """True when ``expires`` is in the past by this store's clock."""
        return expires is not None and expires <= self.clock()


def touch_due(current: datetime | None, touch: datetime, now: datetime, interval: float) -> bool:
    """Whether a rolling read should rewrite a stored expiry (for stores where that is a write).

    It moves when it would move by more than ``interval`` seconds or a tenth of the session's
    lifetime, whichever is smaller, so short sessions roll precisely and long ones are not
    rewritten on every request.

    Example::

        >>> from datetime import timedelta
        >>> t = utcnow()
        >>> touch_due(t + timedelta(days=7), t + timedelta(days=7, seconds=5), t, 60)
        False
        >>> touch_due(t + timedelta(seconds=2), t + timedelta(seconds=4), t, 60)
        True
    """
    if current is None:
        return True
    threshold = min(interval, (touch - now).total_seconds() / 10)
    return abs((touch - current).total_seconds()) > threshold
