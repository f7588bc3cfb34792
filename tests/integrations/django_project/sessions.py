"""A storage named by a dotted path, for the WEBSESSION_STORAGE setting tests."""

from __future__ import annotations

from websession import create_cookie, create_memory_session_storage

storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["dotted"]))


def make_storage():
    return storage
