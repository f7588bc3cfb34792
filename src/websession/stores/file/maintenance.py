"""The file store's maintenance: scan, write (migrations and imports) and purge.

Nothing deletes an expired record but a read of it or :meth:`FileMaintenance.purge_expired`,
which also removes unreadable records, the index entries of sessions that are gone, and the
temporary files a crashed writer left behind.

What the file system guarantees here (a local one, :mod:`.files`): ``write`` holds the record's
shard lock, so with ``replace=False`` it never overwrites a live record, even one written while
it ran.

What it does not: give a snapshot, or count cheaply. ``scan`` and ``purge_expired`` walk the
directories file by file, so sessions written meanwhile may or may not be seen, and counting
reads every file. A purge leaves temporary files younger than an hour alone: their writer
may still be at work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from ..base import Record
from .users import USERS_DIR, FileUserIndex

#: A temporary file this old (seconds) was left by a writer that died.
_ABANDONED_AFTER = 3600


class FileMaintenance(FileUserIndex):
    """The maintenance part of :class:`~websession.stores.file.FileStore`."""

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
        self._purge_indexes()
        cutoff = self.clock().timestamp() - _ABANDONED_AFTER
        for tmp in [*self.dir.glob("*/.tmp-*"), *self.dir.glob(f"{USERS_DIR}/*/.tmp-*")]:
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
        return removed
