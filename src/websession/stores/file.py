"""The file store: one JSON file per session, in Remix's ``createFileSessionStorage`` layout.

A record for id ``0123abcd…`` lives at ``dir/0123/abcd…`` and holds
``{"data": {...}, "expires": "2026-11-23T06:48:31.890Z"}``. Writes go to a temporary file that
is renamed over the record, so a reader (or a crash) never sees half a file. Changes are
applied under an exclusive lock per shard directory, so concurrent requests, in threads or in
other processes, never undo each other. Ids are validated before any path is built, so no
cookie can name a file outside ``dir``.

Users and their devices (websession.users): each signed-in user has one index file,
``dir/.users/<d[:2]>/<d>.json`` where ``d`` is :func:`~websession.users.user_digest` of the user,
holding ``{"generation": n, "entries": {storage key: entry}}``. The hidden ``.users`` directory
is never mistaken for a shard of session files. Every change to an index is made under the lock
of its directory, and an operation that also touches records takes the record's shard lock
inside it (index first, then record, always in that order, so two operations never deadlock):
binding, unbinding and revoking are each one atomic step. An index file that cannot be read
is set aside as ``<name>.corrupt-<time>`` and its user treated as revoked: every session
bound to the user is ended and the generation moves past any value the file could have held.

Example::

    >>> import tempfile
    >>> from websession import create_cookie, create_file_session_storage
    >>> cookie = create_cookie("s", secrets=["k"])
    >>> storage = create_file_session_storage(cookie=cookie, dir=tempfile.mkdtemp())
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult

from .. import codec
from ..changes import Changes
from ..codec import CodecLike
from ..cookie import CookieLike, as_cookie
from ..errors import ConfigurationError, SessionStoreError
from ..ids import generate_remix_file_id, is_remix_file_id
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options, url_path
from ..users import Device, Entry, Taken, user_digest, user_of
from ._entries import fresh_generation
from .base import Clock, Record, Store, touch_due, utcnow

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_LOCK_NAME = ".lock"
#: The directory of the per-user indexes: hidden, and not four characters long, so listing the
#: store's shards (scan, count, purge) never takes it for one.
USERS_DIR = ".users"
#: A temporary file this old (seconds) was left by a writer that died.
_ABANDONED_AFTER = 3600


def format_expires(expires: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as JavaScript's ``toISOString``.

    Example::

        >>> format_expires(datetime(2026, 11, 23, 6, 48, 31, 890123, tzinfo=timezone.utc))
        '2026-11-23T06:48:31.890Z'
    """
    utc = expires.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_expires(text: str) -> datetime:
    """Parse :func:`format_expires` output (and any ISO 8601 time with an offset)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("expires has no timezone")
    return parsed


class FileStore(Store):
    """Records as files under ``dir``; expiry checked on read; ``purge_expired()`` cleans up.

    ``touch_interval`` limits rolling rewrites: a read moves the stored expiry only when it
    would move by more than this (or a tenth of the lifetime, if smaller), so a busy session is
    not rewritten on every request.

    ``remix_ids=True`` shares a directory with Remix's ``createFileSessionStorage``: it accepts
    and keeps Remix's 16-hex ids and issues them for new sessions (Remix reads no other), at 64
    random bits instead of 128. websession's own 40-hex ids stay readable.
    """

    kind = "file"
    atomic_take = True
    user_index = True

    def __init__(
        self,
        dir: str | os.PathLike[str],
        *,
        default_ttl: float | None = None,
        touch_interval: float = 60.0,
        fsync: bool = False,
        remix_ids: bool = False,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret)
        if remix_ids and storage_key_secret is not None:
            raise ConfigurationError(
                "remix_ids shares files with Remix, which names them by the id itself",
                solution="drop storage_key_secret, or remix_ids",
            )
        self.remix_ids = remix_ids
        self.dir = Path(dir)
        self.touch_interval = touch_interval
        self.fsync = fsync
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def __repr__(self) -> str:
        return f"FileStore({str(self.dir)!r})"

    def new_id(self) -> str:
        return generate_remix_file_id() if self.remix_ids else super().new_id()

    def is_valid_id(self, value: object) -> bool:
        return super().is_valid_id(value) or (self.remix_ids and is_remix_file_id(value))

    def path_of(self, id: str) -> Path:
        """Where the record for a valid id lives (under its keyed hash with ``storage_key_secret``)."""
        return self._key_path(self.storage_key(id))

    def _key_path(self, key: str) -> Path:
        return self.dir / key[:4] / key[4:]

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        while True:
            id = self.new_id()
            path = self.path_of(id)
            with self._locked(path.parent):
                if not path.exists():  # pragma: no branch - 128 random bits
                    self._write(path, data, expires)
                    return id

    def read(self, id: str, touch: datetime | None) -> Record | None:
        path = self.path_of(id)
        record = self._load(path, id)
        if record is None:
            return None
        if touch is not None and touch_due(record.expires, touch, self.clock(), self.touch_interval):
            with self._locked(path.parent):
                current = self._load(path, id)
                if current is None:
                    return None
                self._write(path, current.data, touch)
                return Record(current.data, touch)
        return record

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        path = self.path_of(id)
        with self._locked(path.parent):
            current = self._load(path, id)
            if current is None:
                return None
            data = changes.apply(current.data)
            self._write(path, data, expires)
        return Record(data, expires)

    def delete(self, id: str) -> None:
        path = self.path_of(id)
        # Under the shard lock: an update that loaded the record before this unlink would
        # otherwise rename its new version over the hole and bring the session back.
        with self._locked(path.parent), contextlib.suppress(FileNotFoundError):
            path.unlink()

    def take(self, id: str) -> Record | None:
        return self._take_key(self.storage_key(id))

    # -- users and their devices ------------------------------------------------------------

    def index_path(self, user: str) -> Path:
        """The index file of ``user``: ``dir/.users/<d[:2]>/<d>.json``, ``d`` its digest.

        Example::

            >>> import tempfile
            >>> store = FileStore(tempfile.mkdtemp())
            >>> store.index_path("ada").relative_to(store.dir).parts[:2]
            ('.users', 'd1')
        """
        digest = user_digest(user)
        return self.dir / USERS_DIR / digest[:2] / f"{digest}.json"

    def create_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        path = self.index_path(user)
        with self._locked(path.parent):
            index = self._load_index(path)
            if generation is not None and index.generation != generation:
                return None
            id = self.create(data, expires)
            try:
                index.entries[self.storage_key(id)] = entry.to_json()
                self._save_index(path, index)
            except BaseException:
                self.delete(id)  # an unindexed session would escape revoke_user
                raise
        return id

    def take_for_user(self, id: str, user: str) -> Taken:
        key = self.storage_key(id)
        path = self.index_path(user)
        with self._locked(path.parent):
            index = self._load_index(path)
            # The record before the entry: if either fails, the session is gone or still
            # indexed, never alive out of revoke_user's reach.
            record = self._take_key(key)
            present = key in index.entries
            stored = index.entries.pop(key, None)
            if present:
                self._save_index(path, index)
        entry = self._entry(path, key, stored) if present else None
        if entry is None:
            return Taken(None, None, index.generation)  # no entry: revoked, whatever is left of it
        return Taken(record, entry, index.generation)

    def sessions_of(self, user: str) -> list[Device]:
        path = self.index_path(user)
        now = self.clock()
        # An index is replaced by rename, so it is read without the lock; only pruning (or a
        # damaged file) takes it.
        index = self._peek_index(path)
        devices: list[Device] = []
        dead: list[str] = []
        for key, stored in index.entries.items():
            record = self._load(self._key_path(key), key)
            if record is None:
                dead.append(key)
                continue
            entry = self._entry(path, key, stored)
            if entry is not None:
                # An unreadable entry is not listed, but stays while its session lives, so
                # revoke_user still ends it.
                devices.append(entry.device(key, record.expires, now))
        if dead:
            self._prune(path, dead)
        return sorted(devices, key=lambda device: device.created)

    def revoke(self, key: str, user: str) -> bool:
        path = self.index_path(user)
        with self._locked(path.parent):
            index = self._load_index(path)
            # Not a key this store writes: no file to delete. The record goes before the entry,
            # so a failure leaves it indexed, for the retry to reach.
            taken = self._take_key(key) if self.is_storage_key(key) else None
            index.generation += 1
            index.entries.pop(key, None)
            self._save_index(path, index)
            return taken is not None

    def revoke_user(self, user: str, keep: str | None) -> int:
        path = self.index_path(user)
        with self._locked(path.parent):
            index = self._load_index(path)
            # The records first, the index after, all under the index lock: a regenerate of one
            # of these sessions waits, then finds its entry gone and its record deleted, and a
            # failure on the way leaves every session not yet deleted in the index, for the
            # retry to reach (a revocation raises, and retrying it completes it).
            doomed = [key for key in index.entries if key != keep]
            ended = sum(1 for key in doomed if self._take_key(key) is not None)
            index.generation += 1
            index.entries = {key: value for key, value in index.entries.items() if key == keep}
            self._save_index(path, index)
            return ended

    def generation(self, user: str, *, bump: bool = False) -> int:
        path = self.index_path(user)
        if not bump:
            return self._peek_index(path).generation
        with self._locked(path.parent):
            index = self._load_index(path)
            index.generation += 1
            self._save_index(path, index)
            return index.generation

    def _prune(self, path: Path, dead: list[str]) -> None:
        """Drop the entries of sessions found dead from the index at ``path``. A dead key never
        comes back (ids are random and used once), so no re-check is needed under the lock."""
        with self._locked(path.parent):
            index = self._load_index(path)
            present = [key for key in dead if key in index.entries]
            for key in present:
                del index.entries[key]
            if present:
                self._save_index(path, index)

    def _entry(self, path: Path, key: str, stored: Any) -> Entry | None:
        entry = Entry.from_json(stored)
        if entry is None:
            self._corrupt_index(path, ValueError(f"the entry for {key[:8]}… is not one"))
        return entry

    def _load_index(self, path: Path) -> _UserIndex:
        """The index at ``path``, read under its directory's lock; empty when there is none. A
        file that cannot be read is recovered first (:meth:`_recover_index`), never raised."""
        index = self._read_index(path)
        return index if index is not None else self._recover_index(path)

    def _peek_index(self, path: Path) -> _UserIndex:
        """The index at ``path``, read without the lock (an index is replaced by rename): a
        damaged file takes the lock, to be recovered once."""
        index = self._read_index(path)
        if index is None:
            with self._locked(path.parent):
                index = self._load_index(path)
        return index

    def _read_index(self, path: Path) -> _UserIndex | None:
        """The index at ``path`` (empty when there is none), or None when the file cannot be
        read. An entry under a name that is not a storage key (it would become a path) is
        logged and left out."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return _UserIndex()
        except OSError as exc:
            raise SessionStoreError(f"cannot read user index {path}: {exc}") from exc
        try:
            generation, entries = _parse_index(raw)
        except ValueError:
            return None
        kept = {key: value for key, value in entries.items() if self.is_storage_key(key)}
        if len(kept) != len(entries):
            self._corrupt_index(path, ValueError("an entry is not under a storage key"))
        return _UserIndex(generation, kept)

    def _recover_index(self, path: Path) -> _UserIndex:
        """Replace the unreadable index at ``path`` (its directory's lock held) by a fresh one.

        The file is unreadable, so which sessions it listed and which generation it held are
        unknown. Reading it as empty would leave those sessions signed in out of revoke_user's
        reach, and a generation back at 0 would let cookies revoked long ago in again (a file
        store can keep a cookie storage's revocations). So the user is treated as revoked:
        the file is copied aside as ``<name>.corrupt-<time>`` for whoever looks into it, every
        session bound to that user is ended, found by reading the store's session files (once,
        for this rare event), and only then a fresh index, with a generation it cannot have
        held, replaces the file: if a step fails, the file is still there, unreadable, and the
        next operation on that user starts over."""
        raw = path.read_bytes()
        try:
            _parse_index(raw)
            problem = "it changed while it was read"  # pragma: no cover - read under the lock
        except ValueError as exc:
            problem = str(exc)
        aside = self._aside_path(path)
        self._write_bytes(aside, raw)
        ended = self._end_sessions_of(path.stem)
        index = _UserIndex(fresh_generation())
        self._save_index(path, index)
        self._corrupt_index(
            path,
            ValueError(
                f"{problem}; the file is set aside as {aside.name}, {ended} session(s) of its "
                "user ended, and the generation moved past any value it could have held"
            ),
        )
        return index

    def _aside_path(self, path: Path) -> Path:
        stamp = self.clock().astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():  # under the lock: no other recovery picks the same name
            aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
            n += 1
        return aside

    def _end_sessions_of(self, digest: str) -> int:
        """Delete every live session bound to the user whose digest is ``digest``; how many."""
        ended = 0
        for path, key in self._files():
            record = self._load(path, key)
            user = None if record is None else user_of(record.data)
            if user is not None and user_digest(user) == digest and self._take_key(key) is not None:
                ended += 1
        return ended

    def _corrupt_index(self, path: Path, exc: Exception) -> None:
        codec.log_corrupt(f"{self.kind} user index", path.stem, exc)

    def _save_index(self, path: Path, index: _UserIndex) -> None:
        if not index.entries and index.generation == 0:
            # Nothing to remember: no sessions, never revoked.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        self._write_bytes(path, codec.encode({"generation": index.generation, "entries": index.entries}))

    def _index_files(self) -> Iterator[Path]:
        users = self.dir / USERS_DIR
        if not users.is_dir():
            return
        for shard in sorted(users.iterdir()):
            if shard.is_dir():
                yield from (path for path in shard.glob("*.json") if not path.name.startswith("."))

    def scan(self) -> Iterator[tuple[str, Record]]:
        for path, id in self._files():
            record = self._load(path, id)
            if record is not None:
                yield id, record

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        if not self.is_valid_id(id):
            # The id becomes a path: only ids this store could have issued are safe.
            raise ValueError(f"{id!r} is not a valid session id for the file store")
        if self.is_expired(expires):
            return False
        path = self.path_of(id)
        with self._locked(path.parent):
            if not replace and self._load(path, id) is not None:
                return False
            self._write(path, data, expires)
        return True

    def purge_expired(self) -> int:
        """Delete expired and unreadable records, and temporary files left by a crash, and
        drop the index entries of sessions that are gone; return how many records were removed."""
        removed = 0
        for path, id in self._files():
            if self._load(path, id) is None:  # expired (already unlinked) or corrupt
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed += 1
        for index_path in self._index_files():
            entries = self._peek_index(index_path).entries
            dead = [key for key in entries if self._load(self._key_path(key), key) is None]
            if dead:
                self._prune(index_path, dead)
        cutoff = self.clock().timestamp() - _ABANDONED_AFTER
        for tmp in [*self.dir.glob("*/.tmp-*"), *self.dir.glob(f"{USERS_DIR}/*/.tmp-*")]:
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
        return removed

    # -- files -----------------------------------------------------------------------------

    def _files(self) -> Iterator[tuple[Path, str]]:
        for shard in sorted(self.dir.iterdir()):
            if not shard.is_dir() or len(shard.name) != 4:
                continue
            for path in shard.iterdir():
                key = shard.name + path.name
                if self.is_storage_key(key):
                    yield path, key

    def _load(self, path: Path, id: str) -> Record | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None
        except OSError as exc:
            raise SessionStoreError(f"cannot read session file {path}: {exc}") from exc
        try:
            content = codec.decode_record(raw)
            data = content.get("data")
            if not isinstance(data, dict):
                raise codec.CorruptRecordError("no data object")
            expires_text = content.get("expires")
            if expires_text is not None and not isinstance(expires_text, str):
                # An expiry of the wrong type must not turn into "never expires".
                raise codec.CorruptRecordError(f"expires is a JSON {type(expires_text).__name__}")
            expires = None if expires_text is None else parse_expires(expires_text)
        except ValueError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None
        if self.is_expired(expires):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        return Record(data, expires)

    def _take_key(self, key: str) -> Record | None:
        """Remove the record stored under storage key ``key`` and return it if it was live."""
        path = self._key_path(key)
        with self._locked(path.parent):
            record = self._load(path, key)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return record

    def _write(self, path: Path, data: Mapping[str, Any], expires: datetime | None) -> None:
        content: dict[str, Any] = {"data": data}
        if expires is not None:
            content["expires"] = format_expires(expires)
        self._write_bytes(path, codec.encode(content))

    def _write_bytes(self, path: Path, raw: bytes) -> None:
        path.parent.mkdir(exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self, shard: Path) -> Iterator[None]:
        """Hold the shard's lock file exclusively: threads and processes wait their turn."""
        if shard.parent != self.dir:
            shard.parent.mkdir(exist_ok=True, mode=0o700)  # .users, as private as the rest
        shard.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(shard / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _parse_index(raw: bytes) -> tuple[int, dict[str, Any]]:
    """The generation and entries of an index file; ValueError when it is not one."""
    content = codec.decode_record(raw)
    generation = content.get("generation", 0)
    entries = content.get("entries", {})
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise codec.CorruptRecordError(f"generation is {generation!r}")
    if not isinstance(entries, dict):
        raise codec.CorruptRecordError(f"entries is a JSON {type(entries).__name__}")
    return generation, entries


@dataclass
class _UserIndex:
    """A user's index as read from its file: entries are kept as stored (JSON), so an entry
    that cannot be read is written back unchanged rather than lost."""

    generation: int = 0
    entries: dict[str, Any] = field(default_factory=dict)


def create_file_session_storage(
    *,
    dir: str | os.PathLike[str],
    cookie: CookieLike = None,
    default_ttl: float | None = None,
    touch_interval: float = 60.0,
    fsync: bool = False,
    remix_ids: bool = False,
    rolling: bool = True,
    save_uninitialized: bool = False,
    absolute_timeout: float | None = None,
    storage_key_secret: str | bytes | None = None,
    clock: Clock = utcnow,
    codec: CodecLike = None,
) -> SessionStorage:
    """Sessions as JSON files under ``dir``, in Remix's file layout.

    ``remix_ids=True`` lets a Remix app's ``createFileSessionStorage`` share the directory:
    its 64-bit ids are read and kept, and new sessions get them too (docs/stores/file.md
    states the trade-off). Remix ids carry no creation time, so ``absolute_timeout`` cannot
    be combined with it.

    ``absolute_timeout`` (seconds) ends a session that long after its id was issued, however
    active; ``storage_key_secret`` keeps records under a keyed hash of the id, so a dump of the
    store holds no live ids (docs/security.md).

    Example::

        >>> import tempfile
        >>> from websession import create_cookie
        >>> cookie = create_cookie("s", secrets=["k"])
        >>> storage = create_file_session_storage(dir=tempfile.mkdtemp(), cookie=cookie)
        >>> session = storage.get_session(None)
        >>> session["n"] = 1
        >>> storage.get_session(storage.commit_session(session))["n"]
        1
    """
    if remix_ids and absolute_timeout is not None:
        raise ConfigurationError(
            "Remix's file ids carry no creation time, so absolute_timeout cannot be enforced",
            solution="drop absolute_timeout, or remix_ids (websession's own ids are dated)",
        )
    store = FileStore(
        dir,
        default_ttl=default_ttl,
        touch_interval=touch_interval,
        fsync=fsync,
        remix_ids=remix_ids,
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
    """``file:///var/lib/app/sessions`` (absolute) or ``file://./sessions`` (relative);
    ``?remix_ids=1`` shares the directory with Remix's file storage."""
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    ttl = options.pop("ttl", None)
    remix_ids = options.pop("remix_ids", "") in ("1", "true", "yes")
    reject_unknown("file", options)
    return create_file_session_storage(
        dir=url_path(url),
        cookie=cookie,
        default_ttl=None if ttl is None else float(ttl),
        remix_ids=remix_ids,
        **shared,
    )
