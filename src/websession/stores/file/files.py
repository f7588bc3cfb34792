"""The file store's plumbing: where a record lives, how it is read, written and locked.

A record for id ``0123abcd…`` lives at ``dir/0123/abcd…`` (Remix's layout) and holds
``{"data": {...}, "expires": "2026-11-23T06:48:31.890Z"}``. A write goes to a temporary file
renamed over the record; a change holds the shard directory's lock file (``flock``).

Every other part of the store (:mod:`.store`, :mod:`.users`, :mod:`.maintenance`) is a
subclass of :class:`FileDirectory` and reaches the disk only through it.

What a local file system guarantees here: a rename replaces a file in one step, so a reader,
who takes no lock, sees the old record or the new one, never half of either; an exclusive
``flock`` on a shard's lock file is held by one thread or process of this machine at a time,
so the changes made under it go one after another. Directories and files are created for the
owner only.

What it does not: ``flock`` may lock nothing on NFS and other network file systems, and
without ``fcntl`` (Windows) :meth:`FileDirectory._locked` locks nothing at all. A rename is
atomic, not durable: unless ``fsync=True``, a power loss can lose the latest writes. A record
the disk refuses to read is a :class:`~websession.errors.SessionStoreError`; a write that fails
(disk full, read-only) raises its ``OSError`` as it is.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import codec
from ...errors import ConfigurationError, SessionStoreError
from ...ids import generate_remix_file_id, is_remix_file_id
from ..base import Record, Store, StoreArguments

if TYPE_CHECKING:
    from typing_extensions import Unpack

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_LOCK_NAME = ".lock"


def format_expires(expires: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as JavaScript's ``toISOString``.

    Example::

        >>> format_expires(datetime(2026, 11, 23, 6, 48, 31, 890123, tzinfo=timezone.utc))
        '2026-11-23T06:48:31.890Z'
    """
    utc = expires.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_expires(text: str) -> datetime:
    """Parse :func:`format_expires` output (and any ISO 8601 time with an offset).

    Example::

        >>> parse_expires("2026-11-23T06:48:31.890Z").isoformat()
        '2026-11-23T06:48:31.890000+00:00'
    """
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("expires has no timezone")
    return parsed


class FileDirectory(Store):
    """What every part of :class:`~websession.stores.file.FileStore` shares: the directory,
    where a record lives, and reading, writing and locking its file."""

    def __init__(
        self,
        dir: str | os.PathLike[str],
        *,
        touch_interval: float = 60.0,
        fsync: bool = False,
        remix_ids: bool = False,
        **shared: Unpack[StoreArguments],
    ) -> None:
        super().__init__(**shared)
        if remix_ids and self.hashes_ids:
            raise ConfigurationError(
                "remix_ids shares files with Remix, which names them by the id itself",
                solution="drop storage_key_secret, or remix_ids",
            )
        self.remix_ids = remix_ids
        self.dir = Path(dir)
        self.touch_interval = touch_interval
        self.fsync = fsync
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def new_id(self) -> str:
        return generate_remix_file_id() if self.remix_ids else super().new_id()

    def is_valid_id(self, value: object) -> bool:
        return super().is_valid_id(value) or (self.remix_ids and is_remix_file_id(value))

    def path_of(self, id: str) -> Path:
        """Where the record for a valid id lives (under its keyed hash with ``storage_key_secret``)."""
        return self._key_path(self.storage_key(id))

    def _key_path(self, key: str) -> Path:
        return self.dir / key[:4] / key[4:]

    def _files(self) -> Iterator[tuple[Path, str]]:
        """Every record file, with its storage key: the four-character shard directories only."""
        for shard in sorted(self.dir.iterdir()):
            if not shard.is_dir() or len(shard.name) != 4:
                continue
            for path in shard.iterdir():
                key = shard.name + path.name
                if self.is_storage_key(key):
                    yield path, key

    def _load(self, path: Path, id: str) -> Record | None:
        """The live record at ``path``; None when there is none, it is corrupt (logged) or it
        has expired (then the file is removed)."""
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
        """Write ``raw`` to a temporary file beside ``path`` and rename it over ``path``: a
        reader (or a crash) never sees half a file."""
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
