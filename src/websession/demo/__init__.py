"""The demo served by ``websession demo``: a small Starlette app that shows sessions at work.

By default it keeps sessions in SQLite under ``./.websession-demo/`` and signs cookies with
``WEBSESSION_SECRET`` or a secret it generates once and keeps in that folder.

Example::

    >>> import tempfile
    >>> storage, label = open_demo_storage(None, tempfile.mkdtemp())
    >>> type(storage.store).__name__, label.endswith("sessions.db")
    ('SqliteStore', True)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..integrations._shared import AnyStorage
from ..urls import open_store
from .app import PRODUCTS, create_app

#: Where the demo keeps its database and secret unless told otherwise.
DEFAULT_DIRECTORY = ".websession-demo"
#: The demo cookie lives for a day.
COOKIE_MAX_AGE = 24 * 3600


def demo_secrets(directory: str | os.PathLike[str]) -> list[str]:
    """``WEBSESSION_SECRET`` (comma-separated to rotate), else a secret generated once and kept
    in ``<directory>/secret`` (readable by its owner only).

    Example::

        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> demo_secrets(folder) == demo_secrets(folder)
        True
    """
    configured = [s.strip() for s in os.environ.get("WEBSESSION_SECRET", "").split(",") if s.strip()]
    if configured:
        return configured
    path = Path(directory) / "secret"
    try:
        return [path.read_text(encoding="utf-8").strip()]
    except FileNotFoundError:
        pass
    Path(directory).mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another demo process won the race: use its secret
        return [path.read_text(encoding="utf-8").strip()]
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return [secret]


def open_demo_storage(store_url: str | None, directory: str | os.PathLike[str]) -> tuple[AnyStorage, str]:
    """Open the demo's storage and a label for it: ``store_url``, or SQLite in ``directory``."""
    folder = Path(directory).resolve()
    if store_url is None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        store_url = f"sqlite://{folder / 'sessions.db'}"
    given = dict(parse_qsl(urlsplit(store_url).query))
    options: dict[str, Any] = {}
    if "secrets" not in given and "cookie" not in given:
        options["secrets"] = demo_secrets(folder)
    if "max_age" not in given:
        options["max_age"] = COOKIE_MAX_AGE
    storage: AnyStorage = open_store(store_url, **options)
    return storage, _label(store_url)


def _label(url: str) -> str:
    """The URL without a password or query, safe to print and to show on pages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def serve(
    *,
    store_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    directory: str | os.PathLike[str] = DEFAULT_DIRECTORY,
    log_level: str = "info",
) -> None:
    """Serve the demo with uvicorn until interrupted."""
    import uvicorn

    storage, label = open_demo_storage(store_url, directory)
    print(f"websession demo: sessions in {label}")
    print(f"websession demo: open http://{host}:{port}/ (Ctrl+C to stop)", flush=True)
    uvicorn.run(create_app(storage, label), host=host, port=port, log_level=log_level)


__all__ = [
    "COOKIE_MAX_AGE",
    "DEFAULT_DIRECTORY",
    "PRODUCTS",
    "create_app",
    "demo_secrets",
    "open_demo_storage",
    "serve",
]
