from __future__ import annotations

import warnings
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from websession import create_cookie
from websession.cookie import as_cookie, find_cookie


def test_wire_format_vectors() -> None:
    signed = create_cookie("sess", secrets=["s1", "s2"], http_only=False)
    assert signed.serialize({"user": "ü€😀", "n": 1}) == (
        "sess=eyJ1c2VyIjoiw7zigqzwn5iAIiwibiI6MX0%3D.0dNmxEzWhHC%2BFLolQYAT22xXwNKa5YHvdExst0pVdok;"
        " Path=/; SameSite=Lax"
    )
    assert (
        create_cookie("sess", http_only=False).serialize({"a": 1})
        == "sess=eyJhIjoxfQ%3D%3D; Path=/; SameSite=Lax"
    )


def test_safe_defaults() -> None:
    assert create_cookie("s").serialize(1).split("; ")[1:] == ["Path=/", "HttpOnly", "SameSite=Lax"]


def test_attribute_order_and_overrides() -> None:
    cookie = create_cookie(
        "s",
        max_age=60.7,
        domain="example.com",
        path="/p",
        expires=datetime(2030, 1, 1, tzinfo=timezone.utc),
        secure=True,
        partitioned=True,
        priority="high",
        same_site="strict",
    )
    assert cookie.serialize(1).split("; ")[1:] == [
        "Max-Age=60",
        "Domain=example.com",
        "Path=/p",
        "Expires=Tue, 01 Jan 2030 00:00:00 GMT",
        "HttpOnly",
        "Secure",
        "Partitioned",
        "Priority=High",
        "SameSite=Strict",
    ]
    overridden = cookie.serialize(1, max_age=5, domain=None, same_site="none", priority=None)
    assert overridden.split("; ")[1:4] == ["Max-Age=5", "Path=/p", "Expires=Tue, 01 Jan 2030 00:00:00 GMT"]
    assert overridden.endswith("SameSite=None")


def test_rotation_signs_with_first_and_verifies_with_all() -> None:
    old = create_cookie("s", secrets=["old"]).serialize({"a": 1}).split(";")[0]
    rotated = create_cookie("s", secrets=["new", "old"])
    verified = rotated.read(old)
    assert verified is not None and verified.value == {"a": 1} and verified.stale
    fresh = rotated.serialize({"a": 1}).split(";")[0]
    assert rotated.read(fresh) == type(verified)({"a": 1}, False)
    assert create_cookie("s", secrets=["old"]).parse(fresh) is None


def test_percent_decoding_rules() -> None:
    assert find_cookie("a=x+y", "a") == "x+y"  # never turns + into a space
    assert find_cookie("a=%2B", "a") == "+"
    assert find_cookie("a=%E0%A4%A", "a") == "%E0%A4%A"  # a bad escape keeps the raw text
    assert find_cookie("a=%FF", "a") == "%FF"  # invalid UTF-8 keeps the raw text
    assert find_cookie("a=1; a=2", "a") == "1"  # the first wins
    assert find_cookie(' \ta = "q" ', "a") == "q"
    assert find_cookie("ab=1", "a") is None
    assert find_cookie(b"a=\xff", "a") == "\xff"
    assert find_cookie(None, "a") is None


def test_invalid_options_are_refused() -> None:
    for bad in [{"domain": "a;b"}, {"path": "/\n"}, {"same_site": "sometimes"}, {"priority": "urgent"}]:
        with pytest.raises(ValueError):
            create_cookie("s", **bad)
    with pytest.raises(ValueError):
        create_cookie("bad name")
    with pytest.raises(ValueError):
        create_cookie("s", secrets=[""])
    with pytest.raises(ValueError):
        create_cookie("s", expires=datetime(2030, 1, 1))  # naive


def test_unsigned_session_cookie_warns_once() -> None:
    from websession import create_memory_session_storage

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_memory_session_storage(cookie=create_cookie("unsigned-once"))
        create_memory_session_storage(cookie=create_cookie("unsigned-once"))
        create_memory_session_storage(cookie=create_cookie("signed", secrets=["k"]))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and '"unsigned-once" cookie is not signed' in messages[0]


def test_as_cookie_accepts_remix_style_options() -> None:
    cookie = as_cookie({"name": "n", "secrets": ["k"], "max_age": 5})
    assert cookie.name == "n" and cookie.is_signed and cookie.options.max_age == 5
    assert as_cookie(None).name == "__session"


@settings(max_examples=300, deadline=None)
@given(header=st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), st.binary()))
def test_parse_never_raises(header: str | bytes) -> None:
    cookie = create_cookie("s", secrets=["k"])
    assert cookie.parse(header) is None or isinstance(header, (str, bytes))
    create_cookie("s").parse(header)
    if isinstance(header, str):
        cookie.parse("s=" + header)
        cookie.parse("s=" + header + ".AAAA")


@settings(max_examples=200, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=10,
    )
)
def test_round_trip_any_json_value(value: object) -> None:
    cookie = create_cookie("s", secrets=["k"])
    assert cookie.parse(cookie.serialize(value).split(";")[0]) == value
