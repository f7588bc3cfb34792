"""Django: a real (minimal) project whose SESSION_ENGINE is websession, driven by Django's
test client: login's cycle_key, logout's flush, messages, expiry, clearsessions, outages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from datetime import timedelta

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.django_project.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.sessions.backends.base import UpdateError  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402

from websession import SessionStorage, create_cookie  # noqa: E402
from websession.integrations.django import SessionStore, derived_secret, get_storage  # noqa: E402
from websession.stores.sqlite import SqliteStore  # noqa: E402

from .helpers import SqliteOutage  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def project():
    setup_test_environment()
    call_command("migrate", verbosity=0, interactive=False)
    User.objects.filter(username="ada").delete()
    User.objects.create_user("ada", password="lovelace")
    yield
    teardown_test_environment()


@pytest.fixture
def client() -> Client:
    return Client()


def sessionid(client: Client) -> str | None:
    morsel = client.cookies.get(settings.SESSION_COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


def record_for(key: str):
    storage = get_storage()
    session_id = SessionStore(key).session_id
    return None if session_id is None else storage.store.read(session_id, None)


def test_anonymous_request_without_session_use_sets_no_cookie(client):
    response = client.get("/messages")
    assert response.json() == {"messages": []}
    assert sessionid(client) is None


def test_session_data_persists_and_the_cookie_is_the_signed_id(client):
    assert [client.get("/").json()["visits"] for _ in range(3)] == [1, 2, 3]
    key = sessionid(client)
    storage = get_storage()
    session_id = SessionStore(key).session_id
    assert session_id is not None and key != session_id
    # The cookie value is exactly what websession (and Remix) would send for this id.
    assert storage.cookie.serialize(session_id).split(";")[0] == f"{storage.cookie.name}={key}"
    assert storage.cookie.secrets == (derived_secret(settings.SECRET_KEY),)
    assert record_for(key).data == {"visits": 3}


def test_login_cycles_the_key_and_keeps_the_data(client):
    client.get("/")
    client.post("/cart", {"item": "tea"})
    before = sessionid(client)
    response = client.post("/login", {"username": "ada", "password": "lovelace"})
    assert response.status_code == 302
    after = sessionid(client)
    assert after != before
    assert record_for(before) is None  # the pre-login record is gone: no fixation
    assert client.get("/").json() == {"user": "ada", "visits": 2, "cart": ["tea"]}
    data = record_for(after).data
    assert data["_auth_user_id"] == str(User.objects.get(username="ada").pk)


def test_async_views_and_the_async_client():
    async def visit_twice():
        client = AsyncClient()
        first = await client.get("/async")
        second = await client.get("/async")
        return first.json(), second.json(), client.cookies[settings.SESSION_COOKIE_NAME].value

    first, second, key = asyncio.run(visit_twice())
    assert (first, second) == ({"visits": 1}, {"visits": 2})
    assert record_for(key).data == {"visits": 2}


def test_bad_credentials(client):
    assert client.post("/login", {"username": "ada", "password": "nope"}).status_code == 401


def test_logout_flushes_and_the_old_cookie_stops_working(client):
    client.post("/login", {"username": "ada", "password": "lovelace"})
    signed_in = sessionid(client)
    client.post("/logout")
    assert record_for(signed_in) is None
    assert sessionid(client) is None
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = signed_in
    assert replay.get("/").json()["user"] is None


def test_test_client_login_and_session_helpers(client):
    assert client.login(username="ada", password="lovelace")
    assert client.get("/").json()["user"] == "ada"
    session = client.session
    assert isinstance(session, SessionStore)
    session["cart"] = ["cake"]
    session.save()
    assert client.get("/").json()["cart"] == ["cake"]
    client.logout()
    assert client.get("/").json()["user"] is None


def test_messages_framework_in_the_session(client):
    response = client.get("/notify", follow=True)
    assert response.json() == {"messages": ["Saved!"]}
    assert client.get("/messages").json() == {"messages": []}


def test_concurrent_saves_touching_different_keys_both_survive(client):
    client.get("/")
    key = sessionid(client)
    first, second = SessionStore(key), SessionStore(key)
    first["a"], second["b"] = 1, 2
    first.save()
    second.save()
    assert record_for(key).data == {"visits": 1, "a": 1, "b": 2}


def test_a_session_deleted_meanwhile_is_never_brought_back(client):
    client.get("/")
    key = sessionid(client)
    slow = SessionStore(key)
    slow["late"] = True
    SessionStore(key).flush()
    with pytest.raises(UpdateError):
        slow.save()
    assert record_for(key) is None


def test_a_session_deleted_during_a_request_answers_400(client):
    client.get("/")
    key = sessionid(client)
    response = client.get("/race")
    assert response.status_code == 400  # Django's SessionInterrupted
    assert record_for(key) is None


def test_a_session_deleted_between_requests_starts_afresh(client):
    client.get("/")
    SessionStore(sessionid(client)).delete()
    assert client.get("/").json()["visits"] == 1


def test_clear_without_load_replaces_the_stored_data(client):
    client.get("/")
    client.post("/cart", {"item": "tea"})
    key = sessionid(client)
    session = SessionStore(key)
    session.clear()
    session["only"] = True
    session.save()
    assert record_for(key).data == {"only": True}


def test_tampered_and_foreign_keys_are_ignored(client):
    client.cookies[settings.SESSION_COOKIE_NAME] = "x" * 32  # a Django-db style key
    assert client.get("/").json()["visits"] == 1
    forged = sessionid(client)[:-3] + "AAA"
    assert SessionStore(forged).session_key is None
    assert SessionStore("short").session_key is None
    assert SessionStore("bad;key" * 3).session_key is None
    assert not SessionStore().exists(forged)


def test_set_expiry_zero_gives_a_browser_session_cookie_but_a_bounded_record(client):
    client.get("/expire-at-close")
    morsel = client.cookies[settings.SESSION_COOKIE_NAME]
    assert morsel["max-age"] == ""
    record = record_for(morsel.value)
    remaining = record.expires - get_storage().store.clock()
    assert (
        timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)
        < remaining
        <= timedelta(seconds=settings.SESSION_COOKIE_AGE)
    )


def test_custom_expiry_reaches_the_store(client):
    store = SessionStore()
    store["x"] = 1
    store.set_expiry(300)
    store.save()
    remaining = record_for(store.session_key).expires - get_storage().store.clock()
    assert timedelta(seconds=240) < remaining <= timedelta(seconds=300)


def test_secret_key_rotation_resigns_the_cookie(client):
    client.get("/")
    old_key = sessionid(client)
    with override_settings(SECRET_KEY="a-brand-new-secret", SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]):
        assert client.get("/").json()["visits"] == 2
        new_key = sessionid(client)
        assert new_key != old_key
        assert SessionStore(new_key).session_id == SessionStore(old_key).session_id
    with override_settings(SECRET_KEY="yet-another-secret", SECRET_KEY_FALLBACKS=[]):
        assert SessionStore(old_key).session_key is None


def test_clearsessions_purges_expired_records():
    store = get_storage().store
    expired = store.create({"old": True}, store.clock() - timedelta(seconds=5))
    live = store.create({"new": True}, store.clock() + timedelta(hours=1))
    call_command("clearsessions")
    assert store.read(live, None) is not None
    assert expired not in {id for id, _ in store.scan()}
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        rows = db.execute(f"SELECT id FROM {store.table} WHERE id IN (?, ?)", (expired, live)).fetchall()
    assert rows == [(live,)]


def test_storage_setting_forms(tmp_path):
    storage = SessionStorage(
        cookie=create_cookie("s", secrets=["own"]), store=SqliteStore(tmp_path / "own.db")
    )
    with override_settings(WEBSESSION_STORAGE=storage):
        assert get_storage() is storage
    with override_settings(WEBSESSION_STORAGE=lambda: storage):
        assert get_storage() is storage
    from .django_project import sessions

    for dotted in ("storage", "make_storage"):
        with override_settings(WEBSESSION_STORAGE=f"tests.integrations.django_project.sessions.{dotted}"):
            assert get_storage() is sessions.storage
    with override_settings(WEBSESSION_STORAGE=f"sqlite:///{tmp_path}/url.db?secrets=mine"):
        assert get_storage().cookie.secrets == ("mine",)
    from django.core.exceptions import ImproperlyConfigured

    with (
        override_settings(WEBSESSION_STORAGE="cookie://"),
        pytest.raises(ImproperlyConfigured, match="store-backed"),
    ):
        get_storage()
    with (
        override_settings(WEBSESSION_STORAGE=None),
        pytest.raises(ImproperlyConfigured, match="WEBSESSION_STORAGE"),
    ):
        get_storage()


@pytest.fixture
def down(tmp_path):
    storage = SessionStorage(
        cookie=create_cookie("s", secrets=["k"]), store=SqliteStore(tmp_path / "down.db", timeout=0.05)
    )
    outage = SqliteOutage(storage.store)
    with override_settings(WEBSESSION_STORAGE=storage):
        yield outage
    outage.end()
    storage.close()


def test_store_down_while_loading_answers_503(client, down):
    client.get("/")
    down.block_all()
    response = client.get("/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    down.end()
    assert client.get("/").json()["visits"] == 2


def test_store_down_while_saving_answers_503(client, down):
    client.get("/")
    down.block_writes()
    response = client.get("/")
    assert response.status_code == 503
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    down.end()
    assert client.get("/").json()["visits"] == 2


def test_unavailable_status_setting(client, down):
    client.get("/")
    down.block_all()
    with override_settings(WEBSESSION_UNAVAILABLE_STATUS=500):
        assert client.get("/").status_code == 500


# -- a lifetime that is already over, and the storage's own rules, on every kind of store --------


@pytest.fixture(params=["memory", "sqlite", "file", "redis"])
def engine_storage(request, tmp_path):
    """A storage of each kind behind the engine, as WEBSESSION_STORAGE."""
    from websession import (
        create_file_session_storage,
        create_memory_session_storage,
        create_redis_session_storage,
        create_sqlite_session_storage,
    )

    def make(**options):
        cookie = create_cookie("sessionid", secrets=["k"])
        if "ttl" in options and request.param != "redis":
            options["default_ttl"] = options.pop("ttl")  # the same meaning under its older name
        if request.param == "memory":
            return create_memory_session_storage(cookie=cookie, **options)
        if request.param == "sqlite":
            return create_sqlite_session_storage(path=tmp_path / "s.db", cookie=cookie, **options)
        if request.param == "file":
            return create_file_session_storage(dir=tmp_path / "files", cookie=cookie, **options)
        prefix = request.getfixturevalue("redis_prefix")
        return create_redis_session_storage(
            url=request.getfixturevalue("redis_url"), prefix=prefix, cookie=cookie, **options
        )

    return make


def test_an_expiry_in_the_past_ends_the_session_at_once(engine_storage):
    storage = engine_storage()
    with override_settings(WEBSESSION_STORAGE=storage):
        session = SessionStore()
        session["foo"] = "bar"
        session.set_expiry(-timedelta(seconds=10))
        session.save()
        assert "foo" not in SessionStore(session.session_key)  # Django's test_actual_expiry
        assert storage.store.count() == 0  # nothing left for clearsessions to find
        live = SessionStore()
        live["foo"] = "bar"
        live.save()
        live.set_expiry(-1)  # an existing session whose lifetime is over
        live.save()
        assert "foo" not in SessionStore(live.session_key)
        assert storage.store.count() == 0
        SessionStore.clear_expired()


def test_the_engine_honours_the_storages_absolute_timeout(engine_storage):
    from websession.ids import generate_id

    storage = engine_storage(absolute_timeout=60)
    with override_settings(WEBSESSION_STORAGE=storage):
        session = SessionStore()
        session["user"] = 1
        session.save()
        record = storage.store.peek(session.session_id)
        assert record is not None and record.expires is not None
        assert (record.expires - storage.clock()).total_seconds() <= 60  # capped, not 2 weeks
        old_id = generate_id(storage.clock().timestamp() - 120)  # issued before the deadline
        storage.store.write(old_id, {"user": 2}, None)
        stale = SessionStore(SessionStore()._key_for(old_id))
        assert "user" not in stale  # past its absolute timeout: refused, like get_session


def test_an_explicit_store_ttl_is_the_record_lifetime(engine_storage):
    storage = engine_storage(ttl=120)
    with override_settings(WEBSESSION_STORAGE=storage):
        session = SessionStore()
        session["user"] = 1
        session.save()
        record = storage.store.peek(session.session_id)
        assert record is not None and record.expires is not None
        assert (record.expires - storage.clock()).total_seconds() <= 121


def test_cycle_key_racing_a_logout_never_brings_the_old_data_back(engine_storage):
    storage = engine_storage()
    with override_settings(WEBSESSION_STORAGE=storage):
        first = SessionStore()
        first["cart"] = [1]
        first.save()
        logging_in = SessionStore(first.session_key)
        assert logging_in["cart"] == [1]  # loaded before the logout
        SessionStore(first.session_key).flush()  # a logout in another tab
        logging_in["user"] = "ada"
        logging_in.cycle_key()
        logging_in.save()
        assert dict(SessionStore(logging_in.session_key).items()) == {"user": "ada"}
        assert "cart" not in SessionStore(first.session_key)


def test_cycle_key_moves_the_data_and_keeps_a_concurrent_change(engine_storage):
    storage = engine_storage()
    with override_settings(WEBSESSION_STORAGE=storage):
        first = SessionStore()
        first["cart"] = [1]
        first.save()
        logging_in = SessionStore(first.session_key)
        logging_in.load()
        other = SessionStore(first.session_key)
        other["theme"] = "dark"
        other.save()  # lands between the login's read and its cycle_key
        logging_in["user"] = "ada"
        logging_in.cycle_key()
        logging_in.save()
        moved = SessionStore(logging_in.session_key)
        assert dict(moved.items()) == {"cart": [1], "theme": "dark", "user": "ada"}
        assert "cart" not in SessionStore(first.session_key)


# -- clearsessions: what clear_expired removes, on every kind of store ---------------------------


def stored_records(storage) -> int:
    """How many records the store holds, expired ones included: what clearsessions is for."""
    store = storage.store
    if store.native_ttl:  # Redis drops a record when its TTL ends: what it holds is live
        return store.count()
    if store.kind == "memory":
        return len(store._records)
    if store.kind == "file":
        return sum(1 for path in store.dir.glob("*/*") if not path.name.startswith("."))  # not .lock, .tmp-
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        return db.execute(f"SELECT count(*) FROM {store.table}").fetchone()[0]


def clear_sync():
    SessionStore.clear_expired()


def clear_async():
    asyncio.run(SessionStore.aclear_expired())


def clear_command():
    call_command("clearsessions")


@pytest.mark.parametrize("clear", [clear_sync, clear_async, clear_command], ids=lambda f: f.__name__)
def test_clearsessions_removes_the_sessions_whose_expiry_passed(engine_storage, clear):
    import time

    from tests.conformance.harness import FakeClock

    # Records on stores without TTLs of their own outlive their expiry until purged: a fake
    # clock makes one's lifetime end. Redis ends it itself, on its own clock.
    clock = None
    storage = engine_storage()
    if not storage.store.native_ttl:
        clock = FakeClock()
        storage = engine_storage(clock=clock)
    with override_settings(WEBSESSION_STORAGE=storage):
        live = SessionStore()
        live["who"] = "live"
        live.set_expiry(3600)
        live.save()
        past = SessionStore()  # Django's own clearsessions test: an expiry set in the past
        past["who"] = "past"
        past.set_expiry(-3600)
        past.save()
        ended = SessionStore()  # one that was alive when saved
        ended["who"] = "ended"
        ended.set_expiry(1)
        ended.save()
        if clock is not None:
            clock.advance(120)
        else:
            time.sleep(1.5)  # past the record's 1 s TTL on the server
        assert stored_records(storage) == (1 if storage.store.native_ttl else 2)
        clear()
        assert stored_records(storage) == 1
        assert SessionStore(live.session_key)["who"] == "live"
        assert "who" not in SessionStore(past.session_key)
        assert "who" not in SessionStore(ended.session_key)
        clear()  # nothing left to remove: still only the live one
        assert stored_records(storage) == 1


# -- users and their devices ---------------------------------------------------------------


def ada_pk() -> str:
    return str(User.objects.get(username="ada").pk)


def test_login_indexes_the_session_and_logout_removes_it(client):
    storage = get_storage()
    storage.revoke_user(ada_pk())  # a clean slate for this user
    client.post("/login", {"username": "ada", "password": "lovelace"})
    [device] = storage.sessions_of(ada_pk())
    assert device.key == storage.store.storage_key(SessionStore(sessionid(client)).session_id)
    assert client.get("/").json()["user"] == "ada"
    client.post("/logout")
    assert storage.sessions_of(ada_pk()) == []


def test_revoke_user_signs_every_django_session_out(client):
    storage = get_storage()
    storage.revoke_user(ada_pk())
    other = Client()
    for each in (client, other):
        each.post("/login", {"username": "ada", "password": "lovelace"})
    assert len(storage.sessions_of(ada_pk())) == 2
    assert storage.revoke_user(ada_pk(), keep=SessionStore(sessionid(client)).session_id) == 1
    assert client.get("/").json()["user"] == "ada"
    assert other.get("/").json()["user"] is None
    assert storage.revoke_user(ada_pk()) == 1
    assert client.get("/").json()["user"] is None


@override_settings(
    WEBSESSION_DEVICE_LABELS=lambda request: {"device": request.META.get("HTTP_USER_AGENT", "")}
)
def test_device_labels_come_from_the_setting(client):
    storage = get_storage()
    storage.revoke_user(ada_pk())
    client.post("/login", {"username": "ada", "password": "lovelace"}, HTTP_USER_AGENT="Firefox on Linux")
    [device] = storage.sessions_of(ada_pk())
    assert dict(device.labels) == {"device": "Firefox on Linux"}
    storage.revoke_user(ada_pk())


@pytest.mark.parametrize("door", ["sync", "async"])
def test_cycle_key_keeps_a_signed_in_session_in_the_index(client, door):
    """A password change (update_session_auth_hash) cycles the key of a signed-in session: the
    new key stays in the user's index, so revoke_user still reaches it."""
    storage = get_storage()
    storage.revoke_user(ada_pk())
    client.post("/login", {"username": "ada", "password": "lovelace"})
    [before] = storage.sessions_of(ada_pk())
    session = SessionStore(sessionid(client))
    assert "_auth_user_id" in dict(session.items())
    if door == "sync":
        session.cycle_key()
    else:
        asyncio.run(session.acycle_key())
    session.save()
    [after] = storage.sessions_of(ada_pk())
    assert after.key == storage.store.storage_key(session.session_id) != before.key
    assert after.created == before.created
    assert storage.revoke_user(ada_pk()) == 1
    assert SessionStore(session.session_key).load() == {}


def test_cycle_key_after_a_revocation_signs_the_session_out(client):
    storage = get_storage()
    storage.revoke_user(ada_pk())
    client.post("/login", {"username": "ada", "password": "lovelace"})
    session = SessionStore(sessionid(client))
    assert "_auth_user_id" in dict(session.items())  # read at the start of the request, as Django does
    storage.revoke_user(ada_pk())  # "sign out everywhere" lands while this request runs
    session.cycle_key()
    assert session.session_key is None and dict(session.items()) == {}
    assert storage.sessions_of(ada_pk()) == []
