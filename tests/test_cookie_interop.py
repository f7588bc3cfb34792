"""Byte compatibility with the real Remix v2 and React Router 7/8 cookie code, through Node.

Python signs and JavaScript parses, JavaScript signs and Python parses, and for every attribute
combination the Set-Cookie strings are compared byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from websession import create_cookie, create_memory_session_storage

NODE_PROJECT = Path(__file__).parent / "node" / "cookie"
LIBRARIES = ["remix", "react-router-7", "react-router-8"]

VALUES: list[Any] = [
    {"user": "ü€😀", "n": 1},
    {"a": 1},
    "0123456789abcdef0123456789abcdef",
    {"nested": {"list": [1, 2, [3]], "empty": {}, "none": None, "t": True}},
    {"text": 'quotes " and \\ and \n newline and \u2028 and \x01'},
    {"big": 2**53 - 1, "neg": -7, "half": 0.5},
    [1, "two", None],
    "",
    {"emoji": "👩‍👩‍👧‍👦", "cjk": "会话", "rtl": "جلسة"},
]

ATTRIBUTES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({"max_age": 3600}, {"maxAge": 3600}),
    ({"max_age": 59.9}, {"maxAge": 59.9}),
    ({"domain": "example.com", "path": "/app"}, {"domain": "example.com", "path": "/app"}),
    ({"secure": True, "same_site": "none"}, {"secure": True, "sameSite": "none"}),
    ({"same_site": "strict"}, {"sameSite": "strict"}),
    ({"same_site": True}, {"sameSite": True}),
    ({"same_site": False}, {"sameSite": False}),
    ({"partitioned": True, "secure": True}, {"partitioned": True, "secure": True}),
    ({"priority": "high"}, {"priority": "high"}),
    ({"priority": "low", "http_only": True}, {"priority": "low", "httpOnly": True}),
    (
        {"expires": datetime(2030, 5, 17, 8, 9, 10, tzinfo=timezone.utc)},
        {"expires": "2030-05-17T08:09:10.000Z"},
    ),
    (
        {
            "max_age": 600,
            "expires": datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            "domain": "a.example",
            "path": "/",
            "http_only": True,
            "secure": True,
            "same_site": "lax",
            "partitioned": True,
            "priority": "medium",
        },
        {
            "maxAge": 600,
            "expires": "2031-01-02T03:04:05.000Z",
            "domain": "a.example",
            "path": "/",
            "httpOnly": True,
            "secure": True,
            "sameSite": "lax",
            "partitioned": True,
            "priority": "medium",
        },
    ),
]


def run_node(cases: list[dict[str, Any]]) -> list[Any]:
    node = shutil.which("node")
    if node is None or not (NODE_PROJECT / "node_modules").is_dir():
        pytest.fail(
            "Node.js and the npm packages in tests/node/cookie are needed; "
            "run `python3 scripts/test.py`, which installs them"
        )
    result = subprocess.run(
        [node, "cookie.mjs"],
        cwd=NODE_PROJECT,
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def python_cookie(secrets: list[str], attributes: dict[str, Any]) -> Any:
    # Remix's own default is no HttpOnly; websession defaults to HttpOnly, so say it explicitly.
    return create_cookie("sess", secrets=secrets, **{"http_only": False, **attributes})


@pytest.mark.parametrize("library", LIBRARIES)
def test_set_cookie_is_byte_identical_for_every_attribute(library: str) -> None:
    cases, expected = [], []
    for py_attrs, js_attrs in ATTRIBUTES:
        if library != "remix" and js_attrs.get("maxAge") == 59.9:
            continue  # React Router's cookie-es rejects a fractional maxAge; Remix floors it
        for secrets in ([], ["s1", "s2"]):
            for value in VALUES[:3]:
                cases.append(
                    {
                        "lib": library,
                        "op": "serialize",
                        "name": "sess",
                        "value": value,
                        "options": {"secrets": secrets, "httpOnly": False, **js_attrs},
                    }
                )
                expected.append(python_cookie(secrets, py_attrs).serialize(value))
    assert run_node(cases) == expected


@pytest.mark.parametrize("library", LIBRARIES)
def test_serialize_time_overrides_match(library: str) -> None:
    cookie = python_cookie(["k"], {"max_age": 60})
    ours = cookie.serialize({"a": 1}, max_age=10, path="/x", secure=True)
    theirs = run_node(
        [
            {
                "lib": library,
                "op": "serialize",
                "name": "sess",
                "value": {"a": 1},
                "options": {"secrets": ["k"], "maxAge": 60, "httpOnly": False},
                "overrides": {"maxAge": 10, "path": "/x", "secure": True},
            }
        ]
    )
    assert theirs == [ours]


@pytest.mark.parametrize("library", LIBRARIES)
def test_javascript_signs_and_python_parses(library: str) -> None:
    cases = [
        {
            "lib": library,
            "op": "serialize",
            "name": "sess",
            "value": value,
            "options": {"secrets": ["old", "x"]},
        }
        for value in VALUES
        if value != ""
    ]
    headers = run_node(cases)
    rotated = create_cookie("sess", secrets=["new", "old"])
    for value, header in zip([v for v in VALUES if v != ""], headers):
        pair = header.split(";")[0]
        verified = rotated.read(pair)
        assert verified is not None and verified.value == value and verified.stale
        assert create_cookie("sess", secrets=["other"]).parse(pair) is None


@pytest.mark.parametrize("library", LIBRARIES)
def test_python_signs_and_javascript_parses(library: str) -> None:
    values = [v for v in VALUES if v != ""]
    cookie = create_cookie("sess", secrets=["new"])
    headers = [cookie.serialize(v).split(";")[0] for v in values]
    cases = [
        {
            "lib": library,
            "op": "parse",
            "name": "sess",
            "header": f"other=1; {h}; x=2",
            "options": {"secrets": ["new", "old"]},
        }
        for h in headers
    ]
    assert [r["value"] for r in run_node(cases)] == values


@pytest.mark.parametrize("library", LIBRARIES)
def test_both_refuse_the_same_tampered_cookies(library: str) -> None:
    good = create_cookie("sess", secrets=["k"]).serialize({"admin": False}).split(";")[0]
    name, _, value = good.partition("=")
    payload, _, signature = value.rpartition(".")
    forged = create_cookie("sess").sign({"admin": True})
    tampered = [
        f"{name}={forged}.{signature}",
        f"{name}={payload}.{signature[:-2]}",
        f"{name}={payload}",
        f"{name}=garbage",
    ]
    cases = [
        {"lib": library, "op": "parse", "name": "sess", "header": h, "options": {"secrets": ["k"]}}
        for h in tampered
    ]
    for header, result in zip(tampered, run_node(cases)):
        assert result.get("value") is None, header
        assert create_cookie("sess", secrets=["k"]).parse(header) is None


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_session_id_cookie_reads_the_same_on_both_sides(library: str) -> None:
    storage = create_memory_session_storage(cookie=create_cookie("sess", secrets=["k"]))
    session = storage.get_session(None)
    session["user"] = 1
    header = storage.commit_session(session)
    assert header is not None
    parsed = run_node(
        [
            {
                "lib": library,
                "op": "parse",
                "name": "sess",
                "header": header.split(";")[0],
                "options": {"secrets": ["k"]},
            }
        ]
    )
    assert parsed == [{"value": session.id}]


@pytest.mark.parametrize("library", LIBRARIES)
def test_destroy_header_matches(library: str) -> None:
    ours = create_cookie("sess", secrets=["k"], max_age=60, http_only=False).serialize_expired()
    theirs = run_node(
        [
            {
                "lib": library,
                "op": "serialize",
                "name": "sess",
                "value": "",
                "options": {"secrets": ["k"], "maxAge": 60, "httpOnly": False},
                "overrides": {"maxAge": None, "expires": "1970-01-01T00:00:00.000Z"},
            }
        ]
    )
    assert theirs == [ours]
