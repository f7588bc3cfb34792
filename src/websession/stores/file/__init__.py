"""The file store: one JSON file per session, in Remix's ``createFileSessionStorage`` layout.

A record for id ``0123abcd…`` lives at ``dir/0123/abcd…`` (the first four characters of the id
name its shard directory) and holds ``{"data": {...}, "expires": "2026-11-23T06:48:31.890Z"}``,
so a Remix app can share the directory (``remix_ids=True``: Remix's 16-hex ids). Users and
their devices have one index file each under ``dir/.users`` (:mod:`.users`).

What it guarantees:

- **Atomic changes.** Every change holds an exclusive ``flock`` on its shard directory's lock
  file while it reads and replaces the record, so concurrent requests, in threads or in other
  processes on this machine, never undo each other.
- **Whole files.** A write goes to a temporary file that is renamed over the record, so a
  reader (or a crash) never sees half a file; ``fsync=True`` also makes it durable.
- **No path escapes.** Ids are validated before any path is built, so no cookie can name a
  file outside ``dir``.

What it does not:

- **Local file systems only.** Atomicity rests on ``flock`` and ``rename``: on NFS and other
  network file systems, where ``flock`` may lock nothing, concurrent writers can undo each
  other. Without ``fcntl`` (Windows) there is no lock at all.
- **Expired files stay on disk** until a read finds them or ``purge_expired()`` runs; there
  is no cheap count (``count()`` reads every file).

Example::

    >>> import tempfile
    >>> from websession import create_cookie, create_file_session_storage
    >>> cookie = create_cookie("s", secrets=["k"])
    >>> storage = create_file_session_storage(cookie=cookie, dir=tempfile.mkdtemp())
"""

from .factory import create_file_session_storage, open_url
from .files import format_expires, parse_expires
from .store import FileStore
from .users import USERS_DIR

__all__ = [
    "USERS_DIR",
    "FileStore",
    "create_file_session_storage",
    "format_expires",
    "open_url",
    "parse_expires",
]
