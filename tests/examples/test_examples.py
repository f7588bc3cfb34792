"""Every app in examples/ runs as its README says and behaves the same over real HTTP:
a visit counter, sign-in with a new id, sign-out after which the old cookie is worthless."""

from __future__ import annotations

import sys

import httpx
import pytest

from ..demo.server import ROOT, free_port, server_process

EXAMPLES = ["starlette_app", "fastapi_app", "flask_app", "django_app", "wsgi_app"]
COOKIE = {"django_app": "sessionid"}


def sign_in(client: httpx.Client, example: str) -> httpx.Response:
    if example == "fastapi_app":
        return client.post("/login", json={"username": "ada"}, follow_redirects=True)
    return client.post("/login", data={"username": "ada"}, follow_redirects=True)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example(example, tmp_path):
    port = free_port()
    env = {
        "PORT": str(port),
        "WEBSESSION_STORE": f"sqlite://{tmp_path}/sessions.db",
        "WEBSESSION_SECRET": "t",
    }
    command = [sys.executable, str(ROOT / "examples" / f"{example}.py")]
    name = COOKIE.get(example, "__session")
    with server_process(command, port, tmp_path / "server.log", env=env) as base:
        with httpx.Client(base_url=base) as client:
            assert [client.get("/").json()["visits"] for _ in range(2)] == [1, 2]
            anonymous = client.cookies[name]
            page = sign_in(client, example).json()
            assert (page["user"], page["visits"]) == ("ada", 3)
            signed_in = client.cookies[name]
            assert signed_in != anonymous
            if example == "flask_app":
                assert page["messages"] == ["Welcome, ada"]
            if example == "fastapi_app":
                assert page["notice"] == "Welcome, ada"
            after = client.post("/logout", follow_redirects=True).json()
            assert (after["user"], after["visits"]) == (None, 1)
        with httpx.Client(base_url=base, cookies={name: signed_in}) as thief:
            stolen = thief.get("/").json()
            assert (stolen["user"], stolen["visits"]) == (None, 1)  # a fresh, empty session
    assert (tmp_path / "sessions.db").exists()
