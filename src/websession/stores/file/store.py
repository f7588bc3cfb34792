"""The file store's session operations: create, read (rolling), update, delete, take.

Each change holds the lock of the record's shard directory while it reads and replaces the
file; the user index is :mod:`.users`, maintenance :mod:`.maintenance`, the disk
:mod:`.files`.

What the file system guarantees here (a local one, :mod:`.files`): an update, a delete, a take
and the expiry move of a rolling read each hold the shard's lock while they read and replace or
remove the file, so concurrent changes to one session are applied one after another and a
deleted or expired record is never brought back; a take hands a record to one caller only. A
plain read takes no lock: records are replaced by rename, so it always reads a whole one.

What it does not: merge two requests' values for one key (of two change sets setting the same
key, the one applied last wins), or delete expired files by itself: the read that finds one
removes it, ``purge_expired`` the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...changes import Changes
from ..base import Record, touch_due
from .maintenance import FileMaintenance


class FileStore(FileMaintenance):
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

    def __repr__(self) -> str:
        return f"FileStore({str(self.dir)!r})"

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
