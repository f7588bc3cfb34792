"""The codecs: plain JSON by default, TaggedJSON (codec="tagged") on request.

Tagged values round-trip through real storages (memory, SQLite, signed and encrypted cookies,
both doors), read and write Flask's own TaggedJSONSerializer format, keep change tracking
working, and a malformed tagged record is treated like any corrupt record: logged, no
session, never an exception.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from flask.json.tag import TaggedJSONSerializer
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from websession import (
    ConfigurationError,
    SessionStorage,
    create_cookie,
    create_cookie_session_storage,
    create_file_session_storage,
    create_memory_session_storage,
    create_session_storage,
    create_sqlite_session_storage,
    open_store,
)
from websession.codec import JSONCodec, TaggedJSON, as_codec, dumps, loads
from websession.session import Session

UTC = timezone.utc
IST = timezone(timedelta(hours=5, minutes=30))

#: One value of every kind the tagged codec keeps, with the tag it is stored under.
VALUES: dict[str, Any] = {
    "naive": datetime(2024, 5, 1, 12, 30, 15, 123456),
    "utc_whole": datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC),
    "utc_micro": datetime(2024, 5, 1, 12, 30, 15, 7, tzinfo=UTC),
    "offset": datetime(2024, 5, 1, 12, 30, tzinfo=IST),
    "day": date(2024, 2, 29),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "amount": Decimal("1.10"),
    "tiny": Decimal("-0E-7"),
    "raw": b"\x00\xff websession",
    "pair": (1, "two", (3.5, None)),
    "markup": Markup("<em>hi</em>"),
    "nested": {"when": [date(2000, 1, 1), (uuid.UUID(int=7),)], "plain": [1, {"a": True}]},
    "t_lookalike": {" t": "not a tuple"},
    "di_lookalike": {" di": "not a dict"},
    "suffixed": {" t__": "left alone"},
    "plain": {"n": 1, "s": "ü", "l": [None, False]},
}


def same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down, and datetimes with the same offset."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return bool(a == b)


# -- storages ------------------------------------------------------------------------------


def _memory() -> SessionStorage:
    return create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]), codec="tagged")


def _sqlite(tmp_path: Path) -> SessionStorage:
    return create_sqlite_session_storage(
        path=tmp_path / "s.db", cookie=create_cookie("s", secrets=["k"]), codec=TaggedJSON()
    )


def _cookie() -> Any:
    return create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"]), codec="tagged")


def _sealed() -> Any:
    return create_cookie_session_storage(
        cookie=create_cookie("s", max_age=3600), encryption_keys=["k" * 32], codec="tagged"
    )


STORAGES: dict[str, Callable[[Path], Any]] = {
    "memory": lambda _: _memory(),
    "sqlite": _sqlite,
    "cookie": lambda _: _cookie(),
    "encrypted cookie": lambda _: _sealed(),
}


class Door:
    """The sync or the async door of a storage, called the same way."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def get(self, storage: Any, header: str | None) -> Session:
        if self.kind == "sync":
            return storage.get_session(header)  # type: ignore[no-any-return]
        return asyncio.run(storage.aget_session(header))  # type: ignore[no-any-return]

    def commit(self, storage: Any, session: Session) -> str | None:
        if self.kind == "sync":
            return storage.commit_session(session)  # type: ignore[no-any-return]
        return asyncio.run(storage.acommit_session(session))  # type: ignore[no-any-return]


@pytest.fixture(params=list(STORAGES))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made = STORAGES[request.param](tmp_path)
    yield made
    made.close()


@pytest.fixture(params=["sync", "async"])
def door(request: pytest.FixtureRequest) -> Door:
    return Door(request.param)


def pair(header: str | None) -> str:
    assert header is not None
    return header.split(";")[0]


# -- round trips ---------------------------------------------------------------------------


def test_every_tagged_type_round_trips(storage: Any, door: Door) -> None:
    session = door.get(storage, None)
    for key, value in VALUES.items():
        session[key] = value
    header = pair(door.commit(storage, session))
    assert all(same(session[k], v) for k, v in VALUES.items())  # the committed session too

    again = door.get(storage, header)
    assert not again.is_new
    for key, value in VALUES.items():
        assert same(again[key], value), key


def test_a_change_keeps_the_other_tagged_values(storage: Any, door: Door) -> None:
    session = door.get(storage, None)
    session.update(VALUES)
    header = pair(door.commit(storage, session))
    session = door.get(storage, header)
    session["day"] = date(1999, 12, 31)
    del session["raw"]
    header = pair(door.commit(storage, session) or header)  # id cookies need no new Set-Cookie
    assert same(session["day"], date(1999, 12, 31)) and same(session["pair"], VALUES["pair"])

    again = door.get(storage, header)
    assert same(again["day"], date(1999, 12, 31))
    assert "raw" not in again
    assert all(same(again[k], v) for k, v in VALUES.items() if k not in ("day", "raw"))


def test_flashed_and_regenerated_tagged_values_survive(storage: Any, door: Door) -> None:
    session = door.get(storage, None)
    session["since"] = VALUES["naive"]
    header = pair(door.commit(storage, session))
    session = door.get(storage, header)
    session.flash("paid", VALUES["amount"])
    session.regenerate()
    header = pair(door.commit(storage, session))

    again = door.get(storage, header)
    assert same(again.get("paid"), VALUES["amount"])
    assert same(again["since"], VALUES["naive"])


def test_in_place_edits_of_tagged_values_are_detected(storage: Any, door: Door) -> None:
    session = door.get(storage, None)
    session["events"] = [VALUES["naive"]]
    session["pair"] = ("cart", [1])
    header = pair(door.commit(storage, session))

    session = door.get(storage, header)
    session["events"].append(VALUES["offset"])
    session["pair"][1].append(2)  # a list inside a tuple
    assert session.modified
    assert sorted(session.changes.set) == ["events", "pair"]
    header = pair(door.commit(storage, session) or header)

    again = door.get(storage, header)
    assert same(again["events"], [VALUES["naive"], VALUES["offset"]])
    assert same(again["pair"], ("cart", [1, 2]))


def test_reading_a_tagged_value_is_not_a_change() -> None:
    storage = _memory()
    session = storage.get_session(None)
    session.update(VALUES)
    header = pair(storage.commit_session(session))
    session = storage.get_session(header)
    for key in VALUES:
        _ = session[key]  # lent, not changed
    assert not session.modified


# -- what the tagged codec refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({1, 2}, "set"),
        (object(), "object"),
        (1j, "complex"),
        ([VALUES["naive"], frozenset()], "frozenset"),
        ((b"ok", bytearray(b"no")), "bytearray"),
        ({"when": {5: "x"}}, "dict key 5 is not a str"),
        (float("nan"), "nan has no JSON form"),
        (chr(0xD800), "lone surrogate"),
    ],
)
def test_values_neither_codec_holds_are_refused_naming_the_key(value: Any, problem: str) -> None:
    plain = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    for storage in (_memory(), _cookie(), plain):
        session = storage.get_session(None)
        with pytest.raises(TypeError, match=f"'thing'.*{problem}"):
            session["thing"] = value
        assert "thing" not in session and not session.modified


def test_a_key_that_reads_as_a_tag_is_refused() -> None:
    session = _memory().get_session(None)
    with pytest.raises(TypeError, match="' u' is a tag"):
        session[" u"] = "hex"
    session[" u "] = "fine"  # only the exact tags


def test_the_default_codec_still_refuses_tagged_types() -> None:
    storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    assert type(storage.codec) is JSONCodec
    session = storage.get_session(None)
    for value in (VALUES["naive"], VALUES["day"], VALUES["id"], VALUES["amount"], VALUES["raw"]):
        with pytest.raises(TypeError, match="session value for 'x' is not JSON-serialisable"):
            session["x"] = value
    session["pair"] = (1, 2)  # a tuple is JSON (an array), as before...
    header = pair(storage.commit_session(session))
    assert storage.get_session(header)["pair"] == [1, 2]  # ...and comes back as a list


def test_the_default_codec_stores_exactly_what_it_stored_before() -> None:
    storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    session = storage.get_session(None)
    session["v"] = {" t": [1], " d": "x"}  # tag-like keys mean nothing to plain JSON
    pair(storage.commit_session(session))
    assert raw_record(storage, session) == '{"v":{" t":[1]," d":"x"}}'


# -- malformed tagged data -----------------------------------------------------------------

MALFORMED = [
    {" d": "garbage"},
    {" d": 5},
    {" u": "not-a-uuid"},
    {" b": "!!not base64!!"},
    {" t": "not a list"},
    {" dc": "twelve"},
    {" dc": 12},
    {" dt": "2024-13-01T00:00"},
    {" da": "yesterday"},
    {" di": {"no_suffix": 1}},
    {" di": [1]},
    [1, {" u": 42}],
]


@pytest.mark.parametrize("bad", MALFORMED, ids=[dumps(b) for b in MALFORMED])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_malformed_tagged_record_is_corrupt_data(
    bad: Any, kind: str, door: Door, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = _memory() if kind == "memory" else _sqlite(tmp_path)
    session = door.get(storage, None)
    session["user"] = 7
    header = pair(door.commit(storage, session))
    assert session.id is not None
    storage.store.write(session.id, {"user": 7, "bad": bad}, None)  # what another writer left

    with caplog.at_level(logging.WARNING, logger="websession"):
        again = door.get(storage, header)
    assert again.is_new and not again and again.stale_cookie
    assert "unreadable" in caplog.text and "malformed" in caplog.text
    again["user"] = 8  # and the request goes on with a fresh session
    assert pair(door.commit(storage, again)) != header


@pytest.mark.parametrize("bad", MALFORMED[:4], ids=[dumps(b) for b in MALFORMED[:4]])
def test_a_signed_cookie_with_malformed_tags_gives_a_fresh_session(
    bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    storage = _cookie()
    forged_by_a_secret_holder = pair(storage.cookie.serialize({"user": 7, "bad": bad}))
    with caplog.at_level(logging.WARNING, logger="websession"):
        session = storage.get_session(forged_by_a_secret_holder)
    assert session.is_new and not session and session.stale_cookie
    assert "unreadable" in caplog.text
    assert "01 Jan 1970" in (storage.commit_session(session) or "")  # expired, like a stale cookie


def test_an_update_that_meets_malformed_tags_still_commits(caplog: pytest.LogCaptureFixture) -> None:
    storage = _memory()
    session = storage.get_session(None)
    session["user"] = 7
    header = pair(storage.commit_session(session))
    session = storage.get_session(header)
    assert session.id is not None
    storage.store.write(session.id, {"user": 7, "other": {" u": "x"}}, None)  # a concurrent writer
    session["theme"] = "dark"
    with caplog.at_level(logging.WARNING, logger="websession"):
        storage.commit_session(session)
    assert session["theme"] == "dark" and "malformed" in caplog.text
    assert loads(raw_record(storage, session))["theme"] == "dark"  # the change was written


def test_a_regenerate_that_takes_a_malformed_record_ends_the_session() -> None:
    storage = _memory()
    session = storage.get_session(None)
    session["user"] = 7
    header = pair(storage.commit_session(session))
    session = storage.get_session(header)
    assert session.id is not None
    storage.store.write(session.id, {"user": {" d": "never"}}, None)
    session.regenerate()
    assert "01 Jan 1970" in (storage.commit_session(session) or "")
    assert session.destroyed and storage.store.count() == 0


# -- Flask's TaggedJSONSerializer ----------------------------------------------------------

#: Values of the types Flask's serializer knows, in forms it reads back exactly.
FLASK_VALUES = {
    k: VALUES[k]
    for k in ("utc_whole", "id", "raw", "pair", "markup", "t_lookalike", "di_lookalike", "suffixed", "plain")
}


def raw_record(storage: Any, session: Session) -> str:
    """The stored text of a session's record, as another program would read it."""
    assert session.id is not None
    store = storage.store
    if store.kind == "memory":
        return store._records[store.storage_key(session.id)][0].decode()  # type: ignore[no-any-return]
    with sqlite3.connect(store.path) as db:
        (text,) = db.execute(
            f"SELECT data FROM {store.table} WHERE id = ?", (store.storage_key(session.id),)
        ).fetchone()
    return text  # type: ignore[no-any-return]


def cookie_json(header: str) -> str:
    """The JSON a signed Remix-format cookie carries."""
    payload = unquote(pair(header).split("=", 1)[1]).rpartition(".")[0]
    return base64.b64decode(payload).decode()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_flask_reads_what_the_tagged_codec_stored(kind: str, tmp_path: Path) -> None:
    storage = _memory() if kind == "memory" else _sqlite(tmp_path)
    session = storage.get_session(None)
    session.update(FLASK_VALUES)
    storage.commit_session(session)
    read_by_flask = TaggedJSONSerializer().loads(raw_record(storage, session))
    assert same(read_by_flask, FLASK_VALUES)


def test_flask_reads_a_tagged_cookie() -> None:
    storage = _cookie()
    session = storage.get_session(None)
    session.update(FLASK_VALUES)
    header = storage.commit_session(session)
    assert header is not None
    assert same(TaggedJSONSerializer().loads(cookie_json(header)), FLASK_VALUES)


def test_what_flask_cannot_read_it_sees_as_the_stored_objects() -> None:
    """Our own tags (and the precise datetime) reach Flask as one-key dicts, never an error."""
    text = TaggedJSON().dumps({k: VALUES[k] for k in ("naive", "utc_micro", "offset", "day", "amount")})
    assert TaggedJSONSerializer().loads(text) == {
        "naive": {" dt": "2024-05-01T12:30:15.123456"},
        "utc_micro": {" dt": "2024-05-01T12:30:15.000007+00:00"},
        "offset": {" dt": "2024-05-01T12:30:00+05:30"},
        "day": {" da": "2024-02-29"},
        "amount": {" dc": "1.10"},
    }


def test_records_flask_wrote_load_into_a_session() -> None:
    storage = _memory()
    session = storage.get_session(None)
    session["user"] = 7
    header = pair(storage.commit_session(session))
    assert session.id is not None
    written_by_flask = loads(TaggedJSONSerializer().dumps({**FLASK_VALUES, "user": 7}))
    storage.store.write(session.id, written_by_flask, None)
    again = storage.get_session(header)
    assert same(again.data, {**FLASK_VALUES, "user": 7})


def test_flask_http_dates_are_read_as_werkzeug_reads_them() -> None:
    # Flask treats a naive datetime as UTC and keeps whole seconds: that is what its " d" says.
    flask_text = TaggedJSONSerializer().dumps({"d": datetime(2024, 5, 1, 12, 0, 0, 999)})
    assert same(
        TaggedJSON().decode_data(loads(flask_text)), {"d": datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)}
    )


# -- properties ----------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
_offsets = st.sampled_from([UTC, IST, timezone(timedelta(hours=-11, minutes=-45)), None])
_datetimes = st.builds(lambda d, tz: d.replace(tzinfo=tz), st.datetimes(), _offsets)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
    | st.binary(max_size=16)
    | _datetimes
    | st.dates()
    | st.uuids()
    | st.decimals(allow_nan=False)
    | st.builds(Markup, _text)
)
TAGS = (" t", " u", " b", " m", " d", " di", " dt", " da", " dc")
_keys = _text | st.sampled_from([*TAGS, " t__", " di__"])
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(_keys, inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_every_value_the_tagged_codec_accepts_round_trips(value: Any) -> None:
    codec = TaggedJSON()
    codec.check_value("k", value)
    stored = loads(dumps(codec.encode_data({"k": value})))  # through JSON text, as a store keeps it
    assert same(codec.decode_data(stored)["k"], value)


_flask_datetimes = st.datetimes(min_value=datetime(1000, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
_flask_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | _text
    | st.binary(max_size=16)
    | st.uuids()
    | _flask_datetimes
    | st.builds(Markup, _text),
    # Flask writes a dict whose one key is a tag of ours (" dt") as it is; we read it as the tag.
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(_keys.filter(lambda k: k not in (" dt", " da", " dc")), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text.filter(lambda k: k not in TAGS), _flask_values, max_size=4))
def test_flask_and_the_tagged_codec_read_each_other(data: dict[str, Any]) -> None:
    codec = TaggedJSON()
    ours = dumps(codec.encode_data(data))
    assert same(TaggedJSONSerializer().loads(ours), data)
    assert same(codec.decode_data(loads(TaggedJSONSerializer().dumps(data))), data)


# -- plumbing ------------------------------------------------------------------------------


def test_codec_names_and_objects_are_accepted() -> None:
    assert type(as_codec(None)) is JSONCodec and type(as_codec("json")) is JSONCodec
    assert type(as_codec("tagged")) is TaggedJSON
    mine = TaggedJSON()
    assert as_codec(mine) is mine
    with pytest.raises(ConfigurationError, match="unknown session codec 'pickle'"):
        as_codec("pickle")


@pytest.mark.parametrize(
    "url",
    [
        "memory://?codec=tagged",
        "sqlite:///{tmp}/s.db?codec=tagged",
        "file:///{tmp}/d?codec=tagged",
        "cookie://?codec=tagged",
    ],
)
def test_store_urls_take_the_codec_option(url: str, tmp_path: Path) -> None:
    storage = open_store(url.format(tmp=tmp_path), secrets=["k"])
    assert type(storage.codec) is TaggedJSON
    session = storage.get_session(None)
    session["at"] = VALUES["offset"]
    again = storage.get_session(pair(storage.commit_session(session)))
    assert same(again["at"], VALUES["offset"])
    storage.close()


def test_an_unknown_codec_in_a_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown session codec 'yaml'"):
        open_store("memory://?codec=yaml", secrets=["k"])


def test_every_factory_takes_codec(tmp_path: Path) -> None:
    records: dict[str, Any] = {}

    def create_data(data: Any, expires: Any) -> str:
        records["x" * 22] = dict(data)
        return "x" * 22

    cookie = create_cookie("s", secrets=["k"])
    made = [
        create_memory_session_storage(cookie=cookie, codec="tagged"),
        create_sqlite_session_storage(path=tmp_path / "a.db", cookie=cookie, codec="tagged"),
        create_file_session_storage(dir=tmp_path / "files", cookie=cookie, codec="tagged"),
        create_cookie_session_storage(cookie=cookie, codec="tagged"),
        create_session_storage(
            cookie=cookie,
            create_data=create_data,
            read_data=lambda id: records.get(id),
            update_data=lambda id, data, expires: records.__setitem__(id, dict(data)),
            delete_data=lambda id: records.pop(id, None),
            codec="tagged",
        ),
    ]
    for storage in made:
        assert type(storage.codec) is TaggedJSON
        storage.close()


@pytest.mark.parametrize("layout", ["string", "hash"])
def test_tagged_values_on_redis(layout: str, door: Door, redis_url: str, redis_prefix: str) -> None:
    """Redis applies changes with a compare-and-set (string) or per field (hash): tagged values
    are JSON like any other to it."""
    from websession import create_redis_session_storage

    storage = create_redis_session_storage(
        cookie=create_cookie("s", secrets=["k"]),
        url=redis_url,
        prefix=redis_prefix,
        layout=layout,
        codec="tagged",
    )
    try:
        session = door.get(storage, None)
        session.update(VALUES)
        header = pair(door.commit(storage, session))
        session = door.get(storage, header)
        assert all(same(session[k], v) for k, v in VALUES.items())
        session["events"] = [VALUES["offset"]]
        session.flash("paid", VALUES["amount"])
        header = pair(door.commit(storage, session) or header)
        again = door.get(storage, header)
        assert same(again["events"], [VALUES["offset"]]) and same(again.get("paid"), VALUES["amount"])
        assert all(same(again[k], v) for k, v in VALUES.items())
    finally:
        storage.close()
