"""Correct use of typed sessions: ``mypy --strict`` must accept every line (tests/typing/test_typing.py).

This file is also in ``[tool.mypy] files``, so CI's ``mypy`` step checks it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TypedDict

from typing_extensions import NotRequired, assert_type

from websession import (
    CookieSessionStorage,
    JSONCodec,
    Session,
    SessionStorage,
    TaggedJSON,
    create_cookie,
    create_cookie_session_storage,
    create_memory_session_storage,
)


class Data(TypedDict):
    user_id: int
    theme: NotRequired[str]


class Flash(TypedDict, total=False):
    notice: str


storage: SessionStorage[Data, Flash] = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))


def sign_in(cookie_header: str | None) -> str | None:
    session = storage.get_session(cookie_header)
    assert_type(session, Session[Data, Flash])
    session.typed["user_id"] = 7
    session.typed["theme"] = "dark"
    assert_type(session.typed["user_id"], int)
    assert_type(session.typed.get("theme"), str | None)
    session.flashes["notice"] = "Signed in"
    assert_type(session.flashes.get("notice"), str | None)
    return storage.commit_session(session)


async def sign_in_async(cookie_header: str | None) -> str | None:
    session = await storage.aget_session(cookie_header)
    assert_type(session, Session[Data, Flash])
    del session.typed["theme"]
    return await storage.acommit_session(session)


def untyped(session: Session) -> object:
    """Code written before the type parameters: a bare Session is Session[Any, Any]."""
    session["anything"] = [1, 2]
    plain = create_memory_session_storage()
    other: Session = plain.get_session(None)
    return session.get("anything"), other.typed["whatever"]


class Visits(TypedDict, total=False):
    """Data with values that only the tagged codec can hold."""

    last_seen: datetime
    recent: tuple[int, ...]


signed = create_cookie("s", secrets=["k"])
tagged: SessionStorage[Visits, Flash] = create_memory_session_storage(cookie=signed, codec="tagged")
in_cookie: CookieSessionStorage[Visits, Flash] = create_cookie_session_storage(
    cookie=signed, codec=TaggedJSON()
)


def visit(cookie_header: str | None) -> str | None:
    session = tagged.get_session(cookie_header)
    assert_type(session, Session[Visits, Flash])
    session.typed["last_seen"] = datetime.now(timezone.utc)
    assert_type(session.typed.get("last_seen"), datetime | None)
    assert_type(session.codec, JSONCodec)
    return tagged.commit_session(session)
