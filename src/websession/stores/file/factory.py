"""The file storage factory and its URL: ``file:///var/lib/app/sessions``.

What the file system guarantees once this is done: the directory exists (created with its
parents, for the owner only, if it was missing), so a path that cannot be created fails here.

What it does not: check that the directory is on a local file system (locking needs one, see
:mod:`.files`) or that it is writable: a read-only directory shows as an ``OSError`` on the
first write.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from ...cookie import CookieLike
from ...errors import ConfigurationError
from ...options import StorageOptions, assemble, check_options, store_arguments, url_options
from ...storage import SessionStorage
from ...urls import cookie_from_options, reject_unknown, url_path
from .store import FileStore

if TYPE_CHECKING:
    from typing_extensions import Unpack


def create_file_session_storage(
    *,
    dir: str | os.PathLike[str],
    cookie: CookieLike = None,
    touch_interval: float = 60.0,
    fsync: bool = False,
    remix_ids: bool = False,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions as JSON files under ``dir``, in Remix's file layout.

    ``remix_ids=True`` lets a Remix app's ``createFileSessionStorage`` share the directory:
    its 64-bit ids are read and kept, and new sessions get them too (docs/stores/file.md
    states the trade-off). Remix ids carry no creation time, so ``absolute_timeout`` cannot
    be combined with it. ``fsync=True`` flushes every write to the disk before it replaces
    the record; ``touch_interval`` limits rolling rewrites of the expiry. The shared options
    (``ttl`` or its older spelling ``default_ttl``, ``rolling``, ``absolute_timeout``,
    ``storage_key_secret``, ...) are :class:`~websession.options.StorageOptions`.

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
    # Before the store creates its directory, as Python refuses a wrong keyword.
    check_options("create_file_session_storage", options)
    if remix_ids and options.get("absolute_timeout") is not None:
        raise ConfigurationError(
            "Remix's file ids carry no creation time, so absolute_timeout cannot be enforced",
            solution="drop absolute_timeout, or remix_ids (websession's own ids are dated)",
        )
    store = FileStore(
        dir, touch_interval=touch_interval, fsync=fsync, remix_ids=remix_ids, **store_arguments(options)
    )
    return assemble("create_file_session_storage", store, cookie, options)


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``file:///var/lib/app/sessions`` (absolute) or ``file://./sessions`` (relative);
    ``?remix_ids=1`` shares the directory with Remix's file storage."""
    cookie = cookie_from_options(options)
    shared = url_options(options)
    remix_ids = options.pop("remix_ids", "") in ("1", "true", "yes")
    reject_unknown("file", options)
    return create_file_session_storage(dir=url_path(url), cookie=cookie, remix_ids=remix_ids, **shared)
