"""OpenTelemetry for session stores: a span per store operation, and metrics.

``instrument(storage)`` puts an instrumented proxy in front of the storage's store. From then
on each create, read, update, delete and take, through either door, is a span named after
the operation (``websession.read``, ...) following OpenTelemetry's semantic conventions for
database clients, and is measured in ``db.client.operation.duration``; reads count hits and
misses, creates count fresh sessions, and every 503 an integration answers because the store
is down is counted too. See docs/telemetry.md for every attribute and metric.

Nothing here imports OpenTelemetry until ``instrument()`` is called, and a storage that is not
instrumented runs exactly the code it ran before: telemetry costs nothing until it is turned
on. It needs the ``websession[otel]`` extra (``opentelemetry-api``); spans and metrics go
wherever the OpenTelemetry SDK the application configured sends them.

Example::

    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> from websession import create_cookie, create_memory_session_storage
    >>> exporter = InMemorySpanExporter()
    >>> tracing = TracerProvider()
    >>> tracing.add_span_processor(SimpleSpanProcessor(exporter))
    >>> cookie = create_cookie("__session", secrets=["s3cret"])
    >>> storage = instrument(create_memory_session_storage(cookie=cookie), tracer_provider=tracing)
    >>> session = storage.get_session(None)
    >>> session["user"] = 7
    >>> _ = storage.commit_session(session)
    >>> [(span.name, span.attributes["websession.outcome"]) for span in exporter.get_finished_spans()]
    [('websession.create', 'created')]
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .storage import CookieSessionStorage, SessionStorage
from .stores.base import Store

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

StorageT = TypeVar("StorageT", SessionStorage, CookieSessionStorage)

#: ``db.system.name`` by store kind: the conventions' well-known values where one applies,
#: else the product's name in lowercase; websession's own in-process stores are ``websession.*``.
SYSTEMS: dict[str, str] = {
    "redis": "redis",
    "upstash": "redis",  # Upstash speaks Redis's commands over HTTP
    "memcache": "memcached",
    "postgres": "postgresql",
    "sqlite": "sqlite",
    "dynamodb": "aws.dynamodb",
    "workers-kv": "cloudflare.workers_kv",
    "memory": "websession.memory",
    "file": "websession.file",
    "custom": "websession.custom",
}

#: What each kind of store can say about where it keeps sessions, as span attributes.
DESCRIBERS: dict[str, Callable[[Any], dict[str, Any]]] = {}

_lock = threading.Lock()
#: One 503 counter per meter provider (None: the global one), shared by the storages using it.
_unavailable: dict[object, Any] = {}


def instrument(
    storage: StorageT,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    system: str | None = None,
) -> StorageT:
    """Trace and measure every operation of ``storage``'s store; return ``storage``.

    Spans and metrics go to the given providers, or to OpenTelemetry's global ones (set by the
    application, or by ``opentelemetry-instrument``). ``system`` overrides ``db.system.name``,
    for a store of your own (``create_session_storage``, a ``Store`` subclass) whose database
    websession cannot know. Instrumenting an instrumented storage changes nothing (one span
    per operation, still); :func:`uninstrument` undoes it. A cookie storage has no store
    operations to trace (nor outages to count) and is returned as it is.

    Raises :class:`~websession.errors.ConfigurationError` when ``opentelemetry-api`` is not
    installed. Example::

        >>> from websession import create_cookie, create_memory_session_storage
        >>> storage = instrument(create_memory_session_storage(cookie=create_cookie("s", secrets=["k"])))
        >>> type(storage.store).__name__, is_instrumented(storage)
        ('InstrumentedStore', True)
        >>> instrument(storage) is storage, type(storage.store.wrapped).__name__
        (True, 'MemoryStore')
    """
    if isinstance(storage, CookieSessionStorage):
        return storage  # the data travels in the cookie: no store to trace
    if not isinstance(storage, SessionStorage):
        raise TypeError(f"instrument() takes a session storage, not {type(storage).__name__}")
    _telemetry = _load()
    with _lock:
        if isinstance(storage.store, _telemetry.InstrumentedStore):
            return storage
        counter = _unavailable.get(meter_provider)
        if counter is None:
            counter = _unavailable[meter_provider] = _telemetry.UnavailableCounter(meter_provider)
            _listeners().append(counter)
        counter.users += 1
        instruments = _telemetry.Instruments.of(tracer_provider, meter_provider)
        description = describe(storage.store, system)
        storage.store = _telemetry.InstrumentedStore(storage.store, instruments, description, counter)
    return storage


def uninstrument(storage: StorageT) -> StorageT:
    """Put the store :func:`instrument` wrapped back in place; return ``storage``.

    Example::

        >>> from websession import create_cookie, create_memory_session_storage
        >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> storage = uninstrument(instrument(storage))
        >>> type(storage.store).__name__, is_instrumented(storage)
        ('MemoryStore', False)
    """
    if not is_instrumented(storage):
        return storage
    assert isinstance(storage, SessionStorage)
    with _lock:
        proxy: Any = storage.store
        storage.store = proxy.wrapped
        counter = proxy.unavailable
        counter.users -= 1
        if counter.users == 0:  # no instrumented storage left on its meter provider
            _listeners().remove(counter)
            for key, value in list(_unavailable.items()):
                if value is counter:
                    del _unavailable[key]
    return storage


def is_instrumented(storage: SessionStorage | CookieSessionStorage) -> bool:
    """Whether :func:`instrument` wraps ``storage``'s store (imports no OpenTelemetry).

    Example::

        >>> from websession import create_cookie, create_memory_session_storage
        >>> is_instrumented(create_memory_session_storage(cookie=create_cookie("s", secrets=["k"])))
        False
    """
    loaded = sys.modules.get("websession._telemetry")  # never loaded: nothing is instrumented
    return loaded is not None and isinstance(getattr(storage, "store", None), loaded.InstrumentedStore)


def describe(store: Store, system: str | None = None) -> dict[str, Any]:
    """The attributes every span of ``store`` carries: ``db.system.name`` and, where the store
    knows them, ``db.namespace``, ``db.collection.name``, ``server.address`` and
    ``server.port``. Credentials never appear. A store of a kind websession does not know
    reports its ``kind`` as the system, unless ``system`` names it.

    Example::

        >>> from websession.stores.memory import MemoryStore
        >>> describe(MemoryStore()), describe(MemoryStore(), "mydb")
        ({'db.system.name': 'websession.memory'}, {'db.system.name': 'mydb'})
    """
    described: dict[str, Any] = {"db.system.name": system or SYSTEMS.get(store.kind, store.kind)}
    describer = DESCRIBERS.get(store.kind)
    if describer is not None:
        try:
            found = describer(store)
        except Exception:  # an odd URL or client: spans go without the address, not the app
            found = {}
        described.update({key: value for key, value in found.items() if value not in (None, "")})
    return described


def _load() -> Any:
    try:
        from . import _telemetry
    except ImportError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise ConfigurationError(
            "websession's telemetry needs OpenTelemetry's API, which is not installed",
            solution="pip install 'websession[otel]'",
        ) from exc
    return _telemetry


def _listeners() -> list[Any]:
    from .integrations._shared import unavailable_listeners

    return unavailable_listeners


# -- what each store says about itself -------------------------------------------------------


def _describes(kind: str) -> Callable[[Callable[[Any], dict[str, Any]]], Callable[[Any], dict[str, Any]]]:
    def register(describer: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        DESCRIBERS[kind] = describer
        return describer

    return register


def _server(url: str, default_port: int | None) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of a URL (never its user or password)."""
    parts = urlsplit(url)
    return {"server.address": parts.hostname, "server.port": parts.port or default_port}


@_describes("redis")
def _redis(store: Any) -> dict[str, Any]:
    if store.url is not None:
        from .stores.redis import redis_url

        url, cluster = redis_url(store.url)
        if cluster:  # the URL names one node of many: no single server to name
            return {}
        found = _server(url, 6379)
        index = urlsplit(url).path.strip("/")
        found["db.namespace"] = index if index.isdigit() else "0"
        return found
    client = store._given_sync if store._given_sync is not None else store._given_async
    pool = getattr(client, "connection_pool", None)
    options = getattr(pool, "connection_kwargs", None) or {}
    if "host" not in options:  # a cluster or Sentinel client: no single address to name
        return {}
    return {
        "server.address": options["host"],
        "server.port": options.get("port", 6379),
        "db.namespace": str(options.get("db", 0)),
    }


@_describes("upstash")
def _upstash(store: Any) -> dict[str, Any]:
    url = getattr(store.transport, "url", None)
    return _server(url, 443) if isinstance(url, str) else {}


@_describes("workers-kv")
def _workers_kv(store: Any) -> dict[str, Any]:
    return _server(store.base_url, 443)


@_describes("memcache")
def _memcache(store: Any) -> dict[str, Any]:
    if len(store.servers) != 1:  # sessions spread over several servers: none is "the" server
        return {}
    server = store.servers[0]
    return {"server.address": server.host, "server.port": server.port}


@_describes("postgres")
def _postgres(store: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"db.collection.name": store.table}
    if store.dsn:
        from psycopg.conninfo import conninfo_to_dict

        options = conninfo_to_dict(store.dsn)
        found["db.namespace"] = options.get("dbname")
        host = options.get("host")
        if host and "," not in str(host):
            found["server.address"] = str(host)
            found["server.port"] = int(options.get("port") or 5432)
    return found


@_describes("sqlite")
def _sqlite(store: Any) -> dict[str, Any]:
    return {"db.collection.name": store.table}


@_describes("dynamodb")
def _dynamodb(store: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"db.collection.name": store.table}
    if store.endpoint_url:
        found.update(_server(store.endpoint_url, None))
    return found


__all__ = ["SYSTEMS", "describe", "instrument", "is_instrumented", "uninstrument"]
