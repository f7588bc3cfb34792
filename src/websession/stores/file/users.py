"""The file store's user index (websession.users): one index file per signed-in user.

``dir/.users/<d[:2]>/<d>.json``, where ``d`` is :func:`~websession.users.user_digest` of the
user, holds ``{"generation": n, "entries": {storage key: entry}}``. The hidden ``.users``
directory is never mistaken for a shard of session files.

What the file system guarantees here (a local one, :mod:`.files`): every change to an index is
made under the lock of its directory, and an operation that also touches records takes the
record's shard lock inside it (index first, then record, always in that order, so two
operations never deadlock): binding, unbinding and revoking are each one atomic step to every
other operation on that user's index. An index is replaced by rename, so a listing reads it
without the lock.

What it does not: undo a step that failed halfway (no transactions on a disk). The steps are
ordered so that a failure leaves a session deleted or still indexed, never alive outside the
index where ``revoke_user`` could not reach it, and a retried revocation completes it. The
entries of expired or deleted sessions stay until a listing or ``purge_expired`` drops them.

An index file that cannot be read is set aside as ``<name>.corrupt-<time>`` and its user
treated as revoked: every session bound to the user is ended and the generation moves past
any value the file could have held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ... import codec
from ...errors import SessionStoreError
from ...users import Device, Entry, Taken, user_digest, user_of
from .._entries import fresh_generation
from ..base import Data
from .files import FileDirectory

#: The directory of the per-user indexes: hidden, and not four characters long, so listing the
#: store's shards (scan, count, purge) never takes it for one.
USERS_DIR = ".users"


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


class FileUserIndex(FileDirectory):
    """The user index half of :class:`~websession.stores.file.FileStore`."""

    def index_path(self, user: str) -> Path:
        """The index file of ``user``: ``dir/.users/<d[:2]>/<d>.json``, ``d`` its digest.

        Example::

            >>> import tempfile
            >>> from websession.stores.file import FileStore
            >>> store = FileStore(tempfile.mkdtemp())
            >>> store.index_path("ada").relative_to(store.dir).parts[:2]
            ('.users', 'd1')
        """
        digest = user_digest(user)
        return self.dir / USERS_DIR / digest[:2] / f"{digest}.json"

    def create_for_user(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
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

    def _purge_indexes(self) -> None:
        """Drop, from every index, the entries of sessions that are gone."""
        for path in self._index_files():
            entries = self._peek_index(path).entries
            dead = [key for key in entries if self._load(self._key_path(key), key) is None]
            if dead:
                self._prune(path, dead)

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
