"""Everything the bench measures, built the same way: a runner with ``prime`` (give each
simulated browser a session), ``run(n, workload)`` and ``close``.

Every library keeps sessions for an hour, rolls them where it can, and runs the same tiny
app (:func:`bench.drive.touch`): read one key ("read"), or increment a counter ("write").
Anchors run with their documented defaults otherwise.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import adapters
from .drive import INITIAL, AsgiDriver, WsgiDriver, asgi_endpoint, touch
from .servers import Servers

SECRET = "bench-secret-" + "x" * 20
LIFETIME = 3600
COOKIE = "__session"


@dataclass
class Env:
    """What a runner may use: the private servers and a scratch directory."""

    servers: Servers
    scratch: Path
    slots: int = 64
    notes: dict[str, str] = field(default_factory=dict)

    def prefix(self, name: str) -> str:
        return f"bench:{name.replace(' ', '-')}:{secrets.token_hex(3)}:"


class Runner:
    """One contender, ready to run. Sync runners leave ``is_async`` False."""

    is_async = True
    redis = False

    def prime(self) -> Any: ...

    def run(self, n: int, workload: str) -> Any: ...

    def close(self) -> Any: ...


@dataclass(frozen=True)
class Contender:
    """A row of the in-process table."""

    name: str
    group: str  # "floor", "websession", "anchor"
    build: Callable[[Env], Runner]
    needs: tuple[str, ...] = ()  # modules that must import
    anchor: dict[str, str] = field(default_factory=dict)  # workload -> name it is compared to

    def available(self) -> str | None:
        """None when it can run here, else why not."""
        for module in self.needs:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not importable"
        return None


def _cookie() -> Any:
    from websession import create_cookie

    return create_cookie(COOKIE, secrets=[SECRET], max_age=LIFETIME)


# -- floors: the round trips a request cannot avoid, done by hand with redis-py --------------------


class AsyncFloor(Runner):
    """redis-py asyncio doing by hand what a request must: GETEX to read (and roll the TTL),
    GET then SET to change a record."""

    redis = True

    def __init__(self, env: Env) -> None:
        import redis.asyncio

        self.client = redis.asyncio.Redis(port=env.servers.redis_port)
        self.keys = [f"{env.prefix('floor')}{i}" for i in range(env.slots)]
        self.value = json.dumps(INITIAL, separators=(",", ":")).encode()

    async def prime(self) -> None:
        for key in self.keys:
            await self.client.set(key, self.value, ex=LIFETIME)

    async def run(self, n: int, workload: str) -> None:
        client, keys, slots = self.client, self.keys, len(self.keys)
        if workload == "read":
            for i in range(n):
                await client.getex(keys[i % slots], ex=LIFETIME)
        else:
            for i in range(n):
                key = keys[i % slots]
                value = await client.get(key)
                await client.set(key, value, ex=LIFETIME)

    async def close(self) -> None:
        await self.client.aclose()


class SyncFloor(Runner):
    """The same round trips with the sync client, as a Flask app makes them."""

    is_async = False
    redis = True

    def __init__(self, env: Env) -> None:
        import redis

        self.client = redis.Redis(port=env.servers.redis_port)
        self.keys = [f"{env.prefix('floor-sync')}{i}" for i in range(env.slots)]
        self.value = json.dumps(INITIAL, separators=(",", ":")).encode()

    def prime(self) -> None:
        for key in self.keys:
            self.client.set(key, self.value, ex=LIFETIME)

    def run(self, n: int, workload: str) -> None:
        client, keys, slots = self.client, self.keys, len(self.keys)
        if workload == "read":
            for i in range(n):
                client.getex(keys[i % slots], ex=LIFETIME)
        else:
            for i in range(n):
                key = keys[i % slots]
                client.set(key, client.get(key), ex=LIFETIME)

    def close(self) -> None:
        self.client.close()


# -- ASGI contenders ----------------------------------------------------------------------------


class AsgiRunner(Runner):
    def __init__(
        self,
        app: Any,
        cookie_name: str,
        env: Env,
        closer: Callable[[], Any] | None = None,
        *,
        primed: bool = False,
    ) -> None:
        self.driver = AsgiDriver(app, cookie_name, env.slots)
        self.closer = closer
        self.primed = primed

    async def prime(self) -> None:
        if not self.primed:
            await self.driver.prime()

    async def run(self, n: int, workload: str) -> None:
        await self.driver.run(n, workload)

    async def run_concurrent(self, n: int, workload: str, clients: int) -> None:
        await self.driver.run_concurrent(n, workload, clients)

    async def close(self) -> None:
        if self.closer is not None:
            result = self.closer()
            if asyncio.iscoroutine(result):
                await result


def websession_storage(store: str, env: Env, *, redis_url: str | None = None) -> Any:
    """A websession storage of the given kind, on the bench's private servers."""
    import websession

    cookie = _cookie()
    if store == "cookie":
        return websession.create_cookie_session_storage(cookie=cookie)
    if store == "cookie-fixed":
        # Starlette's semantics: the cookie is re-sent only when the data changed.
        return websession.create_cookie_session_storage(cookie=cookie, rolling=False)
    if store == "memory":
        return websession.create_memory_session_storage(cookie=cookie)
    if store == "file":
        directory = env.scratch / f"file-{secrets.token_hex(3)}"
        return websession.create_file_session_storage(dir=directory, cookie=cookie)
    if store == "sqlite":
        path = env.scratch / f"sessions-{secrets.token_hex(3)}.sqlite3"
        return websession.create_sqlite_session_storage(path=path, cookie=cookie)
    if store in ("redis", "redis-hash"):
        return websession.create_redis_session_storage(
            cookie=cookie,
            url=redis_url or env.servers.redis_url,
            prefix=env.prefix(store),
            layout="hash" if store == "redis-hash" else "string",
        )
    if store == "redis-cluster":
        return websession.create_redis_session_storage(
            cookie=cookie, url=env.servers.cluster_url, prefix=env.prefix(store)
        )
    if store == "memcache":
        return websession.create_memcache_session_storage(
            cookie=cookie, servers=[f"127.0.0.1:{env.servers.memcached_port}"], prefix=env.prefix(store)
        )
    raise ValueError(f"unknown websession store {store!r}")


def websession_asgi(store: str) -> Callable[[Env], Runner]:
    def build(env: Env) -> Runner:
        storage = websession_storage(store, env)
        app, how = adapters.asgi_middleware(asgi_endpoint, storage)
        env.notes["websession ASGI middleware"] = how
        runner = AsgiRunner(app, COOKIE, env, storage.aclose)
        runner.redis = store.startswith("redis")
        return runner

    return build


def websession_asgi_traced(store: str) -> Callable[[Env], Runner]:
    """The same app with telemetry on: OpenTelemetry's SDK recording every span (a batch
    processor, as in production, in front of an exporter that drops them) and every metric."""

    def build(env: Env) -> Runner:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        from websession.telemetry import instrument

        class Dropped(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        tracing = TracerProvider()
        tracing.add_span_processor(BatchSpanProcessor(Dropped()))
        metering = MeterProvider(metric_readers=[InMemoryMetricReader()])
        storage = instrument(websession_storage(store, env), tracer_provider=tracing, meter_provider=metering)
        app, _how = adapters.asgi_middleware(asgi_endpoint, storage)

        async def close() -> None:
            await storage.aclose()
            tracing.shutdown()
            metering.shutdown()

        runner = AsgiRunner(app, COOKIE, env, close)
        runner.redis = store.startswith("redis")
        return runner

    return build


def websession_asgi_signed_in(store: str) -> Callable[[Env], Runner]:
    """The same app, with every browser signed in (``session.login``) when its session starts:
    what a signed-in user's requests cost next to an anonymous one's."""
    users = itertools.count()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/init" or session.get("user_id") is None:
            session.login(f"user-{next(users)}", labels={"device": "bench"})
        await asgi_endpoint(scope, receive, send)

    def build(env: Env) -> Runner:
        storage = websession_storage(store, env)
        wrapped, how = adapters.asgi_middleware(app, storage)
        env.notes["websession ASGI middleware"] = how
        runner = AsgiRunner(wrapped, COOKIE, env, storage.aclose)
        runner.redis = store.startswith("redis")
        return runner

    return build


def bare_asgi(env: Env) -> Runner:
    """The app alone, with a plain dict as its session: what the driver and the app cost."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"] = {"user_id": 42, "n": 0}
        await asgi_endpoint(scope, receive, send)

    return AsgiRunner(app, COOKIE, env, primed=True)


def starlette_cookie(env: Env) -> Runner:
    from starlette.middleware.sessions import SessionMiddleware

    app = SessionMiddleware(asgi_endpoint, secret_key=SECRET, session_cookie=COOKIE, max_age=LIFETIME)
    return AsgiRunner(app, COOKIE, env)


def starsessions_redis(env: Env) -> Runner:
    import redis.asyncio
    from starsessions import SessionAutoloadMiddleware, SessionMiddleware
    from starsessions.stores.redis import RedisStore

    client = redis.asyncio.Redis(port=env.servers.redis_port)
    store = RedisStore(connection=client, prefix=env.prefix("starsessions"))
    app = SessionMiddleware(
        SessionAutoloadMiddleware(asgi_endpoint),
        store=store,
        lifetime=LIFETIME,
        rolling=True,
        cookie_name=COOKIE,
        cookie_https_only=False,
    )
    runner = AsgiRunner(app, COOKIE, env, client.aclose)
    runner.redis = True
    return runner


# -- aiohttp-session, through its middleware with real aiohttp requests ---------------------------


class AiohttpRunner(Runner):
    redis = True

    def __init__(self, env: Env) -> None:
        import redis.asyncio
        from aiohttp import web
        from aiohttp_session import get_session, session_middleware
        from aiohttp_session.redis_storage import RedisStorage

        self.client = redis.asyncio.Redis(port=env.servers.redis_port)
        # aiohttp-session keys records as cookie_name + "_" + id: the cookie name is the prefix.
        self.cookie_name = "bench" + secrets.token_hex(3)
        storage = RedisStorage(self.client, cookie_name=self.cookie_name, max_age=LIFETIME)
        self.middleware = session_middleware(storage)

        async def handler(request: web.Request) -> web.Response:
            session = await get_session(request)
            touch(session, request.path)
            return web.Response(text="ok")

        self.handler = handler
        self.jar: list[str | None] = [None] * env.slots
        self._stubs: tuple[Any, ...] | None = None

    def _request(self, path: str, cookie: str | None) -> Any:
        from unittest import mock

        from aiohttp import web
        from aiohttp.http import HttpVersion11, RawRequestMessage
        from multidict import CIMultiDict, CIMultiDictProxy
        from yarl import URL

        if self._stubs is None:
            # Built once: aiohttp's make_mocked_request makes fresh Mocks per request, which
            # would bill this anchor for unittest.mock rather than for its own work.
            protocol = mock.Mock()
            protocol.transport = mock.Mock()
            protocol.transport.get_extra_info.return_value = ("127.0.0.1", 50000)
            self._stubs = (protocol, mock.Mock(), mock.Mock(), asyncio.get_running_loop(), {})
        protocol, writer, task, loop, urls = self._stubs
        raw = [(b"Host", b"bench"), (b"Accept", b"*/*")]
        if cookie is not None:
            raw.append((b"Cookie", cookie.encode("latin-1")))
        headers = CIMultiDictProxy(CIMultiDict((k.decode(), v.decode("latin-1")) for k, v in raw))
        url = urls.get(path) or urls.setdefault(path, URL(path))
        message = RawRequestMessage(
            "GET", path, HttpVersion11, headers, tuple(raw), False, None, False, False, url
        )
        return web.Request(message, mock.sentinel.payload, protocol, writer, task, loop)

    async def _one(self, slot: int, path: str) -> None:
        request = self._request(path, self.jar[slot])
        response = await self.middleware(request, self.handler)
        morsel = response.cookies.get(self.cookie_name)
        if morsel is not None:
            self.jar[slot] = f"{self.cookie_name}={morsel.value}" if morsel.value else None

    async def prime(self) -> None:
        for slot in range(len(self.jar)):
            await self._one(slot, "/init")

    async def run(self, n: int, workload: str) -> None:
        path = "/" + workload
        slots = len(self.jar)
        for i in range(n):
            await self._one(i % slots, path)

    async def close(self) -> None:
        await self.client.aclose()


# -- Flask ----------------------------------------------------------------------------------------


class WsgiRunner(Runner):
    is_async = False

    def __init__(
        self,
        app: Any,
        cookie_name: str,
        env: Env,
        closer: Callable[[], Any] | None = None,
        *,
        primed: bool = False,
    ) -> None:
        self.driver = WsgiDriver(app, cookie_name, env.slots)
        self.closer = closer
        self.primed = primed

    def prime(self) -> None:
        if not self.primed:
            self.driver.prime()

    def run(self, n: int, workload: str) -> None:
        self.driver.run(n, workload)

    def close(self) -> None:
        if self.closer is not None:
            self.closer()


def flask_app(configure: Callable[[Any], None]) -> Any:
    import flask

    app = flask.Flask("bench")
    app.config["PERMANENT_SESSION_LIFETIME"] = LIFETIME
    configure(app)

    sessions = not app.config.get("BENCH_NO_SESSIONS")

    def view() -> str:
        if sessions:
            touch(flask.session, flask.request.path)
        return "ok"

    for path in ("/read", "/write", "/init"):
        app.add_url_rule(path, path.strip("/"), view)
    return app


def flask_session_redis(env: Env) -> Runner:
    import redis
    from flask_session import Session

    client = redis.Redis(port=env.servers.redis_port)

    def configure(app: Any) -> None:
        app.config.update(
            SESSION_TYPE="redis",
            SESSION_REDIS=client,
            SESSION_KEY_PREFIX=env.prefix("flask-session"),
            SESSION_COOKIE_NAME=COOKIE,
            SECRET_KEY=SECRET,
        )
        Session(app)

    runner = WsgiRunner(flask_app(configure), COOKIE, env, client.close)
    runner.redis = True
    return runner


def websession_flask(store: str) -> Callable[[Env], Runner]:
    def build(env: Env) -> Runner:
        storage = websession_storage(store, env)

        def configure(app: Any) -> None:
            interface, how = adapters.flask_interface(storage)
            env.notes["websession Flask interface"] = how
            app.session_interface = interface

        runner = WsgiRunner(flask_app(configure), COOKIE, env, storage.close)
        runner.redis = store.startswith("redis")
        return runner

    return build


def flask_plain(env: Env) -> Runner:
    """Flask with a view that never touches the session: what the framework itself costs."""

    def configure(app: Any) -> None:
        app.config["BENCH_NO_SESSIONS"] = True

    return WsgiRunner(flask_app(configure), COOKIE, env, primed=True)


def flask_cookie(env: Env) -> Runner:
    """Flask's own signed-cookie sessions (itsdangerous)."""

    def configure(app: Any) -> None:
        app.config["SECRET_KEY"] = SECRET
        app.config["SESSION_COOKIE_NAME"] = COOKIE

    return WsgiRunner(flask_app(configure), COOKIE, env)


# -- the table --------------------------------------------------------------------------------------

#: Floors: read = GETEX, write = GET + SET.
FLOOR = "redis-py asyncio floor"
SYNC_FLOOR = "redis-py sync floor"
#: websession redis with OpenTelemetry recording every operation, compared with it off.
TRACED = "websession redis, telemetry on"
_FLOOR = {"read": FLOOR, "write": FLOOR}
_SYNC_FLOOR = {"read": SYNC_FLOOR, "write": SYNC_FLOOR}

CONTENDERS: list[Contender] = [
    # In groups: each websession row runs right after what it is compared with.
    Contender(FLOOR, "floor", AsyncFloor, ("redis",)),
    Contender("starsessions (redis)", "anchor", starsessions_redis, ("starsessions", "redis")),
    Contender(
        "websession redis",
        "websession",
        websession_asgi("redis"),
        ("redis", "websession.stores.redis"),
        {"read": "starsessions (redis)", "write": "starsessions (redis)"},
    ),
    Contender(
        TRACED,
        "websession",
        websession_asgi_traced("redis"),
        ("redis", "websession.stores.redis", "opentelemetry.sdk"),
        {"read": "websession redis", "write": "websession redis"},
    ),
    Contender(
        "websession redis, signed in",
        "websession",
        websession_asgi_signed_in("redis"),
        ("redis", "websession.stores.redis"),
        {"read": "websession redis", "write": "websession redis"},
    ),
    Contender(
        "websession redis hash",
        "websession",
        websession_asgi("redis-hash"),
        ("redis", "websession.stores.redis"),
        {"read": "starsessions (redis)", "write": "starsessions (redis)"},
    ),
    Contender("aiohttp-session (redis)", "anchor", lambda env: AiohttpRunner(env), ("aiohttp_session",)),
    Contender(
        "websession memcache", "websession", websession_asgi("memcache"), ("websession.stores.memcache",)
    ),
    Contender(SYNC_FLOOR, "floor", SyncFloor, ("redis",)),
    Contender("Flask-Session (redis)", "anchor", flask_session_redis, ("flask_session",)),
    Contender(
        "websession Flask redis",
        "websession",
        websession_flask("redis"),
        ("flask", "websession.stores.redis"),
        {"read": "Flask-Session (redis)", "write": "Flask-Session (redis)"},
    ),
    Contender("Flask, no sessions", "baseline", flask_plain, ("flask",)),
    Contender("Flask cookie session", "anchor", flask_cookie, ("flask",)),
    Contender("websession Flask memory", "websession", websession_flask("memory"), ("flask",)),
    Contender(
        "Starlette SessionMiddleware (cookie)", "anchor", starlette_cookie, ("starlette", "itsdangerous")
    ),
    Contender(
        "websession cookie",
        "websession",
        websession_asgi("cookie"),
        (),
        {"read": "Starlette SessionMiddleware (cookie)", "write": "Starlette SessionMiddleware (cookie)"},
    ),
    Contender(
        "websession cookie, rolling=False",
        "websession",
        websession_asgi("cookie-fixed"),
        (),
        {"read": "Starlette SessionMiddleware (cookie)", "write": "Starlette SessionMiddleware (cookie)"},
    ),
    Contender("ASGI app, no sessions", "baseline", bare_asgi),
    Contender("websession memory", "websession", websession_asgi("memory")),
    Contender("websession file", "websession", websession_asgi("file")),
    Contender("websession sqlite", "websession", websession_asgi("sqlite")),
]

#: Extra comparisons shown beside the main anchor: (contender, workload) -> reference.
FLOORS = {
    "starsessions (redis)": _FLOOR,
    "aiohttp-session (redis)": _FLOOR,
    "Flask-Session (redis)": _SYNC_FLOOR,
    "websession redis": _FLOOR,
    "websession redis, signed in": _FLOOR,
    "websession redis hash": _FLOOR,
    TRACED: _FLOOR,
    "websession Flask redis": _SYNC_FLOOR,
}
