"""The file store's per-user indexes (websession.users) beyond the conformance suite: where
they live, that listing the store never takes them for sessions, expiry, corrupt files, hashed
keys, and the locks that make binding and revoking atomic across threads and processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from websession import create_cookie, create_cookie_session_storage, create_file_session_storage
from websession.stores._entries import FRESH_GENERATIONS
from websession.stores.base import utcnow
from websession.stores.file import USERS_DIR, FileStore
from websession.users import Entry, user_of

from ..conformance.harness import FakeClock

SECRET = "storage-key-secret-for-tests"


def make(directory: Path, clock: Any = None, **options: Any) -> Any:
    cookie = create_cookie("s", secrets=["k"], max_age=3600)
    return create_file_session_storage(dir=directory, cookie=cookie, clock=clock or FakeClock(), **options)


def pair(set_cookie: str | None) -> str:
    assert set_cookie is not None
    return set_cookie.split(";")[0]


def sign_in(storage: Any, user: str = "ada", **labels: str) -> str:
    session = storage.get_session(None)
    session.login(user, labels=labels or None)
    return pair(storage.commit_session(session))


def id_of(storage: Any, header: str) -> str:
    session = storage.get_session(header)
    assert session.id is not None and not session.is_new
    return str(session.id)


def listed(storage: Any, user: str = "ada") -> list[str]:
    return [device.key for device in storage.sessions_of(user)]


def index_of(store: FileStore, user: str = "ada") -> dict[str, Any]:
    content: dict[str, Any] = json.loads(store.index_path(user).read_bytes())
    return content


# -- layout ----------------------------------------------------------------------------------


def test_the_index_is_a_private_json_file_under_dot_users(tmp_path: Path) -> None:
    storage = make(tmp_path)
    store = storage.store
    header = sign_in(storage, device="laptop")
    path = store.index_path("ada")
    assert path.parent.parent == tmp_path / USERS_DIR
    content = index_of(store)
    key = store.storage_key(id_of(storage, header))
    assert content["generation"] == 0 and list(content["entries"]) == [key]
    assert Entry.from_json(content["entries"][key]) is not None
    assert content["entries"][key]["labels"] == {"device": "laptop"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / USERS_DIR).stat().st_mode & 0o777) == "0o700"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert "ada" not in path.name  # the user id never becomes a file name


@pytest.mark.parametrize("remix_ids", [False, True], ids=["websession-ids", "remix-ids"])
def test_scan_count_and_purge_never_take_an_index_for_a_session(tmp_path: Path, remix_ids: bool) -> None:
    clock = FakeClock()
    storage = make(tmp_path, clock, remix_ids=remix_ids)
    store = storage.store
    headers = [sign_in(storage), sign_in(storage), sign_in(storage, "grace")]
    anonymous = storage.get_session(None)
    anonymous["a"] = 1
    headers.append(pair(storage.commit_session(anonymous)))
    ids = {id_of(storage, header) for header in headers}
    assert {id for id, _ in store.scan()} == ids
    assert store.count() == 4
    assert store.purge_expired() == 0
    assert store.index_path("ada").is_file() and store.index_path("grace").is_file()
    assert len(index_of(store)["entries"]) == 2
    clock.advance(3601)
    assert store.purge_expired() == 4  # the sessions, not the indexes
    # Nothing left to remember (no sessions, never revoked): the index files go too.
    assert not store.index_path("ada").exists() and not store.index_path("grace").exists()
    assert list(store.scan()) == [] and store.count() == 0


def test_purge_drops_the_entries_of_dead_sessions_and_keeps_generations(tmp_path: Path) -> None:
    clock = FakeClock()
    storage = make(tmp_path, clock)
    store = storage.store
    old = sign_in(storage)
    clock.advance(1800)
    young = sign_in(storage)
    clock.advance(1801)  # the first has expired, the second has not
    assert store.purge_expired() == 1
    assert list(index_of(store)["entries"]) == [store.storage_key(id_of(storage, young))]
    assert storage.get_session(old).is_new
    storage.revoke_user("ada")
    assert index_of(store) == {"generation": 1, "entries": {}}
    assert store.purge_expired() == 0
    assert index_of(store) == {"generation": 1, "entries": {}}  # the generation outlives them
    assert store.generation("ada") == 1


def test_sessions_of_prunes_lazily_what_was_deleted_behind_its_back(tmp_path: Path) -> None:
    storage = make(tmp_path)
    store = storage.store
    gone, kept = sign_in(storage), sign_in(storage)
    store.path_of(id_of(storage, gone)).unlink()  # `rm`, a crash, another tool
    assert listed(storage) == [store.storage_key(id_of(storage, kept))]
    assert list(index_of(store)["entries"]) == [store.storage_key(id_of(storage, kept))]


def test_a_stale_generation_binds_nothing(tmp_path: Path) -> None:
    store = make(tmp_path).store
    assert store.generation("ada") == 0
    assert store.generation("ada", bump=True) == 1
    entry = Entry(store.clock())
    assert store.create_for_user({"a": 1}, None, "ada", entry, 0) is None
    assert store.count() == 0 and not any(True for _ in store.scan())
    bound = store.create_for_user({"a": 1}, None, "ada", entry, 1)
    assert bound is not None and list(index_of(store)["entries"]) == [bound]


# -- corrupt indexes -------------------------------------------------------------------------


UNREADABLE = [
    b"{not json",
    b"\xff\xfe",
    b"[1, 2]",
    b'{"generation": "7", "entries": {}}',
    b'{"generation": -1, "entries": {}}',
    b'{"generation": true, "entries": {}}',
    b'{"generation": 0, "entries": ["a"]}',
    b'{"generation": 0, "entries": null}',
]


def damage(store: FileStore, raw: bytes, user: str = "ada") -> Path:
    path = store.index_path(user)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def set_aside(store: FileStore, user: str = "ada") -> list[Path]:
    path = store.index_path(user)
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


@pytest.mark.parametrize("raw", UNREADABLE)
def test_an_unreadable_index_file_never_raises(
    tmp_path: Path, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    storage = make(tmp_path)
    store = storage.store
    damage(store, raw)
    with caplog.at_level(logging.WARNING, logger="websession"):
        assert storage.sessions_of("ada") == []
        header = sign_in(storage)
    assert "unreadable" in caplog.text and "set aside" in caplog.text
    [aside] = set_aside(store)
    assert aside.read_bytes() == raw  # kept for whoever looks into it
    assert oct(aside.stat().st_mode & 0o777) == "0o600"
    assert index_of(store)["generation"] >= FRESH_GENERATIONS
    assert [device.key for device in storage.sessions_of("ada")] == [
        store.storage_key(id_of(storage, header))
    ]
    assert storage.revoke_user("ada") == 1 and storage.get_session(header).is_new
    assert store.purge_expired() == 0
    assert set_aside(store) == [aside]  # read once, recovered once
    assert store.count() == 0


@pytest.mark.parametrize(
    "first", ["sessions_of", "generation", "sign_in", "regenerate", "revoke_user", "purge"]
)
def test_an_unreadable_index_ends_the_sessions_it_listed(tmp_path: Path, first: str) -> None:
    """The sessions the damaged file listed are out of revoke_user's reach, so the first
    operation that meets the damage ends every session bound to that user (and only those),
    and moves the generation past any value the file could have held."""
    storage = make(tmp_path)
    store = storage.store
    laptop, phone, other = sign_in(storage), sign_in(storage), sign_in(storage, "grace")
    anonymous = storage.get_session(None)
    anonymous["a"] = 1
    stranger = pair(storage.commit_session(anonymous))
    damage(store, b"{not json")
    if first == "sessions_of":
        assert storage.sessions_of("ada") == []
    elif first == "generation":
        assert store.generation("ada") >= FRESH_GENERATIONS
    elif first == "sign_in":
        assert storage.get_session(sign_in(storage)).user == "ada"
    elif first == "regenerate":
        session = storage.get_session(laptop)
        session.regenerate()
        set_cookie = storage.commit_session(session)
        assert set_cookie is not None and "Expires=Thu, 01 Jan 1970" in set_cookie
    elif first == "revoke_user":
        assert storage.revoke_user("ada") == 0  # already ended by the recovery
    else:
        assert store.purge_expired() == 0
    assert storage.get_session(laptop).is_new and storage.get_session(phone).is_new
    assert storage.get_session(other).user == "grace" and storage.get_session(stranger)["a"] == 1
    assert len(set_aside(store)) == 1 and store.generation("ada") >= FRESH_GENERATIONS


def test_an_unreadable_index_never_revives_a_revoked_cookie(tmp_path: Path) -> None:
    """A cookie storage keeping its revocations in a file store: reading a damaged index as
    generation 0 would bring back every cookie signed in before the first revocation."""
    generations = make(tmp_path)
    storage = create_cookie_session_storage(cookie=create_cookie("c", secrets=["k"]), revocation=generations)
    revoked = sign_in(storage)
    storage.revoke_user("ada")
    current = sign_in(storage)
    assert storage.get_session(revoked).is_new and storage.get_session(current).user == "ada"
    damage(generations.store, b"{not json")
    assert storage.get_session(revoked).is_new
    assert storage.get_session(current).is_new  # its generation is unknown now: ended too
    after = sign_in(storage)
    assert storage.get_session(after).user == "ada"


@pytest.mark.parametrize("failing", ["ending-a-session", "writing-the-fresh-index"])
def test_a_recovery_that_fails_halfway_is_started_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The sessions are ended before the fresh index replaces the damaged file: a failure
    on the way leaves the file as it was, to be recovered again by the next operation, never
    a readable index with sessions of the user still alive outside it."""
    storage = make(tmp_path)
    store = storage.store
    headers = [sign_in(storage), sign_in(storage)]
    path = damage(store, b"{not json")
    if failing == "ending-a-session":

        def unreadable_disk(self: FileStore, key: str) -> None:
            raise OSError("EIO")

        monkeypatch.setattr(FileStore, "_take_key", unreadable_disk)
    else:
        write = FileStore._write_bytes

        def refuse_the_index(self: FileStore, target: Path, raw: bytes) -> None:
            if target == path:
                raise OSError("disk full")
            write(self, target, raw)

        monkeypatch.setattr(FileStore, "_write_bytes", refuse_the_index)
    with pytest.raises(OSError):
        storage.sessions_of("ada")
    assert path.read_bytes() == b"{not json" and len(set_aside(store)) == 1
    monkeypatch.undo()
    assert storage.sessions_of("ada") == []
    assert all(storage.get_session(header).is_new for header in headers)
    assert store.generation("ada") >= FRESH_GENERATIONS and len(set_aside(store)) == 2


def test_unreadable_entries_are_dropped_from_the_listing_but_still_revoked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = make(tmp_path)
    store = storage.store
    damaged, healthy = sign_in(storage), sign_in(storage)
    damaged_key = store.storage_key(id_of(storage, damaged))
    content = index_of(store)
    content["entries"][damaged_key] = "garbage"
    store.index_path("ada").write_text(json.dumps(content))
    with caplog.at_level(logging.WARNING, logger="websession"):
        devices = storage.sessions_of("ada")
    assert [device.key for device in devices] == [store.storage_key(id_of(storage, healthy))]
    assert "unreadable" in caplog.text
    # Still in the index, so "sign out everywhere" ends it too.
    assert damaged_key in index_of(store)["entries"]
    assert storage.revoke_user("ada") == 2
    assert storage.get_session(damaged).is_new and storage.get_session(healthy).is_new


def test_a_session_whose_entry_is_unreadable_is_not_carried_over_by_a_regenerate(tmp_path: Path) -> None:
    storage = make(tmp_path)
    store = storage.store
    header = sign_in(storage)
    key = store.storage_key(id_of(storage, header))
    store.index_path("ada").write_text(json.dumps({"generation": 0, "entries": {key: {"created": "x"}}}))
    session = storage.get_session(header)
    session.regenerate()
    set_cookie = storage.commit_session(session)
    assert set_cookie is not None and "Expires=Thu, 01 Jan 1970" in set_cookie
    assert store.count() == 0


def test_index_entries_never_become_paths_outside_the_store(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    storage = make(sessions)
    store = storage.store
    header = sign_in(storage)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    content = index_of(store)
    entry = next(iter(content["entries"].values()))
    for hostile in ["../victim", "..//victim", str(victim), "/etc", "abcd/../../victim", "ABCD" * 10]:
        content["entries"][hostile] = entry
    store.index_path("ada").write_text(json.dumps(content))
    assert [device.key for device in storage.sessions_of("ada")] == [
        store.storage_key(id_of(storage, header))
    ]
    assert storage.revoke_user("ada") == 1
    assert store.purge_expired() == 0
    assert victim.read_text() == "keep me"


# -- hashed storage keys ---------------------------------------------------------------------


def test_with_storage_key_secret_the_index_holds_no_session_id(tmp_path: Path) -> None:
    storage = make(tmp_path, storage_key_secret=SECRET)
    store = storage.store
    headers = [sign_in(storage), sign_in(storage)]
    ids = [id_of(storage, header) for header in headers]
    raw = store.index_path("ada").read_bytes()
    dump = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    for id in ids:
        assert id.encode() not in raw and id.encode() not in dump
        assert store.storage_key(id).encode() in raw
    devices = storage.sessions_of("ada")
    assert sorted(device.key for device in devices) == sorted(store.storage_key(id) for id in ids)
    assert storage.revoke(devices[0], user="ada") is True
    assert storage.revoke_user("ada") == 1
    assert all(storage.get_session(header).is_new for header in headers)


# -- locks -----------------------------------------------------------------------------------


def fail_a_delete(monkeypatch: pytest.MonkeyPatch, after: int = 0) -> None:
    """Make the record deletion after ``after`` successful ones fail (a disk error)."""
    take = FileStore._take_key
    done: list[str] = []

    def failing(self: FileStore, key: str) -> Any:
        if len(done) == after:
            done.append(key)
            raise OSError("EIO")
        done.append(key)
        return take(self, key)

    monkeypatch.setattr(FileStore, "_take_key", failing)


@pytest.mark.parametrize("verb", ["revoke_user", "revoke"])
def test_a_revocation_that_fails_raises_and_retrying_it_completes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verb: str
) -> None:
    """The records are deleted before the index is written: a failure on the way leaves
    every session it did not delete in the index, so the retry reaches them."""
    storage = make(tmp_path)
    store = storage.store
    headers = [sign_in(storage), sign_in(storage), sign_in(storage)]
    fail_a_delete(monkeypatch, after=1 if verb == "revoke_user" else 0)
    with pytest.raises(OSError, match="EIO"):
        if verb == "revoke_user":
            storage.revoke_user("ada")
        else:
            storage.revoke(store.storage_key(id_of(storage, headers[0])), user="ada")
    monkeypatch.undo()
    alive = [header for header in headers if not storage.get_session(header).is_new]
    assert sorted(listed(storage)) == sorted(store.storage_key(id_of(storage, h)) for h in alive)
    if verb == "revoke_user":
        assert storage.revoke_user("ada") == len(alive) == 2
        assert all(storage.get_session(header).is_new for header in headers)
    else:
        assert storage.revoke(store.storage_key(id_of(storage, headers[0])), user="ada") is True
        assert storage.get_session(headers[0]).is_new and len(listed(storage)) == 2


@pytest.mark.parametrize("change", ["regenerate", "logout"])
def test_a_take_that_fails_leaves_the_session_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    storage = make(tmp_path)
    store = storage.store
    header = sign_in(storage)
    session = storage.get_session(header)
    session.regenerate() if change == "regenerate" else session.logout()
    fail_a_delete(monkeypatch)
    with pytest.raises(OSError, match="EIO"):
        storage.commit_session(session)
    monkeypatch.undo()
    assert storage.get_session(header).user == "ada"
    assert listed(storage) == [store.storage_key(id_of(storage, header))]  # still revocable
    assert storage.revoke_user("ada") == 1 and storage.get_session(header).is_new


def test_revoke_user_holds_the_index_lock_while_it_deletes(tmp_path: Path) -> None:
    """A sign-in of the same user waits until revoke_user has deleted every session it took
    out of the index: the revocation is one step, whoever watches."""
    storage = make(tmp_path)
    store = storage.store
    sign_in(storage)
    deleting, release = threading.Event(), threading.Event()
    original = store._take_key

    def slow_take(key: str) -> Any:
        deleting.set()
        assert release.wait(30)
        return original(key)

    store._take_key = slow_take
    revoked: list[int] = []
    revoker = threading.Thread(target=lambda: revoked.append(store.revoke_user("ada", None)))
    revoker.start()
    signed_in = threading.Event()
    other = FileStore(tmp_path, clock=store.clock)  # another worker's store on the same directory
    binder = threading.Thread(
        target=lambda: (other.create_for_user({}, None, "ada", Entry(store.clock()), None), signed_in.set())
    )
    try:
        assert deleting.wait(30)
        binder.start()
        assert not signed_in.wait(0.3)  # waiting for the index lock (it cannot finish first)
    finally:
        release.set()
        revoker.join(30)
        if binder.is_alive() or signed_in.is_set():
            binder.join(30)
        store._take_key = original
    assert revoked == [1] and signed_in.is_set()
    assert len(index_of(store)["entries"]) == 1 and index_of(store)["generation"] == 1


def _churn(directory: str, worker: int, rounds: int) -> None:
    """One process signing in, regenerating and signing out sessions of one user."""
    storage = make(Path(directory), clock=utcnow)
    for n in range(rounds):
        header = sign_in(storage, device=f"w{worker}")
        session = storage.get_session(header)
        session.regenerate()
        moved = storage.commit_session(session)
        if n % 3 == 0 and moved is not None and "Expires=Thu, 01 Jan 1970" not in moved:
            session = storage.get_session(pair(moved))
            session.logout()
            storage.commit_session(session)


def _revoker(directory: str, rounds: int) -> None:
    store = FileStore(directory)
    for _ in range(rounds):
        store.revoke_user("ada", None)
        store.sessions_of("ada")
        store.purge_expired()


def test_processes_binding_regenerating_and_revoking_keep_every_session_indexed(tmp_path: Path) -> None:
    """Four processes sign in, regenerate and sign out one user's sessions while a fifth
    revokes the user and purges, over and over. Every lock is taken index first, so none of
    them deadlocks; and afterwards every live session bound to the user is in the user's index
    (so the next revoke_user reaches it) and the index names no dead session."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_churn, args=(str(tmp_path), w, 15)) for w in range(4)]
    workers.append(context.Process(target=_revoker, args=(str(tmp_path), 30)))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    store = FileStore(tmp_path)
    bound = {key for key, record in store.scan() if user_of(record.data) == "ada"}
    indexed = set(index_of(store)["entries"]) if store.index_path("ada").exists() else set()
    assert bound == indexed
    assert store.revoke_user("ada", None) == len(bound)
    assert not any(user_of(record.data) == "ada" for _, record in store.scan())


def test_no_lock_or_temporary_file_is_left_where_a_listing_looks(tmp_path: Path) -> None:
    storage = make(tmp_path)
    header = sign_in(storage)
    storage.revoke_user("ada")
    sign_in(storage)
    assert storage.get_session(header).is_new
    assert [p for p in tmp_path.rglob(".tmp-*")] == []
    assert sorted(os.listdir(storage.store.index_path("ada").parent)) == sorted(
        [".lock", storage.store.index_path("ada").name]
    )
