"""The demo app in process (every store kind) and `websession demo` as a real process."""

from __future__ import annotations

import html
import re
import stat

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from websession import SessionStorage
from websession.cli import main
from websession.demo import COOKIE_MAX_AGE, create_app, demo_secrets, open_demo_storage

from .server import demo_process


@pytest.fixture(params=["sqlite", "file", "memory", "cookie"])
def demo(request, tmp_path, monkeypatch):
    monkeypatch.delenv("WEBSESSION_SECRET", raising=False)
    urls = {
        "sqlite": None,
        "file": f"file://{tmp_path}/files",
        "memory": "memory://",
        "cookie": "cookie://",
    }
    storage, label = open_demo_storage(urls[request.param], tmp_path / "demo")
    with TestClient(create_app(storage, label)) as client:
        yield client, storage


def visits(page: str) -> int:
    found = re.search(r'id="visits">(\d+)<', page)
    assert found, page
    return int(found.group(1))


def test_counter_sign_in_flash_cart_sign_out(demo):
    client, storage = demo
    assert [visits(client.get("/").text) for _ in range(2)] == [1, 2]
    page = client.post("/login", data={"username": "  ada  "}).text
    assert 'id="notice"' in page and "Welcome, ada!" in page and '<strong id="user">ada</strong>' in page
    assert 'id="notice"' not in client.get("/").text
    client.post("/cart/add", data={"item": "Tea"})
    page = client.post("/cart/add", data={"item": "Tea"}).text
    assert "<span>Tea</span><span>&times; 2</span>" in page
    signed_in = client.cookies["__session"]
    page = client.post("/logout").text
    assert "Signed out" in page and 'id="sign-in"' in page and "Your cart is empty" in page
    if isinstance(storage, SessionStorage):  # cookie storage cannot revoke a copied cookie
        with TestClient(client.app, cookies={"__session": signed_in}) as thief:
            assert 'id="sign-in"' in thief.get("/").text


def test_inspector_shows_short_id_expiry_and_record(demo):
    client, storage = demo
    client.post("/login", data={"username": "ada"})
    page = html.unescape(client.get("/session").text)
    assert '"user": "ada"' in page and "verifies</th><td>yes" in page
    if isinstance(storage, SessionStorage):
        session_id = storage.cookie.parse(f"__session={client.cookies['__session']}")
        assert f"<code>{session_id[:8]}…</code>" in page
        assert session_id not in page  # never the whole id
        assert re.search(r"expires</th><td>\d{4}-\d\d-\d\d \d\d:\d\d", page)


def test_inspector_before_anything_is_stored(demo):
    client, _ = demo
    page = client.get("/session").text
    assert "Nothing is stored for this browser yet" in page and "not set yet" in page


def test_forget_destroys_the_session(demo):
    client, _ = demo
    client.get("/")
    client.get("/")
    assert visits(client.post("/forget").text) == 1  # the redirect home starts afresh


def test_clear_cart_and_unknown_products(demo):
    client, _ = demo
    client.post("/cart/add", data={"item": "Cake"})
    assert "Your cart is empty" in client.post("/cart/clear").text
    assert client.post("/cart/add", data={"item": "Caviar"}).status_code == 400


def test_visitor_input_is_escaped(demo):
    client, _ = demo
    page = client.post("/login", data={"username": "<script>alert(1)</script>"}).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_empty_name_signs_in_as_guest(demo):
    client, _ = demo
    assert '<strong id="user">guest</strong>' in client.post("/login", data={"username": "   "}).text


def test_secret_is_generated_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("WEBSESSION_SECRET", raising=False)
    first = demo_secrets(tmp_path / "d")
    assert first == demo_secrets(tmp_path / "d") and len(first[0]) >= 40
    assert stat.S_IMODE((tmp_path / "d" / "secret").stat().st_mode) == 0o600
    monkeypatch.setenv("WEBSESSION_SECRET", "new, old")
    assert demo_secrets(tmp_path / "d") == ["new", "old"]


def test_store_url_options_win_and_labels_hide_passwords(tmp_path, monkeypatch):
    monkeypatch.delenv("WEBSESSION_SECRET", raising=False)
    storage, label = open_demo_storage("memory://?secrets=given&max_age=60", tmp_path)
    assert storage.cookie.secrets == ("given",) and storage.cookie.options.max_age == 60
    assert label == "memory://"
    storage, _ = open_demo_storage("memory://", tmp_path)
    assert storage.cookie.options.max_age == COOKIE_MAX_AGE and storage.cookie.secrets == tuple(
        demo_secrets(tmp_path)
    )
    from websession.demo import _label

    assert _label("redis://user:hunter2@cache:6379/0?prefix=x") == "redis://***@cache:6379/0"


def test_default_store_is_sqlite_in_the_demo_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("WEBSESSION_SECRET", raising=False)
    storage, label = open_demo_storage(None, tmp_path / "here")
    assert label == f"sqlite://{tmp_path / 'here' / 'sessions.db'}"
    assert (tmp_path / "here" / "sessions.db").exists() and (tmp_path / "here" / "secret").exists()
    storage.close()


def test_cli_refuses_an_unknown_store_url(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--store", "bogus://x", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown store URL scheme 'bogus'" in result.output


def test_cli_version_and_help():
    runner = CliRunner()
    assert runner.invoke(main, ["--version"]).output.strip().endswith("0.1.0")
    result = runner.invoke(main, ["demo", "--help"])
    assert result.exit_code == 0 and "--store URL" in result.output and "127.0.0.1" in result.output


def test_python_m_websession_demo_serves_over_http(tmp_path):
    with (
        demo_process(tmp_path / "demo", "--store", "memory://") as base,
        httpx.Client(base_url=base) as client,
    ):
        assert [visits(client.get("/").text) for _ in range(3)] == [1, 2, 3]
        assert "memory://" in client.get("/session").text
    assert (tmp_path / "demo" / "secret").exists()


def test_your_devices_lists_both_browsers_and_signs_one_out(demo):
    client, storage = demo
    if not (isinstance(storage, SessionStorage) and storage.store.user_index):
        page = client.get("/devices").text
        assert "cannot keep a per-user index" in page
        return
    laptop_agent = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"}
    phone_agent = {"user-agent": "Mozilla/5.0 (Android 14) Chrome/130.0 Mobile"}
    assert "Sign in on the home page first" in client.get("/devices").text
    client.post("/login", data={"username": "ada"}, headers=laptop_agent)
    with TestClient(client.app) as phone:
        phone.post("/login", data={"username": "ada"}, headers=phone_agent)
        page = client.get("/devices").text
        assert page.count('class="device') == 2
        assert "Firefox on Linux" in page and "Chrome on Android" in page
        assert "this browser" in page and 'id="revoke-others"' in page
        # The laptop signs the phone out; the phone's next request is signed out.
        key = re.search(r'name="key" value="([^"]+)"', page).group(1)
        page = client.post("/devices/revoke", data={"key": key}).text
        assert "That device is signed out." in page and page.count('class="device') == 1
        assert 'id="sign-in"' in phone.get("/").text
        # A key of another user's session, posted by ada, signs nobody out.
        phone.post("/login", data={"username": "grace"})
        client.post("/devices/revoke", data={"key": storage.sessions_of("grace")[0].key})
        assert '<strong id="user">grace</strong>' in phone.get("/").text


def test_sign_out_everywhere_else_keeps_this_browser(demo):
    client, storage = demo
    if not (isinstance(storage, SessionStorage) and storage.store.user_index):
        return
    client.post("/login", data={"username": "ada"})
    others = [TestClient(client.app) for _ in range(2)]
    for other in others:
        other.post("/login", data={"username": "ada"})
    page = client.post("/devices/revoke-others").text
    assert "Signed out everywhere else (2 other devices)." in page
    assert page.count('class="device') == 1
    assert all('id="sign-in"' in other.get("/").text for other in others)
    assert '<strong id="user">ada</strong>' in client.get("/").text
