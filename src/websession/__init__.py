"""websession: server-side web sessions for Python, in the model Remix made popular.

A signed cookie carries a session id, a store keeps the data, and one storage object offers
``get_session``, ``commit_session`` and ``destroy_session`` (and their async twins).

Example::

    >>> import websession
    >>> storage = websession.create_memory_session_storage(
    ...     cookie=websession.create_cookie("__session", secrets=["s3cret"], max_age=3600))
    >>> session = storage.get_session(None)
    >>> session["user_id"] = 42
    >>> set_cookie = storage.commit_session(session)
    >>> storage.get_session(set_cookie.split(";")[0])["user_id"]
    42
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .changes import Changes
from .codec import JSONCodec, TaggedJSON
from .cookie import Cookie, CookieOptions, create_cookie
from .errors import (
    ConfigurationError,
    CookieNotDeliverableError,
    CookieTooLargeError,
    RecordTooLargeError,
    SessionError,
    SessionStoreError,
    StoreUnavailableError,
    UserIndexUnsupportedError,
)
from .ids import generate_id, is_valid_id
from .options import StorageOptions
from .session import Session
from .storage import CookieSessionStorage, SessionStorage
from .stores.base import Record, Store
from .stores.cookie import create_cookie_session_storage
from .stores.custom import create_session_storage
from .stores.file import create_file_session_storage
from .stores.memory import create_memory_session_storage
from .stores.sqlite import create_sqlite_session_storage
from .urls import open_store, register_scheme
from .users import Device

#: Factories whose stores need optional client libraries: imported on first use.
_LAZY = {
    "create_redis_session_storage": "websession.stores.redis",
    "create_upstash_session_storage": "websession.stores.upstash",
    "create_memcache_session_storage": "websession.stores.memcache",
    "create_dynamodb_session_storage": "websession.stores.dynamodb",
    "create_workers_kv_session_storage": "websession.stores.workers_kv",
    "create_postgres_session_storage": "websession.stores.postgres",
    "create_encrypted_cookie": "websession.encryption",
    "generate_encryption_key": "websession.encryption",
}

# Aliased, not in __all__: `import *` must not import optional client libraries.
if TYPE_CHECKING:  # pragma: no cover - each backend adds its factory here as it lands
    from .encryption import create_encrypted_cookie as create_encrypted_cookie
    from .encryption import generate_encryption_key as generate_encryption_key
    from .stores.dynamodb import create_dynamodb_session_storage as create_dynamodb_session_storage
    from .stores.memcache import create_memcache_session_storage as create_memcache_session_storage
    from .stores.postgres import create_postgres_session_storage as create_postgres_session_storage
    from .stores.redis import create_redis_session_storage as create_redis_session_storage
    from .stores.upstash import create_upstash_session_storage as create_upstash_session_storage
    from .stores.workers_kv import create_workers_kv_session_storage as create_workers_kv_session_storage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'websession' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

__all__ = [
    "Changes",
    "ConfigurationError",
    "Cookie",
    "CookieNotDeliverableError",
    "CookieOptions",
    "CookieSessionStorage",
    "CookieTooLargeError",
    "Device",
    "JSONCodec",
    "Record",
    "RecordTooLargeError",
    "Session",
    "SessionError",
    "SessionStorage",
    "SessionStoreError",
    "StorageOptions",
    "Store",
    "StoreUnavailableError",
    "TaggedJSON",
    "UserIndexUnsupportedError",
    "create_cookie",
    "create_cookie_session_storage",
    "create_file_session_storage",
    "create_memory_session_storage",
    "create_session_storage",
    "create_sqlite_session_storage",
    "generate_id",
    "is_valid_id",
    "open_store",
    "register_scheme",
]
