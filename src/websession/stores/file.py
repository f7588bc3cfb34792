"""The file store: one JSON file per session, in Remix's ``createFileSessionStorage`` layout.

A record for id ``0123abcd…`` lives at ``dir/0123/abcd…`` and holds
``{"data": {...}, "expires": "2026-11-23T06:48:31.890Z"}``. Writes go to a temporary file that
is renamed over the record, so a reader (or a crash) never sees half a file. Changes are
applied under an exclusive lock per shard directory, so concurrent requests, in threads or in
other processes, never undo each other. Ids are validated before any path is built, so no
cookie can name a file outside ``dir``.

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
from .base import Clock, Record, Store, touch_due, utcnow

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_LOCK_NAME = ".lock"
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
        key = self.storage_key(id)
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
        path = self.path_of(id)
        with self._locked(path.parent):
            record = self._load(path, id)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return record

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
        """Delete expired and unreadable records, and temporary files left by a crash;
        return how many were removed."""
        removed = 0
        for path, id in self._files():
            if self._load(path, id) is None:  # expired (already unlinked) or corrupt
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed += 1
        cutoff = self.clock().timestamp() - _ABANDONED_AFTER
        for tmp in self.dir.glob("*/.tmp-*"):
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

    def _write(self, path: Path, data: Mapping[str, Any], expires: datetime | None) -> None:
        content: dict[str, Any] = {"data": data}
        if expires is not None:
            content["expires"] = format_expires(expires)
        raw = codec.encode(content)
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
        shard.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(shard / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


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
