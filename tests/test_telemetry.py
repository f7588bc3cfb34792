"""websession.telemetry: spans and metrics per store operation, through both doors, on the
memory store and the real Redis; outages; the 503 counter; zero cost until turned on."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpCounter, NoOpHistogram, NoOpMeter, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.servers.redis import free_port
from websession import (
    Record,
    SessionStorage,
    Store,
    StoreUnavailableError,
    create_cookie,
    create_cookie_session_storage,
    create_memory_session_storage,
    create_sqlite_session_storage,
    generate_id,
)
from websession.changes import Changes
from websession.integrations._shared import unavailable_listeners
from websession.integrations.asgi import SessionMiddleware
from websession.stores.memory import MemoryStore
from websession.telemetry import describe, instrument, is_instrumented, uninstrument

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)  # the conventions' own list


# -- an SDK that keeps everything in memory ----------------------------------------------------


@dataclass
class Otel:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def take(self) -> list[ReadableSpan]:
        """The spans finished since the last call, oldest first."""
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def total(self, name: str) -> int:
        return sum(point.value for point in self.points(name))


def make_otel() -> Otel:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return Otel(exporter, reader, tracer_provider, MeterProvider(metric_readers=[reader]))


@pytest.fixture
def otel() -> Otel:
    return make_otel()


def cookie() -> Any:
    return create_cookie("__session", secrets=["telemetry-secret"], max_age=3600)


def outcomes(spans: list[ReadableSpan]) -> list[tuple[str, str | None]]:
    return [(span.name.split(" ")[0], (span.attributes or {}).get("websession.outcome")) for span in spans]


@pytest.fixture
def redis_storage(redis_url: str) -> Iterator[SessionStorage]:
    """A Redis storage under a prefix of its own; its keys are deleted afterwards."""
    import redis

    from websession.stores.redis import create_redis_session_storage

    prefix = f"ws-otel-test:{secrets.token_hex(4)}:"
    storage = create_redis_session_storage(cookie=cookie(), url=redis_url, prefix=prefix)
    yield storage
    storage.close()
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def memory_storage() -> SessionStorage:
    return create_memory_session_storage(cookie=cookie())


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> SessionStorage:
    return request.getfixturevalue(f"{request.param}_storage")


# -- one scenario, through either door ---------------------------------------------------------


class Door:
    """The storage's sync or async methods behind one awaitable face."""

    def __init__(self, storage: SessionStorage, door: str) -> None:
        self.storage, self.door = storage, door

    async def get(self, header: str | None) -> Any:
        if self.door == "sync":
            return self.storage.get_session(header)
        return await self.storage.aget_session(header)

    async def commit(self, session: Any) -> str | None:
        if self.door == "sync":
            return self.storage.commit_session(session)
        return await self.storage.acommit_session(session)

    async def destroy(self, session: Any) -> str:
        if self.door == "sync":
            return self.storage.destroy_session(session)
        return await self.storage.adestroy_session(session)


def first_part(header: str | None) -> str:
    assert header is not None
    return header.split(";")[0]


async def scenario(door: Door, otel: Otel) -> dict[str, list[ReadableSpan]]:
    """Every request a session lives through; the spans each one made."""
    steps: dict[str, list[ReadableSpan]] = {}
    session = await door.get(None)
    session["user"] = 1
    header = first_part(await door.commit(session))
    steps["new session"] = otel.take()

    session = await door.get(header)
    assert session["user"] == 1
    steps["unchanged"] = otel.take()

    session = await door.get(header)
    session["n"] = 2
    await door.commit(session)
    steps["changed"] = otel.take()

    session = await door.get(header)
    session.regenerate()
    moved = first_part(await door.commit(session))
    steps["regenerated"] = otel.take()

    stale = await door.get(header)
    assert stale.is_new
    steps["old id"] = otel.take()

    session = await door.get(moved)
    racing = await door.get(moved)
    await door.destroy(session)
    otel.take()
    racing["late"] = True
    assert first_part(await door.commit(racing)) == "__session="
    steps["changed after a destroy"] = otel.take()

    session = await door.get(None)
    session["again"] = 1
    await door.destroy(session)
    steps["never stored"] = otel.take()
    return steps


EXPECTED = {
    "new session": [("websession.create", "created")],
    "unchanged": [("websession.read", "hit")],
    "changed": [("websession.read", "hit"), ("websession.update", "updated")],
    "regenerated": [
        ("websession.read", "hit"),
        ("websession.take", "taken"),
        ("websession.create", "created"),
    ],
    "old id": [("websession.read", "miss")],
    "changed after a destroy": [("websession.update", "gone")],
    "never stored": [],
}


@pytest.mark.parametrize("door", ["sync", "async"])
def test_every_store_operation_is_one_span_with_its_outcome(
    storage: SessionStorage, otel: Otel, door: str
) -> None:
    instrument(storage, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    steps = asyncio.run(scenario(Door(storage, door), otel))
    assert {step: outcomes(spans) for step, spans in steps.items()} == EXPECTED


def test_a_destroy_is_a_delete_span(storage: SessionStorage, otel: Otel) -> None:
    instrument(storage, tracer_provider=otel.tracer_provider)
    session = storage.get_session(None)
    session["user"] = 1
    header = first_part(storage.commit_session(session))
    otel.take()
    storage.destroy_session(storage.get_session(header))
    assert outcomes(otel.take()) == [("websession.read", "hit"), ("websession.delete", "deleted")]


def test_redis_spans_follow_the_database_client_conventions(
    redis_storage: SessionStorage, otel: Otel
) -> None:
    instrument(redis_storage, tracer_provider=otel.tracer_provider)
    steps = asyncio.run(scenario(Door(redis_storage, "async"), otel))
    read = steps["unchanged"][0]
    assert read.kind is SpanKind.CLIENT
    assert read.name == "websession.read 127.0.0.1:6379"  # Redis keeps its db index out of names
    assert dict(read.attributes or {}) == {
        "db.system.name": "redis",
        "db.operation.name": "websession.read",
        "db.namespace": "0",
        "server.address": "127.0.0.1",
        "server.port": 6379,
        "websession.outcome": "hit",
        "websession.round_trips": 1,
    }
    assert read.status.status_code is StatusCode.UNSET
    everything = [span for spans in steps.values() for span in spans]
    # One command each: GETEX, SET NX, the compare-and-set script, GETDEL, DEL.
    assert {(span.attributes or {}).get("websession.round_trips") for span in everything} == {1}
    assert all("error.type" not in (span.attributes or {}) for span in everything)


def test_memory_spans_are_internal_and_report_no_round_trips(
    memory_storage: SessionStorage, otel: Otel
) -> None:
    instrument(memory_storage, tracer_provider=otel.tracer_provider)
    steps = asyncio.run(scenario(Door(memory_storage, "sync"), otel))
    read = steps["unchanged"][0]
    assert read.kind is SpanKind.INTERNAL  # in-memory calls MAY be INTERNAL, says the convention
    assert read.name == "websession.read"
    assert dict(read.attributes or {}) == {
        "db.system.name": "websession.memory",
        "db.operation.name": "websession.read",
        "websession.outcome": "hit",
    }


def test_a_compare_and_set_retry_counts_as_a_second_round_trip(
    redis_storage: SessionStorage, otel: Otel
) -> None:
    instrument(redis_storage, tracer_provider=otel.tracer_provider)
    session = redis_storage.get_session(None)
    session["user"] = 1
    header = first_part(redis_storage.commit_session(session))
    mine = redis_storage.get_session(header)
    theirs = redis_storage.get_session(header)
    theirs["theirs"] = 1
    redis_storage.commit_session(theirs)  # the record changes after `mine` read it
    otel.take()
    mine["mine"] = 1
    redis_storage.commit_session(mine)
    (update,) = otel.take()
    assert (update.attributes or {})["websession.round_trips"] == 2
    assert (update.attributes or {})["websession.outcome"] == "updated"
    assert dict(redis_storage.get_session(header)) == {"user": 1, "theirs": 1, "mine": 1}


@pytest.mark.parametrize("door", ["sync", "async"])
def test_metrics_follow_the_conventions(storage: SessionStorage, otel: Otel, door: str) -> None:
    instrument(storage, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    asyncio.run(scenario(Door(storage, door), otel))
    system = "redis" if storage.store.kind == "redis" else "websession.memory"
    durations = otel.points("db.client.operation.duration")
    counts = {point.attributes["db.operation.name"]: point.count for point in durations}
    assert counts == {
        "websession.create": 2,
        "websession.read": 6,
        "websession.update": 2,
        "websession.take": 1,
        "websession.delete": 1,
    }
    for point in durations:
        assert tuple(point.explicit_bounds) == BUCKETS
        assert point.attributes["db.system.name"] == system
        assert "error.type" not in point.attributes
        assert 0 < point.sum < 10
    assert otel.total("websession.session.hits") == 5
    assert otel.total("websession.session.misses") == 1
    assert otel.total("websession.session.fresh") == 2
    assert {tuple(p.attributes.items()) for p in otel.points("websession.session.hits")} == {
        (("db.system.name", system),)
    }


def test_operation_spans_nest_under_the_current_span(memory_storage: SessionStorage, otel: Otel) -> None:
    instrument(memory_storage, tracer_provider=otel.tracer_provider)
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /") as request_span:
        memory_storage.get_session(first_part(memory_storage.cookie.serialize(generate_id())))
        assert trace.get_current_span() is request_span  # the store's span is no longer current
    read, request = otel.take()
    assert read.parent is not None and read.parent.span_id == request.context.span_id


# -- failures ----------------------------------------------------------------------------------


@pytest.fixture
def dead_redis() -> Iterator[SessionStorage]:
    """A Redis storage pointed at a port nobody listens on."""
    from websession.stores.redis import create_redis_session_storage

    storage = create_redis_session_storage(
        cookie=cookie(), url=f"redis://127.0.0.1:{free_port()}/0", prefix="ws-otel-test:dead:", timeout=2
    )
    yield storage
    storage.close()


def outage(storage: SessionStorage, door: str) -> StoreUnavailableError:
    header = first_part(storage.cookie.serialize(generate_id()))
    with pytest.raises(StoreUnavailableError) as raised:
        if door == "sync":
            storage.get_session(header)
        else:
            asyncio.run(storage.aget_session(header))
    return raised.value


@pytest.mark.parametrize("door", ["sync", "async"])
def test_an_outage_is_an_error_span_and_the_same_exception(
    dead_redis: SessionStorage, otel: Otel, door: str
) -> None:
    plain = outage(dead_redis, door)
    instrument(dead_redis, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    traced = outage(dead_redis, door)
    assert type(traced) is type(plain) and str(traced) == str(plain)
    assert type(traced.__cause__) is type(plain.__cause__)
    (span,) = otel.take()
    assert span.name.startswith("websession.read ")
    assert span.status.status_code is StatusCode.ERROR
    assert "StoreUnavailableError" in (span.status.description or "")
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "redis.exceptions.ConnectionError"  # the cause, as preferred
    # The sync door connects before its first command, the async one as it sends it.
    assert attributes["websession.round_trips"] == (0 if door == "sync" else 1)
    assert "websession.outcome" not in attributes
    assert not span.events  # errors are recorded on the span, not as exception events
    (point,) = otel.points("db.client.operation.duration")
    assert point.attributes["error.type"] == "redis.exceptions.ConnectionError"
    assert otel.total("websession.session.misses") == 0


class Boom(Exception):
    pass


class FailingStore(MemoryStore):
    """A memory store whose update raises one given exception."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        raise self.error


def test_the_stores_exception_goes_up_as_it_was_raised(otel: Otel) -> None:
    error = Boom("the store broke")
    storage = instrument(
        SessionStorage(cookie=cookie(), store=FailingStore(error)), tracer_provider=otel.tracer_provider
    )
    session = storage.get_session(None)
    session["a"] = 1
    header = first_part(storage.commit_session(session))
    session = storage.get_session(header)
    session["a"] = 2
    otel.take()
    with pytest.raises(Boom) as raised:
        storage.commit_session(session)
    assert raised.value is error
    assert raised.traceback[-1].name == "update"  # raised where the store raised it
    (span,) = otel.take()
    assert (span.attributes or {})["error.type"] == "tests.test_telemetry.Boom"
    assert span.status.description == "Boom: the store broke"


class Exploding(SpanProcessor):
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("a span processor that raises")

    def on_end(self, span: Any) -> None:
        raise RuntimeError("a span processor that raises")


class ExplodingHistogram(NoOpHistogram):
    def record(self, amount: Any, attributes: Any = None, context: Any = None) -> None:
        raise RuntimeError("a histogram that raises")


class ExplodingCounter(NoOpCounter):
    def add(self, amount: Any, attributes: Any = None, context: Any = None) -> None:
        raise RuntimeError("a counter that raises")


class ExplodingMeter(NoOpMeter):
    def create_histogram(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return ExplodingHistogram(name)

    def create_counter(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return ExplodingCounter(name)


class ExplodingMeterProvider(NoOpMeterProvider):
    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return ExplodingMeter(name)


@pytest.mark.parametrize("door", ["sync", "async"])
def test_a_failing_sdk_never_breaks_a_request(
    memory_storage: SessionStorage, door: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = TracerProvider()
    tracing.add_span_processor(Exploding())
    broken = ExplodingMeterProvider()
    instrument(memory_storage, tracer_provider=tracing, meter_provider=broken)
    with caplog.at_level(logging.WARNING, logger="websession"):
        steps = asyncio.run(scenario(Door(memory_storage, door), make_otel()))
    assert set(steps) == set(EXPECTED)  # every request went through, with the right data
    warnings = [r for r in caplog.records if "telemetry for the memory store failed" in r.getMessage()]
    assert len(warnings) == 1
    assert trace.get_current_span() is trace.INVALID_SPAN  # no context was left attached
    uninstrument(memory_storage)


# -- the 503 counter -----------------------------------------------------------------------------


async def counter(request: Request) -> PlainTextResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return PlainTextResponse(str(request.session["n"]))


def test_the_503_counter_moves_when_the_asgi_middleware_answers_503(
    dead_redis: SessionStorage, otel: Otel
) -> None:
    instrument(dead_redis, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    app = SessionMiddleware(Starlette(routes=[Route("/", counter)]), storage=dead_redis)
    stale = first_part(dead_redis.cookie.serialize(generate_id()))
    with TestClient(app) as client:
        assert client.get("/", headers={"cookie": stale}).status_code == 503  # the read fails
        assert client.get("/").status_code == 503  # no cookie: the create at commit fails
    (point,) = otel.points("websession.session.unavailable")
    assert point.value == 2
    assert dict(point.attributes) == {
        "error.type": "redis.exceptions.ConnectionError",
        "http.response.status_code": 503,
    }
    uninstrument(dead_redis)
    with TestClient(app) as client:
        assert client.get("/", headers={"cookie": stale}).status_code == 503
    (point,) = otel.points("websession.session.unavailable")
    assert point.value == 2  # no instrumented storage left on that provider: no longer counted


def test_a_custom_unavailable_status_is_counted_with_its_status(
    dead_redis: SessionStorage, otel: Otel
) -> None:
    instrument(dead_redis, meter_provider=otel.meter_provider)
    app = SessionMiddleware(
        Starlette(routes=[Route("/", counter)]), storage=dead_redis, unavailable_status=500
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 500
    (point,) = otel.points("websession.session.unavailable")
    assert point.attributes["http.response.status_code"] == 500
    uninstrument(dead_redis)


# -- turning it on and off -------------------------------------------------------------------------


def test_instrumenting_twice_does_not_double_spans(memory_storage: SessionStorage) -> None:
    first, second = make_otel(), make_otel()
    listeners = len(unavailable_listeners)
    store = memory_storage.store
    instrument(memory_storage, tracer_provider=first.tracer_provider, meter_provider=first.meter_provider)
    instrument(memory_storage, tracer_provider=second.tracer_provider, meter_provider=second.meter_provider)
    assert memory_storage.store.wrapped is store  # type: ignore[attr-defined]
    memory_storage.get_session(first_part(memory_storage.cookie.serialize(generate_id())))
    assert outcomes(first.take()) == [("websession.read", "miss")]
    assert second.take() == []
    assert len(unavailable_listeners) == listeners + 1

    assert uninstrument(memory_storage) is memory_storage
    assert memory_storage.store is store and not is_instrumented(memory_storage)
    assert len(unavailable_listeners) == listeners
    memory_storage.get_session(first_part(memory_storage.cookie.serialize(generate_id())))
    assert first.take() == []
    assert uninstrument(memory_storage).store is store  # undoing twice is harmless too


def test_storages_sharing_a_meter_provider_share_one_503_listener(otel: Otel) -> None:
    listeners = len(unavailable_listeners)
    a = instrument(create_memory_session_storage(cookie=cookie()), meter_provider=otel.meter_provider)
    b = instrument(create_memory_session_storage(cookie=cookie()), meter_provider=otel.meter_provider)
    assert len(unavailable_listeners) == listeners + 1
    uninstrument(a)
    assert len(unavailable_listeners) == listeners + 1  # b still counts
    uninstrument(b)
    assert len(unavailable_listeners) == listeners


def test_the_proxy_answers_for_the_store_it_wraps(redis_storage: SessionStorage, otel: Otel) -> None:
    store = redis_storage.store
    instrument(redis_storage, tracer_provider=otel.tracer_provider)
    proxy: Any = redis_storage.store
    assert (proxy.kind, proxy.native_ttl, proxy.atomic_take, proxy.prefix) == (
        "redis",
        True,
        True,
        store.prefix,  # type: ignore[attr-defined]
    )
    assert proxy.key("ab" * 20) == store.key("ab" * 20)  # type: ignore[attr-defined]
    proxy.explicit_ttl = True
    assert store.explicit_ttl is True and proxy.default_ttl == store.default_ttl
    session = redis_storage.get_session(None)
    session["n"] = 1
    redis_storage.commit_session(session)
    otel.take()
    # Maintenance goes straight through, untraced: the CLI's scans are not requests.
    assert proxy.count() == 1
    assert [record.data for _, record in proxy.scan()] == [{"n": 1}]
    assert proxy.peek(session.id).data == {"n": 1}
    assert otel.take() == []
    # Callers that use the store directly (Django's engine) are traced all the same.
    new_id = proxy.create({"direct": True}, None)
    assert proxy.take(new_id).data == {"direct": True}
    assert outcomes(otel.take()) == [("websession.create", "created"), ("websession.take", "taken")]


def test_a_cookie_storage_has_nothing_to_instrument() -> None:
    storage = create_cookie_session_storage(cookie=cookie())
    listeners = len(unavailable_listeners)
    assert instrument(storage) is storage
    assert not is_instrumented(storage) and not hasattr(storage, "store")
    assert len(unavailable_listeners) == listeners


@pytest.mark.parametrize("not_a_storage", [None, MemoryStore(), "redis://localhost"])
def test_instrument_refuses_what_is_not_a_storage(not_a_storage: Any) -> None:
    with pytest.raises(TypeError, match="instrument"):
        instrument(not_a_storage)


def run_python(code: str) -> Any:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_nothing_imports_opentelemetry_until_instrument_is_called() -> None:
    before, listeners, after, instrumented = run_python(
        """
import json, sys
import websession, websession.telemetry
from websession.integrations import asgi, wsgi
from websession.integrations._shared import unavailable_listeners
storage = websession.create_memory_session_storage(
    cookie=websession.create_cookie("s", secrets=["k"]))
session = storage.get_session(None)
session["a"] = 1
header = storage.commit_session(session)
storage.get_session(header.split(";")[0])
loaded = lambda: sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"
                        or m == "websession._telemetry")
before, listeners = loaded(), len(unavailable_listeners)
websession.telemetry.instrument(storage)
print(json.dumps([before, listeners, "opentelemetry.trace" in loaded(),
                  type(storage.store).__name__]))
"""
    )
    assert before == [] and listeners == 0
    assert after and instrumented == "InstrumentedStore"


def test_without_the_extra_instrument_says_what_to_install() -> None:
    message, solution, storage_kept = run_python(
        """
import json, sys
sys.modules["opentelemetry"] = None  # as if websession[otel] were not installed
import websession
from websession.errors import ConfigurationError
from websession.telemetry import instrument
storage = websession.create_memory_session_storage(
    cookie=websession.create_cookie("s", secrets=["k"]))
try:
    instrument(storage)
except ConfigurationError as exc:
    print(json.dumps([str(exc), exc.solution, type(storage.store).__name__]))
"""
    )
    assert "OpenTelemetry" in message
    assert solution == "pip install 'websession[otel]'" and storage_kept == "MemoryStore"


# -- what stores say about themselves -------------------------------------------------------------


def test_a_redis_url_gives_address_port_and_index_but_never_credentials() -> None:
    from websession.stores.redis import RedisStore

    store = RedisStore(url="redis://ops:hunter2@cache.internal:6380/3")
    assert describe(store) == {
        "db.system.name": "redis",
        "server.address": "cache.internal",
        "server.port": 6380,
        "db.namespace": "3",
    }
    # A cluster URL names one node of many: no server is named (test below).


def test_a_given_redis_client_is_described_from_its_pool() -> None:
    import redis

    from websession.stores.redis import RedisStore

    client = redis.Redis(host="127.0.0.1", port=6379, db=2)
    assert describe(RedisStore(client=client)) == {
        "db.system.name": "redis",
        "server.address": "127.0.0.1",
        "server.port": 6379,
        "db.namespace": "2",
    }
    client.close()


def test_sql_stores_name_their_table_and_the_span_after_it(tmp_path: pathlib.Path, otel: Otel) -> None:
    storage = create_sqlite_session_storage(path=tmp_path / "s.sqlite3", cookie=cookie())
    table = "websession_sessions"
    assert describe(storage.store) == {"db.system.name": "sqlite", "db.collection.name": table}
    instrument(storage, tracer_provider=otel.tracer_provider)
    storage.get_session(first_part(storage.cookie.serialize(generate_id())))
    (span,) = otel.take()
    assert span.name == "websession.read websession_sessions" and span.kind is SpanKind.CLIENT
    storage.close()


def test_postgres_dsn_gives_database_and_server_without_password() -> None:
    pytest.importorskip("psycopg")
    from websession.stores.postgres import PostgresStore

    store = PostgresStore(dsn="postgresql://app:hunter2@db.internal:5433/shop", table="web_sessions")
    assert describe(store) == {
        "db.system.name": "postgresql",
        "db.collection.name": "web_sessions",
        "db.namespace": "shop",
        "server.address": "db.internal",
        "server.port": 5433,
    }


class MongoStore(Store):
    """A store of the user's own, of a kind websession does not know."""

    kind = "mongodb"

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        raise NotImplementedError

    def read(self, id: str, touch: datetime | None) -> Record | None:
        return None

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        return None

    def delete(self, id: str) -> None:
        pass


def test_a_store_of_your_own_reports_its_kind_unless_told_the_system() -> None:
    assert describe(MongoStore()) == {"db.system.name": "mongodb"}
    storage = instrument(SessionStorage(cookie=cookie(), store=MongoStore()), system="mongodb.atlas")
    assert storage.store.description == {"db.system.name": "mongodb.atlas"}  # type: ignore[attr-defined]
    assert describe(MemoryStore(), "custom") == {"db.system.name": "custom"}


def test_a_store_of_your_own_can_register_what_describes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from websession import telemetry

    def describer(store: Any) -> dict[str, Any]:
        return {"server.address": "mongo.internal", "db.namespace": ""}

    monkeypatch.setitem(telemetry.DESCRIBERS, "mongodb", describer)
    # Empty values are left out rather than reported.
    assert describe(MongoStore()) == {"db.system.name": "mongodb", "server.address": "mongo.internal"}


def test_a_store_that_cannot_be_described_is_traced_without_its_address() -> None:
    from websession.stores.redis import RedisStore

    store = RedisStore(url="redis://127.0.0.1:6379/0")
    store.url = "not a url at all"  # a describer that fails leaves the address out, no more
    assert describe(store) == {"db.system.name": "redis"}


# -- review follow-ups ----------------------------------------------------------------------------


def test_a_subclass_s_own_store_methods_still_run_when_instrumented(redis_url: str, otel: Otel) -> None:
    """Round-trip counting must not go around a subclass's override of a store method."""
    from websession.stores.redis import RedisStore

    reads: list[str] = []

    class Audited(RedisStore):
        def read(self, id: str, touch: Any) -> Any:
            reads.append(id)
            return super().read(id, touch)

        async def aread(self, id: str, touch: Any) -> Any:
            reads.append(id)
            return await super().aread(id, touch)

    store = Audited(url=redis_url, prefix=f"ws-otel-test:{secrets.token_hex(4)}:")
    storage = SessionStorage(cookie=cookie(), store=store)
    try:
        session = storage.get_session(None)
        session["n"] = 1
        header = storage.commit_session(session).split(";")[0]
        instrument(storage, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
        assert storage.get_session(header)["n"] == 1
        assert asyncio.run(storage.aget_session(header))["n"] == 1
        assert len(reads) == 2
        storage.destroy_session(storage.get_session(header))
    finally:
        storage.close()


def test_settings_written_through_the_proxy_reach_the_store(
    memory_storage: SessionStorage, otel: Otel
) -> None:
    original = memory_storage.store
    instrument(memory_storage, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    memory_storage.store.max_entries = 5  # type: ignore[attr-defined]
    assert original.max_entries == 5  # type: ignore[attr-defined]
    memory_storage.store.default_ttl = 60
    assert original.default_ttl == 60


def test_maintenance_sees_the_wrapped_store_s_abilities(otel: Otel) -> None:
    from websession import create_session_storage
    from websession.maintenance import supports_write

    custom = create_session_storage(
        cookie=cookie(),
        create_data=lambda data, expires: "x",
        read_data=lambda id: None,
        update_data=lambda id, data, expires: None,
        delete_data=lambda id: None,
    )
    instrument(custom, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    assert supports_write(custom.store) is False
    memory = create_memory_session_storage(cookie=cookie())
    instrument(memory, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    assert supports_write(memory.store) is True


def test_a_cluster_url_names_no_single_server() -> None:
    from websession.stores.redis import RedisStore

    store = RedisStore(url="redis+cluster://10.0.0.1:7000")
    assert "server.address" not in describe(store)


@pytest.mark.parametrize("door", ["sync", "async"])
def test_the_traced_operations_take_store_s_arguments_by_name(
    storage: SessionStorage, otel: Otel, door: str
) -> None:
    """The Store API is public: arguments by name work on the proxy as on the store (the
    memory store is traced without counting, Redis through counted(), positions only)."""
    import inspect

    instrument(storage, tracer_provider=otel.tracer_provider)
    store = storage.store

    async def calls() -> None:
        if door == "sync":
            id = store.create(data={"n": 1}, expires=None)
            record = store.read(id, touch=None)
            assert record is not None and record.data == {"n": 1}
            assert store.update(id, changes=Changes(set={"n": 2}), expires=None, seen=record) is not None
            assert store.take(id=id) is not None
            with pytest.raises(TypeError, match=r"^read\(\) got an unexpected keyword argument 'touched'"):
                store.read(id, None, touched=True)
        else:
            id = await store.acreate(data={"n": 1}, expires=None)
            record = await store.aread(id, touch=None)
            assert record is not None and record.data == {"n": 1}
            changes = Changes(set={"n": 2})
            assert await store.aupdate(id, changes=changes, expires=None, seen=record) is not None
            assert await store.atake(id=id) is not None
            with pytest.raises(TypeError, match=r"^aread\(\) got an unexpected keyword argument 'touched'"):
                await store.aread(id, None, touched=True)

    asyncio.run(calls())
    assert [name for name, _ in outcomes(otel.take())] == [
        "websession.create",
        "websession.read",
        "websession.update",
        "websession.take",
    ]
    assert str(inspect.signature(store.read)) == "(id: 'str', touch: 'datetime | None') -> 'Record | None'"
    assert list(inspect.signature(type(store).acreate).parameters) == ["self", "data", "expires"]
