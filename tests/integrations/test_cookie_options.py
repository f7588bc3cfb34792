"""Per-request cookie options (``cookie_options=``): a callable given the request returns
cookie attribute overrides for its response, e.g. one Domain per tenant."""

from __future__ import annotations

from datetime import timedelta
from wsgiref.validate import validator

import flask
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from websession import ConfigurationError
from websession.integrations import wsgi
from websession.integrations.asgi import SessionMiddleware
from websession.integrations.flask import SessionInterface

from .helpers import session_id_of
from .test_wsgi import BufferedClient


def tenant_domain(scope) -> dict[str, str]:
    return {"domain": Request(scope).url.hostname or ""}


async def login(request: Request) -> PlainTextResponse:
    request.session["user"] = "ada"
    return PlainTextResponse("ok")


async def logout(request: Request) -> PlainTextResponse:
    request.session.destroy()
    return PlainTextResponse("bye")


ROUTES = [Route("/login", login), Route("/logout", logout)]


def make_app(storage, cookie_options, **options) -> Starlette:
    middleware = Middleware(SessionMiddleware, storage=storage, cookie_options=cookie_options, **options)
    return Starlette(routes=ROUTES, middleware=[middleware])


def session_cookie(response) -> str:
    [mine] = [c for c in response.headers.get_list("set-cookie") if c.startswith("__session=")]
    return mine


def expires_in(storage, set_cookie: str) -> timedelta:
    session_id = session_id_of(storage, set_cookie)
    assert session_id is not None
    record = storage.store.read(session_id, None)
    assert record is not None and record.expires is not None
    return record.expires - storage.clock()


def test_two_hosts_get_two_domains_and_sign_out_expires_the_right_one(storage):
    app = make_app(storage, tenant_domain)
    for host in ("a.example.com", "b.example.org"):
        with TestClient(app, base_url=f"http://{host}") as client:
            signed_in = session_cookie(client.get("/login"))
            assert f"Domain={host}" in signed_in
            value = signed_in.split(";")[0]
            signed_out = session_cookie(client.get("/logout", headers={"Cookie": value}))
            # The browser forgets a cookie only when the expiring one names the same Domain.
            assert f"Domain={host}" in signed_out and "Expires=Thu, 01 Jan 1970" in signed_out


def test_a_max_age_override_reaches_the_cookie_and_the_stores_expiry(storage):
    app = make_app(storage, lambda scope: {"max_age": 60})
    with TestClient(app) as client:
        header = session_cookie(client.get("/login"))
    assert "Max-Age=60;" in header  # the storage's cookie says 3600
    assert timedelta(seconds=50) < expires_in(storage, header) <= timedelta(seconds=60)


def test_the_callable_sees_each_request_and_none_means_no_overrides(storage):
    seen = []

    def options(scope):
        seen.append(scope["path"])
        return None

    with TestClient(make_app(storage, options)) as client:
        header = session_cookie(client.get("/login"))
        assert "Domain" not in header and "Max-Age=3600" in header
    assert seen == ["/login"]


def test_the_callable_is_not_called_for_a_session_that_was_never_loaded(storage):
    seen = []

    def options(scope):
        seen.append(scope["path"])
        return {"domain": "example.com"}

    async def static(request: Request) -> PlainTextResponse:
        return PlainTextResponse("static")

    app = Starlette(
        routes=[Route("/static", static)],
        middleware=[Middleware(SessionMiddleware, storage=storage, cookie_options=options, lazy=True)],
    )
    with TestClient(app) as client:
        client.get("/static")
    assert seen == []


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ({"domian": "example.com"}, "unknown cookie option 'domian'"),
        ({"max_age": "one hour"}, "invalid cookie option"),
        ({"max_age": float("inf")}, "max_age must be a finite number"),
        ({"domain": "a.example; Secure"}, "forbidden character"),
        ({"same_site": "sometimes"}, "is not lax, strict or none"),
        ([("domain", "example.com")], "returned list, not a mapping"),
        ("example.com", "returned str, not a mapping"),
    ],
)
def test_invalid_overrides_fail_loudly_at_commit_and_store_nothing(storage, returned, message):
    with (
        TestClient(make_app(storage, lambda scope: returned)) as client,
        pytest.raises(ConfigurationError, match=message) as failed,
    ):
        client.get("/login")
    assert failed.value.solution
    assert storage.store.count() == 0  # checked before the store was asked to write anything


def test_wsgi_cookie_options_receive_the_environ(storage):
    def app(environ, start_response):
        wsgi.get_session(environ)["user"] = "ada"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    def per_host(environ):
        return {"domain": environ["HTTP_HOST"].split(":")[0], "max_age": 120}

    client = BufferedClient(validator(wsgi.SessionMiddleware(app, storage, cookie_options=per_host)))
    for host in ("a.example.com", "b.example.org"):
        header = client.get("/", base_url=f"http://{host}").headers["Set-Cookie"]
        assert f"Domain={host}" in header and "Max-Age=120;" in header
        assert timedelta(seconds=110) < expires_in(storage, header) <= timedelta(seconds=120)
    bad = BufferedClient(wsgi.SessionMiddleware(app, storage, cookie_options=lambda environ: {"ttl": 5}))
    with pytest.raises(ConfigurationError, match="unknown cookie option 'ttl'"):
        bad.get("/")


def test_flask_cookie_options_receive_the_request_and_win_over_the_permanent_lifetime(storage):
    app = flask.Flask(__name__)
    app.permanent_session_lifetime = timedelta(days=3)
    app.session_interface = SessionInterface(
        storage, cookie_options=lambda request: {"domain": request.host.split(":")[0], "max_age": 90}
    )

    @app.get("/")
    def home():
        flask.session["user"] = "ada"
        flask.session.permanent = True
        return "ok"

    client = app.test_client()
    for host in ("a.example.com", "b.example.org"):
        header = client.get("/", base_url=f"http://{host}").headers["Set-Cookie"]
        assert f"Domain={host}" in header and "Max-Age=90;" in header
        assert timedelta(seconds=80) < expires_in(storage, header) <= timedelta(seconds=90)
    app.session_interface = SessionInterface(storage, cookie_options=lambda request: {"path": "a b"})
    app.testing = True
    with pytest.raises(ConfigurationError, match="forbidden character"):
        client.get("/")
