from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path

import pytest

from websession import create_cookie, create_file_session_storage
from websession.changes import Changes
from websession.stores.file import FileStore

from ..conformance.harness import FakeClock


def test_remix_layout_and_record_format(tmp_path: Path) -> None:
    clock = FakeClock()
    storage = create_file_session_storage(
        dir=tmp_path, cookie=create_cookie("s", secrets=["k"], max_age=60), clock=clock
    )
    session = storage.get_session(None)
    session["user"] = "ü"
    storage.commit_session(session)
    assert session.id is not None
    path = tmp_path / session.id[:4] / session.id[4:]
    content = json.loads(path.read_bytes())
    assert content["data"] == {"user": "ü"}
    assert content["expires"].endswith("Z") and len(content["expires"]) == 24
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_reads_records_written_by_remix(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    id = "0123456789abcdef0123456789abcdef"
    (tmp_path / "0123").mkdir()
    (tmp_path / "0123" / id[4:]).write_text('{"data":{"a":[]},"expires":"2999-01-01T00:00:00.000Z"}')
    record = store.read(id, None)
    assert record is not None and record.data == {"a": []}


def test_expired_file_is_removed_on_read_and_purged(tmp_path: Path) -> None:
    clock = FakeClock()
    store = FileStore(tmp_path, clock=clock)
    soon = store.create({"a": 1}, clock.now)
    later = store.create({"b": 1}, None)
    assert store.read(soon, None) is None
    assert not store.path_of(soon).exists()
    dead = store.create({"c": 1}, clock.now)
    assert store.purge_expired() == 1 and not store.path_of(dead).exists()
    assert store.read(later, None) is not None


def test_corrupt_record_is_missing_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FileStore(tmp_path)
    id = store.create({"a": 1}, None)
    for corrupt in [b"{not json", b"[1,2]", b'{"data": 5}', b'{"data":{}, "expires": "yesterday"}', b"\xff"]:
        store.path_of(id).write_bytes(corrupt)
        with caplog.at_level(logging.WARNING, logger="websession"):
            assert store.read(id, None) is None
        assert "unreadable" in caplog.text
        caplog.clear()


def test_update_of_a_deleted_record_does_not_recreate_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    id = store.create({"a": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    store.delete(id)
    assert store.update(id, Changes({"b": 2}), None, seen) is None
    assert not store.path_of(id).exists()


def _hammer(directory: str, id: str, worker: int) -> None:
    store = FileStore(directory)
    for n in range(25):
        seen = store.read(id, None)
        assert seen is not None
        store.update(id, Changes({f"w{worker}-{n}": n}), None, seen)


def test_concurrent_processes_never_lose_an_update(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    id = store.create({}, None)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_hammer, args=(str(tmp_path), id, w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    record = store.read(id, None)
    assert record is not None and len(record.data) == 100


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    id = store.create({"a": 1}, None)
    for n in range(5):
        seen = store.read(id, None)
        assert seen is not None
        store.update(id, Changes({"n": n}), None, seen)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert sorted(os.listdir(tmp_path / id[:4])) == sorted([".lock", id[4:]])


def test_the_factory_takes_every_old_keyword_and_the_shared_options(tmp_path: Path) -> None:
    from websession.options import StorageOptions

    clock = FakeClock()
    cookie = create_cookie("s", secrets=["k"])
    storage = create_file_session_storage(
        dir=tmp_path,
        cookie=cookie,
        default_ttl=30,
        touch_interval=5,
        fsync=True,
        remix_ids=False,
        rolling=False,
        save_uninitialized=True,
        absolute_timeout=60,
        storage_key_secret="x",
        clock=clock,
        codec="tagged",
    )
    store = storage.store
    assert isinstance(store, FileStore) and (store.touch_interval, store.fsync) == (5, True)
    assert (store.default_ttl, store.explicit_ttl, store.hashes_ids, store.clock) == (30, True, True, clock)
    assert (storage.rolling, storage.save_uninitialized, storage.absolute_timeout.seconds) == (
        False,
        True,
        60,
    )
    shared = StorageOptions(ttl=None)
    storage = create_file_session_storage(dir=tmp_path, cookie=cookie, **shared)
    assert (storage.store.default_ttl, storage.store.explicit_ttl) == (None, False)


def test_an_unknown_keyword_is_refused_before_the_directory_is_created(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"create_file_session_storage\(\) .* 'roling'"):
        create_file_session_storage(dir=tmp_path / "d", roling=False)  # type: ignore[call-arg]
    assert not (tmp_path / "d").exists()


def test_the_url_takes_the_ttl_and_shared_options(tmp_path: Path) -> None:
    from websession import ConfigurationError, open_store

    storage = open_store(f"file://{tmp_path}?ttl=60&rolling=false&secrets=k")
    assert (storage.store.default_ttl, storage.store.explicit_ttl, storage.rolling) == (60, True, False)
    with pytest.raises(ConfigurationError, match="does not take: colour"):
        open_store(f"file://{tmp_path}?colour=red&secrets=k")
