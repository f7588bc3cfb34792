"""websession's "remix-v3" format against the real npm packages, through Node, on one Redis.

@remix-run/session 0.4.2, @remix-run/session-storage-redis 0.1.1 and @remix-run/cookie 0.5.3
(pinned in package.json / package-lock.json; `python3 scripts/test.py` runs `npm ci`). A
session written by JavaScript is read and changed by Python, and the reverse; cookies for the
same id and options are byte-identical.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from datetime import datetime, timezone
from typing import Any

import pytest
import redis

from websession import create_cookie, create_redis_session_storage

pytestmark = pytest.mark.node

HERE = pathlib.Path(__file__).parent
SECRETS = ["first-secret", "second-secret"]
TTL = 3600
VALUES = {"user": "ü€😀", "roles": [], "prefs": {}, "n": 1, "ratio": 0.1 + 0.2, "ok": True}


@pytest.fixture(scope="module")
def node() -> str:
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("node is not installed; `python3 scripts/test.py` installs nodejs")
    if not (HERE / "node_modules" / "@remix-run" / "session-storage-redis").is_dir():
        pytest.fail("tests/interop/node_modules is missing; run `npm ci` in tests/interop")
    return binary


def js(node: str, spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(HERE / "remix_v3.mjs")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def js_request(node: str, url: str, prefix: str, header: str | None, **spec: Any) -> dict[str, Any]:
    cookie = {"name": "__session", "secrets": SECRETS, "httpOnly": True, "maxAge": TTL}
    return js(
        node,
        {
            "op": "request",
            "url": url,
            "prefix": prefix,
            "ttl": TTL,
            "cookie": cookie,
            "header": header,
            **spec,
        },
    )


def python_storage(url: str, prefix: str) -> Any:
    cookie = create_cookie("__session", secrets=SECRETS, max_age=TTL, format="remix-v3")
    return create_redis_session_storage(url=url, prefix=prefix, cookie=cookie, ttl=TTL, format="remix-v3")


def pair(set_cookie: str | None) -> str:
    assert set_cookie is not None
    return set_cookie.split(";")[0]


def test_a_session_written_by_javascript_is_read_and_changed_by_python(
    node: str, redis_url: str, redis_prefix: str
) -> None:
    written = js_request(node, redis_url, redis_prefix, None, set=VALUES, flash={"notice": "Saved"})
    header = pair(written["setCookie"])
    storage = python_storage(redis_url, redis_prefix)

    session = storage.get_session(header)
    assert not session.is_new and session.id == written["id"]
    assert {key: session[key] for key in VALUES} == VALUES
    assert session.has("notice") and session.get("notice") == "Saved"
    session["from_python"] = [1, {"a": []}]
    session.unset("ok")
    python_cookie = storage.commit_session(session)
    assert python_cookie is not None and pair(python_cookie) == header  # same id, same signature

    keys = [*VALUES, "from_python", "notice"]
    read_back = js_request(node, redis_url, redis_prefix, header, get=keys)
    assert read_back["found"] and read_back["id"] == written["id"]
    expected = {**VALUES, "ok": None, "from_python": [1, {"a": []}], "notice": None}
    assert read_back["got"] == expected
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.ttl(f"{redis_prefix}{written['id']}") <= TTL
    client.close()
    storage.close()


def test_a_session_written_by_python_is_read_and_changed_by_javascript(
    node: str, redis_url: str, redis_prefix: str
) -> None:
    storage = python_storage(redis_url, redis_prefix)
    session = storage.get_session(None)
    session.update(VALUES)
    session.flash("notice", "Welcome")
    header = pair(storage.commit_session(session))

    keys = [*VALUES, "notice"]
    first = js_request(node, redis_url, redis_prefix, header, get=keys, set={"from_js": {"x": [1]}})
    assert first["found"] and first["id"] == session.id
    assert first["got"] == {**VALUES, "notice": "Welcome"}
    assert first["has"]["notice"] is True
    assert pair(first["setCookie"]) == header

    again = storage.get_session(header)
    assert dict(again) == {**VALUES, "from_js": {"x": [1]}}  # the flash lived one request
    assert type(again["ratio"]) is float and again["ratio"] == 0.1 + 0.2


def test_destroying_on_either_side_ends_the_session_for_the_other(
    node: str, redis_url: str, redis_prefix: str
) -> None:
    storage = python_storage(redis_url, redis_prefix)
    written = js_request(node, redis_url, redis_prefix, None, set={"user": 1})
    header = pair(written["setCookie"])
    storage.destroy_session(storage.get_session(header))
    after = js_request(node, redis_url, redis_prefix, header, get=["user"])
    assert not after["found"] and after["got"] == {"user": None}

    session = storage.get_session(None)
    session["user"] = 2
    header = pair(storage.commit_session(session))
    js_request(node, redis_url, redis_prefix, header, destroy=True)
    assert storage.get_session(header).is_new


@pytest.mark.parametrize(
    ("python", "javascript"),
    [
        ({}, {"httpOnly": True}),
        ({"http_only": False}, {}),
        (
            {"max_age": 60, "domain": "example.com", "path": "/app", "secure": True, "same_site": "strict"},
            {
                "httpOnly": True,
                "maxAge": 60,
                "domain": "example.com",
                "path": "/app",
                "secure": True,
                "sameSite": "Strict",
            },
        ),
        (
            {
                "partitioned": True,
                "same_site": "none",
                "expires": datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
            },
            {"httpOnly": True, "partitioned": True, "sameSite": "None", "expires": "2031-05-06T07:08:09Z"},
        ),
    ],
)
def test_cookies_are_byte_identical(node: str, python: dict[str, Any], javascript: dict[str, Any]) -> None:
    value = "2f1c7a52-7d3e-4d8e-9d43-2b7b1c0e9a10"
    ours = create_cookie("__session", secrets=SECRETS, format="remix-v3", **python).serialize(value)
    theirs = js(
        node,
        {
            "op": "serialize",
            "value": value,
            "cookie": {"name": "__session", "secrets": SECRETS, **javascript},
        },
    )
    assert ours == theirs["setCookie"]
