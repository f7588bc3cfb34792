"""Wrong use of typed sessions: mypy must report each ``# E: <code>`` on its line, and nothing else
(tests/typing/test_typing.py). Never imported; never in ``[tool.mypy] files``.
"""

from __future__ import annotations

from typing import TypedDict

from websession import Session, SessionStorage, create_cookie, create_memory_session_storage


class Data(TypedDict):
    user_id: int


class Flash(TypedDict, total=False):
    notice: str


class OtherData(TypedDict):
    name: str


storage: SessionStorage[Data, Flash] = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))


def misuse() -> None:
    """Never called: pytest imports this module (doctests), mypy reads it."""
    session = storage.get_session(None)

    session.typed["user"] = 7  # E: typeddict-unknown-key
    session.typed["user_id"] = "7"  # E: typeddict-item
    _name: str = session.typed["user_id"]  # E: assignment
    session.typed["missing"]  # E: typeddict-item
    session.flashes["notice"] = 1  # E: typeddict-item
    session.flashes["error"] = "x"  # E: typeddict-unknown-key
    del session.typed["user_id"]  # E: misc
    _other: Session[OtherData, Flash] = storage.get_session(None)  # E: assignment
    storage.commit_session(Session[OtherData, Flash]())  # E: arg-type
    create_memory_session_storage(codec="pickle")  # E: arg-type
