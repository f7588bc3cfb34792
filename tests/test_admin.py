"""The maintenance commands, run as the user runs them: a subprocess per command, real stores.

Stores are seeded through their Python API (with a clock in the past where a test needs
expired records), then each command is checked by its output and by what it left in the store.
"""

from __future__ import annotations

import json
import os
import pathlib
import pty
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.timing import current_test_watch
from websession import create_cookie, generate_id, open_store
from websession.stores.base import Record, Store, utcnow
from websession.stores.file import FileStore
from websession.stores.sqlite import SqliteStore

SRC = str(pathlib.Path(__file__).resolve().parents[1] / "src")
SECRET = "test-secret"


def run(
    *args: str, env: dict[str, str] | None = None, cwd: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``websession ARGS`` through ``python -m websession.admin``, with this checkout's code."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WEBSESSION_")}
    environment["PYTHONPATH"] = os.pathsep.join([SRC, environment.get("PYTHONPATH", "")])
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "websession.admin", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=300,
    )


def ok(*args: str, **kwargs: Any) -> str:
    result = run(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(*args: str, code: int = 1, **kwargs: Any) -> str:
    """Run a command that must fail with one line on stderr; return that line."""
    result = run(*args, **kwargs)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("websession: ")
    return lines[0]


def json_of(*args: str, **kwargs: Any) -> Any:
    return json.loads(ok(*args, "--json", **kwargs))


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite://{tmp_path}/sessions.db"


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    store = open_store(sqlite_url, secrets=[SECRET]).store
    yield store
    store.close()


def seed(store: Store, count: int, *, start: int = 0, ttl: float = 3600) -> dict[str, Record]:
    """Write ``count`` sessions that expire ``ttl`` seconds from the store's now; return them by id."""
    now = store.clock()
    records = {
        generate_id(): Record({"user_id": n, "cart": list(range(n % 5))}, now + timedelta(seconds=ttl))
        for n in range(start, start + count)
    }
    assert store.write_many(records.items()) == count
    return records


def seed_expired(path: str, count: int) -> None:
    """Write ``count`` sessions that expired an hour ago, through a store whose clock is a day behind."""
    yesterday = utcnow() - timedelta(days=1)
    store = SqliteStore(path, clock=lambda: yesterday)
    store.write_many(
        (generate_id(), Record({"old": True}, yesterday + timedelta(hours=1))) for _ in range(count)
    )
    store.close()


def all_rows(path: str) -> int:
    """Every row in the table, live or expired."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM websession_sessions").fetchone()[0])


# -- keygen ------------------------------------------------------------------------------------


def test_keygen_prints_a_fresh_urlsafe_secret() -> None:
    first, second = ok("keygen").strip(), ok("keygen").strip()
    assert first != second
    assert len(first) == 43  # 32 bytes, base64url without padding
    assert set(first) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(json_of("keygen", "--bytes", "64")["secret"]) == 86


def test_keygen_refuses_weak_secrets() -> None:
    line = fails("keygen", "--bytes", "8", code=2)
    assert "--bytes" in line and "16<=x<=1024" in line


# -- stats -------------------------------------------------------------------------------------


def test_stats_counts_sizes_and_lifetimes(sqlite_url: str, sqlite_store: Store) -> None:
    now = utcnow()
    records = [
        Record({"n": 1}, now + timedelta(seconds=30)),  # 7 bytes, < 1 minute
        Record({"n": 22}, now + timedelta(hours=2)),  # 8 bytes, < 1 day
        Record({"name": "ü" * 100}, now + timedelta(days=3)),  # 211 bytes, < 7 days
        Record({}, None),  # 2 bytes, no expiry
    ]
    sqlite_store.write_many((generate_id(), r) for r in records)
    seed_expired(sqlite_store.path, 5)  # invisible: not counted
    stats = json_of("stats", sqlite_url)
    assert stats["store"] == "sqlite"
    assert stats["count"] == 4
    assert stats["bytes"] == {"total": 228, "mean": 57.0, "p50": 7, "p90": 211, "p99": 211, "max": 211}
    assert stats["ttl"] == {
        "< 1 minute": 1,
        "< 1 hour": 0,
        "< 1 day": 1,
        "< 7 days": 1,
        "< 30 days": 0,
        ">= 30 days": 0,
        "no expiry": 1,
    }
    table = ok("stats", sqlite_url)
    assert "4 sessions in the sqlite store" in table
    assert "228 B" in table and "no expiry" in table


def test_stats_on_a_file_store(tmp_path: pathlib.Path) -> None:
    store = FileStore(tmp_path / "sessions")
    seed(store, 12, ttl=7200)
    stats = json_of("stats", f"file://{tmp_path}/sessions")
    assert stats["count"] == 12 and stats["ttl"]["< 1 day"] == 12


def test_stats_of_an_empty_store(sqlite_url: str) -> None:
    stats = json_of("stats", sqlite_url)
    assert stats["count"] == 0 and stats["bytes"]["max"] == 0
    assert "0 sessions" in ok("stats", sqlite_url)


# -- ls ----------------------------------------------------------------------------------------


def test_ls_lists_ids_sizes_expiry_and_key_names(sqlite_url: str, sqlite_store: Store) -> None:
    records = seed(sqlite_store, 8)
    lines = ok("ls", sqlite_url, "--limit", "3", "--json").splitlines()
    assert len(lines) == 3
    for line in lines:
        row = json.loads(line)
        record = records[row["id"]]
        assert row["keys"] == ["cart", "user_id"]
        assert row["size"] == len(json.dumps(record.data, separators=(",", ":")))
        assert row["expires"] == record.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert 3590 <= row["ttl"] <= 3600
    table = ok("ls", sqlite_url, "--limit", "3")
    assert sum(id in table for id in records) == 3
    assert "first 3 sessions" in table
    assert "user_id" in table and "[0, 1" not in table  # key names, never values


def test_ls_without_limit_streams_every_session(sqlite_url: str, sqlite_store: Store) -> None:
    records = seed(sqlite_store, 120)
    everything = ok("ls", sqlite_url, "--limit", "0")
    assert all(id in everything for id in records)
    assert len(ok("ls", sqlite_url, "-n", "0", "--json").splitlines()) == 120
    assert "first" not in ok("ls", sqlite_url, "-n", "500")


def test_ls_on_an_empty_store(sqlite_url: str) -> None:
    assert "no sessions" in ok("ls", sqlite_url)
    assert ok("ls", sqlite_url, "--json") == ""


def test_ls_rejects_a_negative_limit(sqlite_url: str) -> None:
    assert "--limit" in fails("ls", sqlite_url, "--limit", "-1", code=2)


# -- show --------------------------------------------------------------------------------------

DATA = {"user": "Ada ü€😀", "big": 2**64 + 1, "empty": [], "nested": {"a": [1, {}]}, "f": 0.1}


def test_show_prints_data_and_does_not_extend_the_session(sqlite_url: str, sqlite_store: Store) -> None:
    id = generate_id()
    expires = utcnow() + timedelta(minutes=10)
    sqlite_store.write(id, DATA, expires)
    shown = json_of("show", sqlite_url, id)
    assert shown["data"] == DATA
    assert shown["id"] == id and 590 <= shown["ttl"] <= 600
    assert shown["expires"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert abs(sqlite_store.read(id, None).expires - expires) < timedelta(milliseconds=1)
    text = ok("show", sqlite_url, id)
    assert id in text and "Ada ü€😀" in text and "18446744073709551617" in text


def test_show_accepts_the_session_cookie(sqlite_url: str, sqlite_store: Store) -> None:
    id = generate_id()
    sqlite_store.write(id, {"user": 1}, None)
    set_cookie = create_cookie("__session", secrets=[SECRET]).serialize(id)
    pair = set_cookie.split(";")[0]  # __session=<value>
    value = pair.split("=", 1)[1]
    assert json_of("show", sqlite_url, value, "--secret", SECRET)["id"] == id
    assert json_of("show", sqlite_url, f"theme=dark; {pair}", env={"WEBSESSION_SECRET": SECRET})["id"] == id
    assert json_of("show", sqlite_url, value, "--secret", f"newer,{SECRET}")["id"] == id
    line = fails("show", sqlite_url, value, "--secret", "wrong")
    assert "neither a session id nor a __session cookie that verifies" in line
    assert "--secret" in fails("show", sqlite_url, value)


def test_show_a_missing_session_fails(sqlite_url: str) -> None:
    id = generate_id()
    assert (
        fails("show", sqlite_url, id)
        == f"websession: error: no live session with id {id} in the sqlite store"
    )


# -- rm ----------------------------------------------------------------------------------------


def test_rm_deletes_sessions(sqlite_url: str, sqlite_store: Store) -> None:
    a, b, c = seed(sqlite_store, 3)
    assert ok("rm", sqlite_url, a).strip() == f"deleted {a}"
    assert json_of("rm", sqlite_url, b, c) == {"deleted": [b, c], "missing": []}
    assert sqlite_store.count() == 0


def test_rm_of_a_missing_session_fails_unless_missing_ok(sqlite_url: str, sqlite_store: Store) -> None:
    (a,) = seed(sqlite_store, 1)
    ghost = generate_id()
    assert fails("rm", sqlite_url, a, ghost) == f"websession: error: no live session with id {ghost}"
    assert sqlite_store.read(a, None) is None  # the one that existed is gone
    assert json_of("rm", sqlite_url, ghost, "--missing-ok") == {"deleted": [], "missing": [ghost]}


def test_rm_deletes_nothing_when_an_argument_is_not_an_id(sqlite_url: str, sqlite_store: Store) -> None:
    (a,) = seed(sqlite_store, 1)
    assert "not-an-id" in fails("rm", sqlite_url, a, "not-an-id")
    assert sqlite_store.read(a, None) is not None


def test_rm_by_cookie(sqlite_url: str, sqlite_store: Store) -> None:
    (a,) = seed(sqlite_store, 1)
    value = create_cookie("__session", secrets=[SECRET]).serialize(a).split(";")[0].split("=", 1)[1]
    assert json_of("rm", sqlite_url, value, env={"WEBSESSION_SECRET": SECRET})["deleted"] == [a]


# -- purge -------------------------------------------------------------------------------------


def test_purge_deletes_expired_rows_only(sqlite_url: str, sqlite_store: Store) -> None:
    live = seed(sqlite_store, 4)
    seed_expired(sqlite_store.path, 2500)
    assert all_rows(sqlite_store.path) == 2504
    assert ok("purge", sqlite_url).strip() == "purged 2,500 expired sessions from the sqlite store"
    assert all_rows(sqlite_store.path) == 4
    assert {id for id, _ in sqlite_store.scan()} == set(live)
    assert json_of("purge", sqlite_url) == {"store": "sqlite", "purged": 0, "native_ttl": False}


def test_purge_on_a_file_store(tmp_path: pathlib.Path) -> None:
    yesterday = utcnow() - timedelta(days=1)
    old = FileStore(tmp_path, clock=lambda: yesterday)
    seed(old, 3, ttl=60)  # expired a day ago by the real clock
    seed(FileStore(tmp_path), 2)
    assert json_of("purge", f"file://{tmp_path}")["purged"] == 3
    assert sum(1 for p in tmp_path.glob("*/*") if not p.name.startswith(".")) == 2


# -- migrate -----------------------------------------------------------------------------------


def test_migrate_keeps_ids_data_and_expiry(
    sqlite_url: str, sqlite_store: Store, tmp_path: pathlib.Path
) -> None:
    records = seed(sqlite_store, 700)
    no_expiry = generate_id()
    sqlite_store.write(no_expiry, DATA, None)
    seed_expired(sqlite_store.path, 10)
    target_url = f"file://{tmp_path}/files"
    out = ok("migrate", sqlite_url, target_url)
    assert out.startswith("copied 701 of 701 sessions from sqlite to file")
    target = FileStore(tmp_path / "files")
    copied = dict(target.scan())
    assert set(copied) == {*records, no_expiry}
    for id, record in records.items():
        assert copied[id].data == record.data
        assert abs((copied[id].expires - record.expires).total_seconds()) < 0.001
    assert copied[no_expiry] == Record(DATA, None)


def test_users_stay_signed_in_after_a_migration(sqlite_url: str, tmp_path: pathlib.Path) -> None:
    source = open_store(sqlite_url, secrets=[SECRET], max_age=3600)
    session = source.get_session(None)
    session["user_id"] = 42
    cookie_header = source.commit_session(session).split(";")[0]
    source.close()
    target_url = f"sqlite://{tmp_path}/new.db"
    ok("migrate", sqlite_url, target_url)
    target = open_store(target_url, secrets=[SECRET], max_age=3600)
    again = target.get_session(cookie_header)
    assert not again.is_new and again["user_id"] == 42 and again.id == session.id
    target.close()


def test_migrate_dry_run_writes_nothing(sqlite_url: str, sqlite_store: Store, tmp_path: pathlib.Path) -> None:
    seed(sqlite_store, 40)
    target = f"sqlite://{tmp_path}/new.db"
    report = json_of("migrate", sqlite_url, target, "--dry-run")
    assert report["dry_run"] is True and report["scanned"] == 40 and report["copied"] == 40
    assert all_rows(f"{tmp_path}/new.db") == 0
    assert "nothing was written" in ok("migrate", sqlite_url, target, "--dry-run")


def test_migrate_keep_existing_leaves_the_target_version(
    sqlite_url: str, sqlite_store: Store, tmp_path: pathlib.Path
) -> None:
    records = seed(sqlite_store, 30)
    target = SqliteStore(tmp_path / "new.db")
    changed = next(iter(records))
    target.write(changed, {"changed": "in the target"}, None)
    report = json_of(
        "migrate", sqlite_url, f"sqlite://{tmp_path}/new.db", "--keep-existing", "--batch-size", "7"
    )
    assert (report["copied"], report["kept"]) == (29, 1)
    assert target.read(changed, None).data == {"changed": "in the target"}
    json_of("migrate", sqlite_url, f"sqlite://{tmp_path}/new.db")
    assert target.read(changed, None).data == records[changed].data


def test_migrate_gives_unexpiring_sessions_the_target_ttl(
    sqlite_url: str, sqlite_store: Store, tmp_path: pathlib.Path
) -> None:
    id = generate_id()
    sqlite_store.write(id, {"a": 1}, None)
    before = utcnow()
    ok("migrate", sqlite_url, f"file://{tmp_path}/files?ttl=600")
    expires = FileStore(tmp_path / "files").read(id, None).expires
    assert before + timedelta(seconds=599) <= expires <= utcnow() + timedelta(seconds=600)


def test_migrate_refuses_what_cannot_work(sqlite_url: str, tmp_path: pathlib.Path) -> None:
    assert (
        fails("migrate", sqlite_url, sqlite_url) == "websession: error: SOURCE and TARGET are the same store"
    )
    assert "no store to read" in fails("migrate", sqlite_url, "cookie://")
    assert "unknown store URL scheme 'nope'" in fails("migrate", sqlite_url, "nope://x")


# -- server stores -----------------------------------------------------------------------------
#
# The same commands against real servers: Redis in both layouts, memcached (which cannot list
# its keys), PostgreSQL, DynamoDB (moto), Upstash (the local REST server) and Workers KV
# (Miniflare). Seeded through the stores' own write hooks.


def assert_same_sessions(records: dict[str, Record], target: Store) -> None:
    """Every record is in ``target`` with its data, and its expiry to within a second plus
    the time the test took (stores with a server-side TTL rebuild it from the server's clock)."""
    for id, record in records.items():
        found = target.peek(id)
        assert found is not None and found.data == record.data, id
        if record.expires is None:
            assert found.expires is None
        else:
            assert current_test_watch.close(found.expires, record.expires), id  # a server's clock: slack


@pytest.fixture(params=["string", "hash"])
def redis_store_url(request: pytest.FixtureRequest, redis_url: str, redis_prefix: str) -> str:
    return f"{redis_url}?prefix={redis_prefix}&layout={request.param}"


@pytest.fixture
def redis_store(redis_store_url: str) -> Iterator[Store]:
    store = open_store(redis_store_url, secrets=[SECRET]).store
    yield store
    store.close()


def test_redis_stats_ls_show_rm_and_purge(
    redis_store_url: str, redis_store: Store, redis_url: str, redis_prefix: str
) -> None:
    import redis

    records = seed(redis_store, 6, ttl=7200)
    forever = generate_id()
    redis_store.write(forever, DATA, None)
    client = redis.Redis.from_url(redis_url)
    # A key just outside the prefix (and one inside it that names no session) stays unseen.
    neighbour = f"{redis_prefix[:-1]}-other:{generate_id()}"
    client.set(neighbour, "{}")
    client.set(f"{redis_prefix}not-a-session-id", "{}")
    try:
        stats = json_of("stats", redis_store_url)
        assert stats["store"] == "redis" and stats["count"] == 7
        assert stats["ttl"]["< 1 day"] == 6 and stats["ttl"]["no expiry"] == 1
        rows = [json.loads(line) for line in ok("ls", redis_store_url, "-n", "0", "--json").splitlines()]
        assert {row["id"] for row in rows} == {*records, forever}
        for row in rows:
            if row["id"] in records:
                assert 7190 <= row["ttl"] <= 7200 and row["keys"] == ["cart", "user_id"]
        id = next(iter(records))
        shown = json_of("show", redis_store_url, id)
        assert shown["data"] == records[id].data and 7190 <= shown["ttl"] <= 7200
        assert shown["expires"] is not None
        assert 0 < client.pttl(redis_prefix + id) <= 7200 * 1000  # show did not extend it
        assert json_of("show", redis_store_url, forever)["ttl"] is None
        assert "never" in ok("show", redis_store_url, forever)
        assert json_of("rm", redis_store_url, id) == {"deleted": [id], "missing": []}
        assert client.exists(redis_prefix + id) == 0
        assert json_of("purge", redis_store_url) == {"store": "redis", "purged": 0, "native_ttl": True}
        assert "expires sessions itself" in ok("purge", redis_store_url)
    finally:
        client.delete(neighbour)
        client.close()


def test_migrate_sqlite_to_redis_and_back(
    sqlite_url: str, sqlite_store: Store, redis_store_url: str, redis_store: Store, tmp_path: pathlib.Path
) -> None:
    records = seed(sqlite_store, 300, ttl=5000)
    forever = generate_id()
    sqlite_store.write(forever, DATA, None)
    seed_expired(sqlite_store.path, 5)
    report = json_of("migrate", sqlite_url, redis_store_url, "--batch-size", "64")
    assert (report["scanned"], report["copied"], report["target"]) == (301, 301, "redis")
    assert_same_sessions(records, redis_store)
    # A session without expiry gets the target's ttl (the Redis store's default: 7 days).
    lifetime = redis_store.peek(forever).expires - utcnow()
    assert timedelta(days=7) - timedelta(seconds=10) < lifetime <= timedelta(days=7)
    back = f"sqlite://{tmp_path}/back.db"
    report = json_of("migrate", redis_store_url, back)
    assert (report["scanned"], report["copied"]) == (301, 301)
    assert_same_sessions(records, SqliteStore(tmp_path / "back.db"))
    changed = next(iter(records))
    redis_store.write(changed, {"changed": "in redis"}, None)
    report = json_of("migrate", sqlite_url, redis_store_url, "--keep-existing")
    assert (report["copied"], report["kept"]) == (0, 301)
    assert redis_store.peek(changed).data == {"changed": "in redis"}


def test_users_stay_signed_in_after_a_migration_to_redis(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    source = open_store(sqlite_url, secrets=[SECRET], max_age=3600)
    session = source.get_session(None)
    session["user_id"] = 42
    cookie_header = source.commit_session(session).split(";")[0]
    source.close()
    target_url = f"{redis_url}?prefix={redis_prefix}"
    ok("migrate", sqlite_url, target_url)
    target = open_store(target_url, secrets=[SECRET], max_age=3600)
    again = target.get_session(cookie_header)
    assert not again.is_new and again["user_id"] == 42 and again.id == session.id
    target.close()


def test_migrate_to_remix_v3_redis_reports_ids_it_cannot_hold(
    sqlite_url: str, sqlite_store: Store, redis_url: str, redis_prefix: str
) -> None:
    seed(sqlite_store, 4)
    report = json_of("migrate", sqlite_url, f"{redis_url}?prefix={redis_prefix}&format=remix-v3")
    assert (report["copied"], report["invalid_ids"]) == (0, 4)
    assert "4 sessions have ids the target cannot hold" in ok(
        "migrate", sqlite_url, f"{redis_url}?prefix={redis_prefix}&format=remix-v3"
    )


def test_memcache_show_rm_and_migrate_in_but_no_listing(
    memcached_server: Any, memcache_prefix: str, sqlite_url: str, sqlite_store: Store
) -> None:
    url = f"memcache://{memcached_server.address}?prefix={memcache_prefix}"
    records = seed(sqlite_store, 50, ttl=3000)
    report = json_of("migrate", sqlite_url, url)
    assert (report["copied"], report["target"]) == (50, "memcache")
    target = open_store(url, secrets=[SECRET]).store
    try:
        assert_same_sessions(records, target)
    finally:
        target.close()
    id = next(iter(records))
    shown = json_of("show", url, id)
    assert shown["data"] == records[id].data and 2990 <= shown["ttl"] <= 3000
    assert json_of("rm", url, id)["deleted"] == [id]
    assert "no live session" in fails("show", url, id)
    why = "the memcache store cannot list its records: memcached has no command that enumerates keys"
    for args in (("stats", url), ("ls", url), ("migrate", url, sqlite_url + "-copy")):
        assert fails(*args) == f"websession: error: {why}, so this command cannot use it"
    assert json_of("purge", url)["native_ttl"] is True


def _postgres_url(dsn: str, table: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    return f"postgresql://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}?table={table}"


def test_postgres_stats_purge_and_migrate(
    postgres_dsn: str, postgres_table: str, sqlite_url: str, sqlite_store: Store
) -> None:
    from websession.stores.postgres import PostgresStore

    url = _postgres_url(postgres_dsn, postgres_table)
    records = seed(sqlite_store, 120, ttl=600)
    report = json_of("migrate", sqlite_url, url)
    assert (report["copied"], report["target"]) == (120, "postgres")
    yesterday = utcnow() - timedelta(days=1)
    old = PostgresStore(dsn=postgres_dsn, table=postgres_table, clock=lambda: yesterday)
    try:
        old.write_many((generate_id(), Record({"old": 1}, yesterday + timedelta(hours=1))) for _ in range(30))
    finally:
        old.close()
    stats = json_of("stats", url)
    assert stats["count"] == 120 and stats["ttl"]["< 1 hour"] == 120
    assert json_of("purge", url) == {"store": "postgres", "purged": 30, "native_ttl": False}
    target = open_store(url, secrets=[SECRET]).store
    try:
        assert target.count() == 120
        assert_same_sessions(records, target)
    finally:
        target.close()


def test_dynamodb_purge_deletes_expired_items_now(
    moto_endpoint: str, dynamodb_client: Any, dynamodb_test_table: str, sqlite_url: str, sqlite_store: Store
) -> None:
    from websession.stores.dynamodb import DynamoDBStore

    url = f"dynamodb://{dynamodb_test_table}?region=us-east-1&endpoint={moto_endpoint}"
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    records = seed(sqlite_store, 40, ttl=900)
    assert json_of("migrate", sqlite_url, url, env=aws)["copied"] == 40
    yesterday = utcnow() - timedelta(days=1)
    old = DynamoDBStore(table=dynamodb_test_table, client=dynamodb_client, clock=lambda: yesterday)
    old.write_many((generate_id(), Record({"old": 1}, yesterday + timedelta(hours=1))) for _ in range(7))
    # DynamoDB deletes expired items a day or two late, so purge deletes them now.
    assert json_of("purge", url, env=aws) == {"store": "dynamodb", "purged": 7, "native_ttl": True}
    assert json_of("stats", url, env=aws)["count"] == 40
    scanned = dynamodb_client.scan(TableName=dynamodb_test_table, Select="COUNT")["Count"]
    assert scanned == 40
    id = next(iter(records))
    assert json_of("show", url, id, env=aws)["data"] == records[id].data
    assert_same_sessions(records, DynamoDBStore(table=dynamodb_test_table, client=dynamodb_client))


def test_upstash_stats_and_migrate(
    upstash_server: Any, redis_prefix: str, sqlite_url: str, sqlite_store: Store
) -> None:
    url = f"upstash+http://{upstash_server.url.split('://')[1]}?token={upstash_server.token}&prefix={redis_prefix}"
    records = seed(sqlite_store, 80, ttl=4000)
    assert json_of("migrate", sqlite_url, url, "--batch-size", "30")["copied"] == 80
    stats = json_of("stats", url)
    assert (stats["store"], stats["count"], stats["ttl"]["< 1 day"]) == ("upstash", 80, 80)
    id = next(iter(records))
    assert 3990 <= json_of("show", url, id)["ttl"] <= 4000
    target = open_store(url, secrets=[SECRET]).store
    try:
        assert_same_sessions(records, target)
    finally:
        target.close()


def test_workers_kv_stats_and_migrate(kv_server: Any, sqlite_url: str, sqlite_store: Store) -> None:
    from urllib.parse import urlencode

    query = urlencode(
        {
            "base_url": kv_server.base_url,
            "api_token": kv_server.api_token,
            "prefix": f"admin-{generate_id()[:8]}:",
        }
    )
    url = f"workers-kv://{kv_server.account_id}/{kv_server.namespace_id}?{query}"
    records = seed(sqlite_store, 60, ttl=4000)
    assert json_of("migrate", sqlite_url, url)["copied"] == 60
    stats = json_of("stats", url)
    assert (stats["store"], stats["count"], stats["ttl"]["< 1 day"]) == ("workers-kv", 60, 60)
    id = next(iter(records))
    assert 3990 <= json_of("show", url, id)["ttl"] <= 4000
    target = open_store(url, secrets=[SECRET]).store
    try:
        assert_same_sessions(records, target)
    finally:
        target.close()


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("stats", "sqlite:///nonexistent-dir/x.db"), "unable to open database file"),
        (("ls", "nope://x"), "unknown store URL scheme 'nope'"),
        (("stats", "sqlite:///tmp/x.db?colour=red"), "does not take: colour"),
        (("stats", "cookie://"), "keeps sessions in the browsers' cookies"),
        (("show", "memory://", "../../etc/passwd"), "is neither a session id"),
    ],
)
def test_errors_are_one_line_and_a_non_zero_status(args: tuple[str, ...], expected: str) -> None:
    assert expected in fails(*args)


def test_usage_errors_are_one_line_with_status_2() -> None:
    line = fails("ls", code=2)
    assert "Missing argument 'STORE'" in line and "--help" in line
    assert "No such command" in fails("frobnicate", code=2)


def test_a_corrupt_database_is_one_line(tmp_path: pathlib.Path) -> None:
    (tmp_path / "broken.db").write_bytes(b"this is not a database" * 100)
    assert "file is not a database" in fails("stats", f"sqlite://{tmp_path}/broken.db")


def test_websession_debug_shows_the_traceback(tmp_path: pathlib.Path) -> None:
    (tmp_path / "broken.db").write_bytes(b"this is not a database" * 100)
    result = run("stats", f"sqlite://{tmp_path}/broken.db", env={"WEBSESSION_DEBUG": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "SessionStoreError" in result.stderr


def test_progress_bars_on_a_terminal(sqlite_url: str, sqlite_store: Store, tmp_path: pathlib.Path) -> None:
    """On a terminal the long commands draw a progress bar on stderr; stdout stays clean."""
    seed(sqlite_store, 1500)
    leader, follower = pty.openpty()
    try:
        environment = {**os.environ, "PYTHONPATH": SRC, "TERM": "xterm", "COLUMNS": "100"}
        for args in (["stats", sqlite_url], ["migrate", sqlite_url, f"sqlite://{tmp_path}/copy.db"]):
            result = subprocess.run(
                [sys.executable, "-m", "websession.admin", *args],
                stdout=subprocess.PIPE,
                stderr=follower,
                text=True,
                env=environment,
                timeout=120,
            )
            assert result.returncode == 0
            assert "1,500" in result.stdout and "\x1b" not in result.stdout
        os.set_blocking(leader, False)
        drawn = os.read(leader, 1 << 20).decode(errors="replace")
        assert "scanning" in drawn or "copying" in drawn
    finally:
        os.close(leader)
        os.close(follower)


def test_the_console_script_group_includes_every_command() -> None:
    from websession.cli import main

    assert {"stats", "ls", "show", "rm", "purge", "migrate", "keygen"} <= set(main.commands)
    result = subprocess.run(
        [sys.executable, "-c", "from websession.cli import main; main()", "keygen", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["secret"]) == 43


# -- users and their devices ----------------------------------------------------------------


def signed_in(url: str, user: str, device: str) -> str:
    """Sign a new session in as ``user`` through the storage's API; return its id."""
    storage = open_store(url, secrets=[SECRET])
    try:
        session = storage.get_session(None)
        session.login(user, labels={"device": device})
        storage.commit_session(session)
        assert session.id is not None
        return session.id
    finally:
        storage.close()


def test_ls_user_lists_the_devices_from_the_index(sqlite_url: str) -> None:
    laptop = signed_in(sqlite_url, "ada", "laptop")
    phone = signed_in(sqlite_url, "ada", "phone")
    signed_in(sqlite_url, "grace", "desk")
    rows = [json.loads(line) for line in ok("ls", sqlite_url, "--user", "ada", "--json").splitlines()]
    assert [(row["key"], row["labels"]) for row in rows] == [
        (laptop, {"device": "laptop"}),
        (phone, {"device": "phone"}),
    ]
    assert all(row["created"] and row["last_seen"] for row in rows)
    table = ok("ls", sqlite_url, "--user", "ada")
    assert laptop in table and "device=phone" in table and "desk" not in table
    assert "no sessions of nobody" in ok("ls", sqlite_url, "--user", "nobody")


def test_rm_user_signs_out_everywhere_or_everywhere_else(sqlite_url: str) -> None:
    first, second, third = (signed_in(sqlite_url, "ada", name) for name in ("a", "b", "c"))
    grace = signed_in(sqlite_url, "grace", "desk")
    assert json.loads(ok("rm", sqlite_url, "--user", "ada", "--keep", second, "--json")) == {
        "user": "ada",
        "revoked": 2,
        "kept": second,
    }
    keys = [json.loads(line)["key"] for line in ok("ls", sqlite_url, "--user", "ada", "--json").splitlines()]
    assert keys == [second]
    assert "signed ada out of 1 session" in ok("rm", sqlite_url, "--user", "ada")
    assert ok("ls", sqlite_url, "--user", "ada", "--json") == ""
    assert json.loads(ok("ls", sqlite_url, "--user", "grace", "--json"))["key"] == grace
    assert first not in ok("ls", sqlite_url, "--limit", "0") and third not in ok(
        "ls", sqlite_url, "--limit", "0"
    )


def test_rm_of_a_signed_in_session_leaves_the_index_too(sqlite_url: str) -> None:
    session_id = signed_in(sqlite_url, "ada", "laptop")
    ok("rm", sqlite_url, session_id)
    assert ok("ls", sqlite_url, "--user", "ada", "--json") == ""


def test_user_commands_need_a_store_with_an_index(tmp_path: pathlib.Path) -> None:
    # memcached keeps no index: refused in one line before any server is contacted.
    assert "user index" in fails("ls", "memcache://127.0.0.1:1", "--user", "ada")
    assert "user index" in fails("rm", "memcache://127.0.0.1:1", "--user", "ada")


def test_rm_user_usage_errors(sqlite_url: str) -> None:
    session_id = signed_in(sqlite_url, "ada", "laptop")
    assert "--keep needs --user" in fails("rm", sqlite_url, "--keep", session_id, code=2)
    assert "not both" in fails("rm", sqlite_url, session_id, "--user", "ada", code=2)
    assert "give SESSION ids, or --user USER" in fails("rm", sqlite_url, code=2)
