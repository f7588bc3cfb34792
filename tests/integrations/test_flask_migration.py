"""Switching a Flask app from Flask's own cookie sessions to websession without signing anyone
out: ``SessionInterface(storage, migrate_flask_cookie=True)``.

Cookies here are issued by a real Flask app on Flask's default ``SecureCookieSessionInterface``;
the same client then talks to the app after the switch.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import flask
import itsdangerous
import pytest
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup

from websession import ConfigurationError, create_cookie, create_memory_session_storage
from websession.integrations.flask import SessionInterface

FLASK_KEY = "the-app-secret-key"
SINCE = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
TOKEN_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def flask_app(secret_key: str = FLASK_KEY, interface: Any = None) -> flask.Flask:
    """The app before the switch: Flask's own signed-cookie sessions."""
    app = flask.Flask("before")
    app.secret_key = secret_key
    app.testing = True
    if interface is not None:
        app.session_interface = interface

    @app.post("/login")
    def login() -> str:
        flask.session["user"] = "ada"
        flask.session["since"] = SINCE
        flask.session["pair"] = (1, "two")
        flask.session["token"] = b"\x00\xff"
        flask.session["token_id"] = TOKEN_ID
        flask.session.permanent = True
        flask.flash(Markup("<b>Welcome</b>"), "info")
        return "ok"

    return app


def flask_cookie(app: flask.Flask | None = None) -> str:
    """A signed-in visitor's ``session`` cookie, as Flask issued it."""
    client = (app or flask_app()).test_client()
    client.post("/login")
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


class Switched:
    """The app after the switch, a client that still holds Flask's cookie, and what views saw."""

    def __init__(self, storage: Any = None, *, old_cookie: str | None = None, **options: Any) -> None:
        self.storage = storage or create_memory_session_storage(
            cookie=create_cookie("__session", secrets=["new"]), codec="tagged"
        )
        options.setdefault("migrate_flask_cookie", True)
        self.app = app = flask.Flask("after")
        app.secret_key = options.pop("secret_key", FLASK_KEY)
        app.config["SECRET_KEY_FALLBACKS"] = options.pop("fallbacks", [])
        app.testing = True
        app.session_interface = SessionInterface(self.storage, **options)
        self.seen: list[dict[str, Any]] = []

        @app.get("/me")
        def me() -> str:
            self.seen.append(dict(flask.session))
            return "ok"

        @app.get("/messages")
        def messages() -> Any:
            self.seen.append({"messages": flask.get_flashed_messages(with_categories=True)})
            return "ok"

        @app.post("/rename")
        def rename() -> str:
            flask.session["user"] = "grace"
            return "ok"

        @app.post("/logout")
        def logout() -> str:
            flask.session.clear()
            return "ok"

        @app.get("/fail")
        def fail() -> Any:
            flask.session["half"] = "done"
            return "failed", 500

        self.client = app.test_client()
        self.client.set_cookie("session", old_cookie if old_cookie is not None else flask_cookie())

    def get(self, path: str) -> Any:
        return self.client.get(path)

    @property
    def last(self) -> dict[str, Any]:
        return self.seen[-1]


def set_cookies(response: Any, name: str) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{name}=")]


def test_a_visitor_with_a_flask_cookie_keeps_the_session_after_the_switch() -> None:
    switched = Switched()
    response = switched.get("/me")
    data = switched.last
    assert data["user"] == "ada" and data["_permanent"] is True
    assert data["since"] == SINCE and isinstance(data["since"], datetime)
    assert data["pair"] == (1, "two") and data["token"] == b"\x00\xff" and data["token_id"] == TOKEN_ID

    # Our cookie, for the permanent lifetime; Flask's cookie expired with Flask's own attributes.
    (ours,) = set_cookies(response, "__session")
    assert "Max-Age=2678400" in ours
    (old,) = set_cookies(response, "session")
    assert old.startswith("session=;") and "Expires=Thu, 01 Jan 1970" in old and "Path=/" in old
    assert switched.client.get_cookie("session") is None

    switched.get("/me")  # from the store now
    assert switched.last == data
    assert switched.storage.store.count() == 1


def test_flashed_messages_come_over_once_with_their_markup() -> None:
    switched = Switched()
    switched.get("/messages")
    assert switched.last == {"messages": [("info", Markup("<b>Welcome</b>"))]}
    assert type(switched.last["messages"][0][1]) is Markup
    switched.get("/messages")
    assert switched.last == {"messages": []}


def test_each_old_session_is_imported_once() -> None:
    old = flask_cookie()
    switched = Switched(old_cookie=old)
    switched.get("/me")
    switched.client.post("/rename")
    switched.client.set_cookie("session", old)  # the old cookie comes back (a stale tab, a replay)
    response = switched.get("/me")
    assert switched.last["user"] == "grace"  # the websession session wins; nothing re-imported
    assert set_cookies(response, "session")  # and the old cookie is expired again
    assert switched.storage.store.count() == 1


@pytest.mark.parametrize(
    "cookie",
    [
        flask_cookie(flask_app(secret_key="someone-elses-key")),
        flask_cookie()[:-3] + "AAA",  # a broken signature
        "eyJ1c2VyIjoiYWRtaW4ifQ.Zz0000.forged",
        "not even itsdangerous",
    ],
    ids=["other key", "bad signature", "made up", "garbage"],
)
def test_a_forged_flask_cookie_is_ignored_and_expired(cookie: str) -> None:
    switched = Switched(old_cookie=cookie)
    response = switched.get("/me")
    assert switched.last == {}
    assert set_cookies(response, "__session") == [] and switched.storage.store.count() == 0
    assert set_cookies(response, "session")  # expired


def test_a_flask_cookie_past_the_permanent_lifetime_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    long_ago = int(time.time()) - 32 * 24 * 3600  # PERMANENT_SESSION_LIFETIME is 31 days
    with monkeypatch.context() as patch:
        patch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda self: long_ago)
        old = flask_cookie()
    switched = Switched(old_cookie=old)
    switched.get("/me")
    assert switched.last == {} and switched.storage.store.count() == 0


def test_cookies_signed_with_a_fallback_key_are_imported() -> None:
    switched = Switched(secret_key="rotated", fallbacks=[FLASK_KEY])
    switched.get("/me")
    assert switched.last["user"] == "ada"


def test_a_customised_flask_interface_is_read_with_its_own_settings() -> None:
    class Salted(SecureCookieSessionInterface):
        salt = "my-salt"

    old = flask_cookie(flask_app(interface=Salted()))
    default = Switched(old_cookie=old)
    default.get("/me")
    assert default.last == {}  # the default salt does not verify it
    salted = Switched(old_cookie=old, migrate_flask_cookie=Salted())
    salted.get("/me")
    assert salted.last["user"] == "ada"


def test_signing_out_on_the_first_request_leaves_nothing_behind() -> None:
    switched = Switched()
    response = switched.client.post("/logout")
    assert switched.storage.store.count() == 0
    assert set_cookies(response, "session") and switched.client.get_cookie("session") is None
    switched.get("/me")
    assert switched.last == {}


def test_a_failed_first_request_keeps_the_flask_cookie_for_the_next() -> None:
    switched = Switched()
    response = switched.get("/fail")
    assert response.status_code == 500
    assert response.headers.getlist("Set-Cookie") == [] and switched.storage.store.count() == 0
    switched.get("/me")
    assert switched.last["user"] == "ada" and "half" not in switched.last


def test_with_plain_json_values_it_cannot_hold_are_left_out_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = create_memory_session_storage(cookie=create_cookie("__session", secrets=["new"]))
    switched = Switched(plain)
    with caplog.at_level(logging.WARNING, logger="websession"):
        switched.get("/me")
    assert switched.last["user"] == "ada" and switched.last["pair"] == (1, "two")
    assert {"since", "token", "token_id"}.isdisjoint(switched.last)
    assert "'since'" in caplog.text and "'token'" in caplog.text and "'token_id'" in caplog.text
    switched.get("/me")
    assert switched.last["pair"] == [1, "two"]  # JSON has no tuples


def test_a_websession_cookie_of_the_same_name_replaces_flask_s() -> None:
    storage = create_memory_session_storage(cookie=create_cookie("session", secrets=["new"]), codec="tagged")
    switched = Switched(storage)
    response = switched.get("/me")
    assert switched.last["user"] == "ada"
    (only,) = set_cookies(response, "session")
    assert "Max-Age=2678400" in only  # ours, carrying the new id
    switched.get("/me")
    assert switched.last["user"] == "ada"


def test_without_the_option_the_flask_cookie_is_left_alone() -> None:
    switched = Switched(migrate_flask_cookie=False)
    response = switched.get("/me")
    assert switched.last == {} and set_cookies(response, "session") == []


def test_no_secret_key_is_a_configuration_error() -> None:
    switched = Switched(secret_key=None)
    with pytest.raises(ConfigurationError, match="secret_key"):
        switched.get("/me")


def test_requests_without_the_flask_cookie_cost_nothing_more() -> None:
    switched = Switched()
    switched.client.delete_cookie("session")
    response = switched.get("/me")
    assert switched.last == {} and response.headers.getlist("Set-Cookie") == []
    assert switched.storage.store.count() == 0


def test_lazy_stays_lazy_for_a_websession_cookie_of_the_same_name() -> None:
    """Under lazy=True a request that may carry Flask's cookie is read up front, for the
    import; once the cookie of that name is ours, requests that never use the session read
    nothing again."""
    storage = create_memory_session_storage(cookie=create_cookie("session", secrets=["new"]), codec="tagged")
    switched = Switched(storage, lazy=True)

    @switched.app.get("/plain")
    def plain() -> str:
        return "plain"

    switched.get("/me")  # imported: the cookie named "session" is ours from now on
    assert switched.last["user"] == "ada"
    reads: list[str] = []
    original = storage.store.read

    def counted(*args: Any) -> Any:
        reads.append("read")
        return original(*args)

    storage.store.read = counted
    assert switched.get("/plain").text == "plain"
    assert reads == []
    switched.get("/me")
    assert switched.last["user"] == "ada" and reads == ["read"]
