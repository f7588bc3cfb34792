from __future__ import annotations

import pytest

from websession import Session


def test_flash_semantics_match_remix() -> None:
    session = Session({"notice": "plain", "__flash_error__": "bad"})
    assert session.has("error") and "error" not in session
    assert session.get("notice") == "plain"
    assert session.get("error") == "bad"
    assert session.get("error") is None and not session.has("error")
    assert session.changes.removed == {"__flash_error__"}
    session.flash("notice", "flashed")  # a plain key shadows a flash of the same name
    assert session.get("notice") == "plain"


def test_unset_touches_only_the_plain_key() -> None:
    session = Session({"__flash_x__": 1})
    session.unset("x")
    assert session.has("x")


def test_change_tracking() -> None:
    session = Session({"a": 1, "b": 2})
    assert not session.modified
    session["c"] = 3
    del session["a"]
    session["b"] = 2
    changes = session.changes
    assert dict(changes.set) == {"c": 3, "b": 2} and changes.removed == {"a"}
    session["a"] = 9  # set after removal: it is a set again
    assert "a" not in session.changes.removed and session.changes.set["a"] == 9
    del session["c"]  # removal after set: it is a removal
    assert "c" not in session.changes.set and "c" in session.changes.removed


def test_in_place_edits_are_seen() -> None:
    session = Session({"cart": [1], "profile": {"n": 1}, "x": 1})
    session["cart"].append(2)
    session.get("profile")["n"] = 2
    assert session.modified
    assert dict(session.changes.set) == {"cart": [1, 2], "profile": {"n": 2}}
    reading_only = Session({"cart": [1]})
    assert reading_only["cart"] == [1] and not reading_only.modified


@pytest.mark.parametrize(
    "bad", [object(), {1: "int key"}, float("nan"), {"a": {b"x"}}, [float("inf")], "\ud800", {"\udfff": 1}]
)
def test_non_json_values_are_refused_naming_the_key(bad: object) -> None:
    session = Session()
    with pytest.raises(TypeError, match="'greeting'"):
        session["greeting"] = bad
    assert "greeting" not in session and not session.modified


def test_mapping_behaviour() -> None:
    session = Session({"a": 1})
    with pytest.raises(KeyError):
        session["missing"]
    with pytest.raises(KeyError):
        del session["missing"]
    session.update(b=2)
    assert sorted(session) == ["a", "b"] and len(session) == 2 and dict(session) == {"a": 1, "b": 2}
    assert session.get("missing", "default") == "default"
    session.clear()
    assert len(session) == 0 and session.changes.removed == {"a", "b"}


def test_regenerate_and_destroy_flags() -> None:
    session = Session({"a": 1}, "0" * 32)
    assert not session.is_new or session.record is None
    session.regenerate()
    assert session.regenerating
    session.destroy()
    assert session.destroyed and len(session) == 0
