"""Flask: ``flask.session`` unchanged over websession, via ``app.session_interface``."""

from __future__ import annotations

from datetime import timedelta

import flask
import pytest

from websession import SessionStorage, create_cookie
from websession.integrations.flask import FlaskSession, SessionInterface
from websession.stores.memory import MemoryStore

from .helpers import SECRET, stored


def make_app(storage, **options) -> flask.Flask:
    app = flask.Flask(__name__)
    app.session_interface = SessionInterface(storage, **options)

    @app.get("/")
    def home():
        flask.session["visits"] = flask.session.get("visits", 0) + 1
        return {
            "visits": flask.session["visits"],
            "user": flask.session.get("user"),
            "messages": flask.get_flashed_messages(),
        }

    @app.get("/peek")
    def peek():
        return {
            "user": flask.session.get("user"),
            "new": flask.session.new,
            "modified": flask.session.modified,
        }

    @app.post("/login")
    def login():
        flask.session.regenerate()  # a websession extra: defeat fixation at sign-in
        flask.session["user"] = flask.request.form["name"]
        flask.session.permanent = flask.request.form.get("remember") == "yes"
        flask.flash(f"Welcome, {flask.session['user']}")
        flask.flash("Check your cart", "info")
        return flask.redirect("/")

    @app.get("/categories")
    def categories():
        return {"messages": flask.get_flashed_messages(with_categories=True)}

    @app.post("/logout")
    def logout():
        flask.session.clear()
        return flask.redirect("/")

    @app.post("/cart/<item>")
    def add(item):
        flask.session.setdefault("cart", []).append(item)  # in-place edit: detected
        return {"cart": flask.session["cart"]}

    @app.post("/shadow")
    def shadow():
        # A copy edited outside the session: only session.modified = True saves it.
        flask.session["prefs"] = {"theme": "light"}
        return "ok"

    @app.post("/force")
    def force():
        flask.session.modified = True
        return {"modified": flask.session.modified}

    @app.get("/public")
    def public():
        return "no session needed"

    return app


def session_cookies(response) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith("__session=")]


def test_visits_login_flash_and_logout(storage):
    client = make_app(storage).test_client()
    assert client.get("/").json == {"visits": 1, "user": None, "messages": []}
    before = client.get_cookie("__session").value
    response = client.post("/login", data={"name": "ada"}, follow_redirects=True)
    assert response.json == {"visits": 2, "user": "ada", "messages": ["Welcome, ada", "Check your cart"]}
    after = client.get_cookie("__session").value
    assert after != before and stored(storage, before) is None
    assert client.get("/").json["messages"] == []  # flashes show once
    client.post("/logout")
    assert client.get_cookie("__session") is None
    assert stored(storage, after) is None  # cleared = destroyed, as Flask's own sessions do


def test_flash_categories(storage):
    client = make_app(storage).test_client()
    client.post("/login", data={"name": "ada"})
    assert client.get("/categories").json == {
        "messages": [["message", "Welcome, ada"], ["info", "Check your cart"]]
    }


def test_no_cookie_no_store_io_and_new_is_true(storage, counting_store):
    response = make_app(storage).test_client().get("/peek")
    assert response.json == {"user": None, "new": True, "modified": False}
    assert counting_store.calls == [] and session_cookies(response) == []


def test_accessed_session_adds_vary_cookie(storage):
    client = make_app(storage).test_client()
    assert "Cookie" in client.get("/peek").headers.get("Vary", "")
    assert "Vary" not in client.get("/public").headers


def test_in_place_edits_of_session_values_are_saved(storage):
    client = make_app(storage).test_client()
    client.post("/cart/tea")
    assert client.post("/cart/cake").json == {"cart": ["tea", "cake"]}
    assert stored(storage, client.get_cookie("__session").value)["cart"] == ["tea", "cake"]


def test_session_modified_true_forces_a_save(storage, counting_store):
    client = make_app(storage).test_client()
    client.post("/shadow")
    value = client.get_cookie("__session").value
    counting_store.calls.clear()
    assert client.post("/force").json == {"modified": True}
    assert counting_store.calls == ["read", "update"]
    assert stored(storage, value) == {"prefs": {"theme": "light"}}


def test_permanent_sessions_get_the_permanent_lifetime():
    storage = SessionStorage(cookie=create_cookie("__session", secrets=[SECRET]), store=MemoryStore())
    app = make_app(storage)
    app.permanent_session_lifetime = timedelta(days=3)
    client = app.test_client()
    remembered = client.post("/login", data={"name": "ada", "remember": "yes"})
    assert "Max-Age=259200" in session_cookies(remembered)[0]
    record = storage.store.read(storage.cookie.parse(session_cookies(remembered)[0].split(";")[0]), None)
    assert record.expires is not None
    assert timedelta(days=2, hours=23) < record.expires - storage.clock() <= timedelta(days=3)

    other = make_app(storage).test_client()
    browser_session = other.post("/login", data={"name": "bob"})
    assert "Max-Age" not in session_cookies(browser_session)[0]


def test_setting_permanent_to_its_current_value_writes_nothing(storage, counting_store):
    app = make_app(storage)

    @app.get("/again")
    def again():
        flask.session.permanent = False
        return "ok"

    client = app.test_client()
    client.get("/")
    counting_store.calls.clear()
    client.get("/again")
    assert counting_store.calls == ["read"]


def test_session_transaction_in_the_test_client(storage):
    client = make_app(storage).test_client()
    with client.session_transaction() as session:
        assert isinstance(session, FlaskSession)
        session["user"] = "grace"
    assert client.get("/").json["user"] == "grace"


def test_store_down_while_reading_gives_503_through_flask_error_handlers(sqlite_storage, outage):
    app = make_app(sqlite_storage)
    client = app.test_client()
    client.get("/")
    outage.block_all()
    response = client.get("/")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert session_cookies(response) == []
    assert client.get("/public").text == "no session needed"  # pages without the session still work
    outage.end()
    assert client.get("/").json["visits"] == 2


def test_errorhandler_503_customises_the_page(sqlite_storage, outage):
    app = make_app(sqlite_storage)

    @app.errorhandler(503)
    def maintenance(error):
        return "be right back", 503

    client = app.test_client()
    client.get("/")
    outage.block_all()
    assert client.get("/peek").text == "be right back"
    outage.end()
    outage.block_writes()
    assert client.get("/").text == "be right back"  # also when saving fails


def test_store_down_while_saving_gives_503_and_writes_nothing(sqlite_storage, outage):
    client = make_app(sqlite_storage).test_client()
    client.get("/")
    outage.block_writes()
    response = client.get("/")
    assert response.status_code == 503 and session_cookies(response) == []
    assert b"visits" not in response.data
    outage.end()
    assert client.get("/").json["visits"] == 2


def test_status_is_configurable(sqlite_storage, outage):
    client = make_app(sqlite_storage, unavailable_status=500).test_client()
    client.get("/")
    outage.block_all()
    assert client.get("/").status_code == 500


def test_values_json_cannot_hold_are_refused(storage):
    app = make_app(storage)

    @app.get("/bad")
    def bad():
        flask.session["when"] = object()
        return "unreachable"

    app.testing = True  # let the exception through to the test
    with pytest.raises(TypeError, match="'when'"):
        app.test_client().get("/bad")


def failing_app(storage, **options) -> flask.Flask:
    app = make_app(storage, **options)

    @app.get("/transfer")
    def transfer():
        flask.session["balance"] = flask.session.get("balance", 100) - 30  # the debit
        raise RuntimeError("the credit failed")

    return app


def test_an_unhandled_exception_commits_nothing(storage):
    app = failing_app(storage)
    client = app.test_client()
    client.get("/")
    response = client.get("/transfer")
    assert response.status_code == 500
    assert "Set-Cookie" not in response.headers
    assert stored(storage, client.get_cookie("__session").value) == {"visits": 1}


def test_an_unhandled_exception_in_a_new_session_stores_nothing(storage):
    response = failing_app(storage).test_client().get("/transfer")
    assert response.status_code == 500
    assert "Set-Cookie" not in response.headers
    assert storage.store.count() == 0


def test_a_handled_4xx_still_commits(storage):
    app = make_app(storage)

    @app.get("/missing")
    def missing():
        flask.session["looked"] = True
        flask.abort(404)

    client = app.test_client()
    assert client.get("/missing").status_code == 404
    assert stored(storage, client.get_cookie("__session").value) == {"looked": True}


def test_commit_on_error_lets_error_handlers_commit(storage):
    app = failing_app(storage, commit_on_error=True)
    client = app.test_client()
    client.get("/")
    assert client.get("/transfer").status_code == 500
    assert stored(storage, client.get_cookie("__session").value) == {"visits": 1, "balance": 70}
