"""The OpenTelemetry side of :mod:`websession.telemetry`: imported by ``instrument()`` only.

:class:`InstrumentedStore` stands in front of a storage's store. Each of the five request
operations, through either door, becomes a span and a duration measurement, following
OpenTelemetry's semantic conventions for database clients; everything else goes straight to
the wrapped store. Telemetry never changes what a request sees: a failure inside OpenTelemetry
(a span processor that raises) is logged once and the operation goes on without it, and an
exception from the store goes up unchanged after it is recorded.

Example::

    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from websession.stores.memory import MemoryStore
    >>> store = InstrumentedStore(MemoryStore(), Instruments.of(TracerProvider(), None), {})
    >>> store.read(store.create({"n": 1}, None), None).data
    {'n': 1}
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from time import perf_counter
from typing import Any

from opentelemetry import context, metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .errors import SessionStoreError, StoreUnavailableError
from .stores.base import Record, Store
from .stores.steps import RoundTrips

logger = logging.getLogger("websession")

#: The instrumentation scope of every tracer and meter.
SCOPE = "websession"
#: The bucket boundaries the conventions give ``db.client.operation.duration`` (seconds).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
#: What ``websession.outcome`` says when an operation found nothing to act on.
GONE = "gone"

Attributes = Mapping[str, Any]


def _version() -> str:
    from . import __version__

    return __version__


@dataclass(frozen=True)
class Instruments:
    """The tracer and the metric instruments one ``instrument()`` call records with."""

    tracer: trace.Tracer
    duration: metrics.Histogram
    hits: metrics.Counter
    misses: metrics.Counter
    fresh: metrics.Counter

    @classmethod
    def of(
        cls, tracer_provider: trace.TracerProvider | None, meter_provider: metrics.MeterProvider | None
    ) -> Instruments:
        """Instruments from the given providers, or from the global ones when None."""
        tracer = trace.get_tracer(SCOPE, _version(), tracer_provider)
        meter = _meter(meter_provider)
        return cls(
            tracer=tracer,
            duration=meter.create_histogram(
                "db.client.operation.duration",
                unit="s",
                description="Duration of session store operations.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            ),
            hits=meter.create_counter(
                "websession.session.hits", unit="{session}", description="Reads that found a live session."
            ),
            misses=meter.create_counter(
                "websession.session.misses",
                unit="{session}",
                description="Reads of a session id the store no longer holds.",
            ),
            fresh=meter.create_counter(
                "websession.session.fresh",
                unit="{session}",
                description="Sessions created (a regenerated session is created anew too).",
            ),
        )


def _meter(meter_provider: metrics.MeterProvider | None) -> metrics.Meter:
    return metrics.get_meter(SCOPE, _version(), meter_provider)


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: the full name of what the store's client raised.

    websession wraps client errors in its own (``StoreUnavailableError`` from a redis-py
    ``ConnectionError``); the conventions prefer the original, so the cause is named when
    there is one.

    Example::

        >>> try:
        ...     try:
        ...         raise ConnectionRefusedError("no")
        ...     except OSError as cause:
        ...         raise StoreUnavailableError("down") from cause
        ... except StoreUnavailableError as exc:
        ...     error_type(exc)
        'ConnectionRefusedError'
        >>> error_type(TimeoutError())
        'TimeoutError'
    """
    cause = exc.__cause__ if isinstance(exc, SessionStoreError) and exc.__cause__ is not None else exc
    kind = type(cause)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


@dataclass(frozen=True)
class _Operation:
    """One store operation as telemetry names it, with what is known before it runs."""

    name: str  # the Store method: "read"
    span_name: str
    attributes: dict[str, Any]  # span start attributes, also the duration's attributes
    outcome: Callable[[Any], str]


_OUTCOMES: dict[str, Callable[[Any], str]] = {
    "read": lambda record: "hit" if record is not None else "miss",
    "create": lambda _id: "created",
    "update": lambda record: "updated" if record is not None else GONE,
    "delete": lambda _none: "deleted",
    "take": lambda record: "taken" if record is not None else GONE,
    "create_for_user": lambda id: "created" if id is not None else "refused",
    "take_for_user": lambda taken: "taken" if taken.record is not None else GONE,
    "sessions_of": lambda _devices: "listed",
    "revoke": lambda deleted: "revoked" if deleted else GONE,
    "revoke_user": lambda _count: "revoked",
}


def _operations(description: Attributes) -> dict[str, _Operation]:
    target = _target(description)
    found = {}
    for name, outcome in _OUTCOMES.items():
        operation_name = f"websession.{name}"
        attributes = {**description, "db.operation.name": operation_name}
        span_name = f"{operation_name} {target}" if target else operation_name
        found[name] = _Operation(name, span_name, attributes, outcome)
    return found


def _target(description: Attributes) -> str | None:
    """The ``{target}`` of a span name: collection, else namespace, else address:port."""
    if "db.collection.name" in description:
        return str(description["db.collection.name"])
    # Redis's convention leaves its numeric namespace out of span names.
    if "db.namespace" in description and description.get("db.system.name") != "redis":
        return str(description["db.namespace"])
    if "server.address" in description:
        port = description.get("server.port")
        return f"{description['server.address']}:{port}" if port else str(description["server.address"])
    return None


class _Probe:
    """One operation in flight: its span, the context it made current, when it started."""

    __slots__ = ("span", "started", "token", "trips")

    def __init__(self, trips: RoundTrips | None) -> None:
        self.span: trace.Span | None = None
        self.token: object = None
        self.trips = trips
        self.started = 0.0


#: Class attributes a proxy copies from the store it wraps, so storages and integrations that
#: read them (``native_ttl``, ``kind``) see the wrapped store's.
_COPIED = ("atomic_changes", "atomic_take", "native_ttl", "kind", "cheap_count", "user_index")
#: The operations whose round trips a store can count (Store.counted); the users' operations
#: (websession.users) are traced without a count.
_COUNTABLE = frozenset({"create", "read", "update", "delete", "take"})


#: What the proxy keeps for itself; anything else set on it goes to the wrapped store.
_PROXY_STATE = frozenset(
    {
        "wrapped",
        "instruments",
        "unavailable",
        "description",
        "_operations",
        "_counter_attributes",
        "_span_kind",
        "_counts",
        "_warned",
        *_COPIED,
    }
)


def _traced(name: str) -> tuple[Any, Any]:
    """The traced sync and async methods of the Store operation ``name`` (``read``, ``aread``).

    Their signatures are Store's: ``inspect.signature`` and ``help()`` show Store's parameters,
    and arguments may be passed by name (``store.read(id, touch=None)``) as Store allows.
    Keywords are bound to positions before the call, since ``counted()`` takes positions only;
    a call without keywords, the one every request makes, binds nothing."""
    sync_signature = inspect.signature(getattr(Store, name))
    async_signature = inspect.signature(getattr(Store, "a" + name))

    def operation(self: InstrumentedStore, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            args = _positional(sync_signature, name, self, args, kwargs)
        return self._run(self._operations[name], args)

    async def aoperation(self: InstrumentedStore, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            args = _positional(async_signature, "a" + name, self, args, kwargs)
        return await self._arun(self._operations[name], args)

    for method, method_name, signature in (
        (operation, name, sync_signature),
        (aoperation, "a" + name, async_signature),
    ):
        method.__name__ = method_name
        method.__qualname__ = f"InstrumentedStore.{method_name}"
        method.__doc__ = f"Store.{method_name}, traced."
        method.__signature__ = signature  # type: ignore[union-attr]
    return operation, aoperation


def _positional(
    signature: inspect.Signature,
    method_name: str,
    store: Store,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, ...]:
    """``args`` and ``kwargs`` as the positional arguments of the Store method, in its order.

    Example::

        >>> from websession.stores.memory import MemoryStore
        >>> signature = inspect.signature(Store.read)
        >>> _positional(signature, "read", MemoryStore(), ("x",), {"touch": None})
        ('x', None)
        >>> _positional(signature, "read", MemoryStore(), ("x", None), {"touched": True})
        Traceback (most recent call last):
        TypeError: read() got an unexpected keyword argument 'touched'
    """
    try:
        bound = signature.bind(store, *args, **kwargs)
    except TypeError as exc:  # worded as Python words it, naming the method
        raise TypeError(f"{method_name}() {exc}") from None
    bound.apply_defaults()
    return bound.args[1:]


def _read_through(name: str, *, settable: bool = True) -> Any:
    """A setting of the wrapped store as a property of the proxy; ``attrgetter`` reads it
    without a Python frame of its own."""

    def set_through(self: InstrumentedStore, value: Any) -> None:
        setattr(self.wrapped, name, value)

    return property(attrgetter(f"wrapped.{name}"), set_through if settable else None)


class InstrumentedStore(Store):
    """``wrapped``, with a span and a duration for each create, read, update, delete and take.

    ``description`` holds the attributes every operation carries (``db.system.name``,
    ``server.address``, ...). Maintenance (scan, count, purge, ...) and settings go straight
    to the wrapped store, untraced; so do attributes only the wrapped store has (``prefix``).
    """

    def __init__(
        self,
        wrapped: Store,
        instruments: Instruments,
        description: Attributes,
        unavailable: UnavailableCounter | None = None,
    ) -> None:
        # Store.__init__ is not called: every setting is the wrapped store's, read through.
        self.wrapped = wrapped
        self.instruments = instruments
        #: The 503 counter this proxy keeps listening (websession.telemetry's bookkeeping).
        self.unavailable = unavailable
        self.description = dict(description)
        # Instance values shadow the base class's defaults for these class-level flags.
        vars(self).update({name: getattr(wrapped, name) for name in _COPIED})
        self._operations = _operations(self.description)
        system = self.description.get("db.system.name")
        self._counter_attributes = {} if system is None else {"db.system.name": system}
        # In-memory calls MAY be INTERNAL, says the convention; everything else is a client.
        self._span_kind = SpanKind.INTERNAL if wrapped.kind == "memory" else SpanKind.CLIENT
        self._counts = wrapped.counts_round_trips
        self._warned = False

    def __repr__(self) -> str:
        return f"InstrumentedStore({self.wrapped!r})"

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks: what the wrapped store's own class adds.
        if name == "wrapped":  # not set yet (copy, pickle): never recurse
            raise AttributeError(name)
        return getattr(self.wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # The proxy's own state and what its class defines (methods a test may wrap, the
        # properties that read through) stay here; every other setting (max_user_sessions,
        # prefix, a subclass's own) is the wrapped store's, as reads of it are.
        if name in _PROXY_STATE or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:
            setattr(self.wrapped, name, value)

    # -- settings, read through ------------------------------------------------------------

    default_ttl = _read_through("default_ttl")
    explicit_ttl = _read_through("explicit_ttl")
    clock = _read_through("clock")
    hashes_ids = _read_through("hashes_ids", settable=False)

    # -- the operations of both doors, traced (a span, a duration, round trips) -------------

    create, acreate = _traced("create")
    read, aread = _traced("read")
    update, aupdate = _traced("update")
    delete, adelete = _traced("delete")
    take, atake = _traced("take")
    # The users and their devices (websession.users).
    create_for_user, acreate_for_user = _traced("create_for_user")
    take_for_user, atake_for_user = _traced("take_for_user")
    sessions_of, asessions_of = _traced("sessions_of")
    revoke, arevoke = _traced("revoke")
    revoke_user, arevoke_user = _traced("revoke_user")

    # -- passed through untraced -------------------------------------------------------------
    #
    # Written out, not generated like the traced operations: is_valid_id, generation and
    # is_expired run on every request, and a generic forwarder would add a getattr and an
    # argument tuple to each call.

    def new_id(self) -> str:
        return self.wrapped.new_id()

    def is_valid_id(self, value: object) -> bool:
        return self.wrapped.is_valid_id(value)

    def storage_key(self, id: str) -> str:
        return self.wrapped.storage_key(id)

    def is_storage_key(self, value: object) -> bool:
        return self.wrapped.is_storage_key(value)

    def generation(self, user: str, *, bump: bool = False) -> int:
        return self.wrapped.generation(user, bump=bump)

    async def ageneration(self, user: str, *, bump: bool = False) -> int:
        return await self.wrapped.ageneration(user, bump=bump)

    def close(self) -> None:
        self.wrapped.close()

    async def aclose(self) -> None:
        await self.wrapped.aclose()

    def scan(self) -> Iterator[tuple[str, Record]]:
        return self.wrapped.scan()

    def count(self) -> int:
        return self.wrapped.count()

    def peek(self, id: str) -> Record | None:
        return self.wrapped.peek(id)

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        return self.wrapped.write(id, data, expires, replace=replace)

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        return self.wrapped.write_many(records, replace=replace)

    def purge_expired(self) -> int:
        return self.wrapped.purge_expired()

    def seconds_until(self, expires: datetime | None) -> int | None:
        return self.wrapped.seconds_until(expires)

    def is_expired(self, expires: datetime | None) -> bool:
        return self.wrapped.is_expired(expires)

    # -- the measuring -----------------------------------------------------------------------

    def _run(self, operation: _Operation, args: tuple[Any, ...]) -> Any:
        probe = self._begin(operation)
        try:
            if probe.trips is not None:
                result = self.wrapped.counted(probe.trips, operation.name, *args)
            else:
                result = getattr(self.wrapped, operation.name)(*args)
        except BaseException as exc:
            self._failed(operation, probe, exc)
            raise
        self._done(operation, probe, result)
        return result

    async def _arun(self, operation: _Operation, args: tuple[Any, ...]) -> Any:
        probe = self._begin(operation)
        try:
            if probe.trips is not None:
                result = await self.wrapped.acounted(probe.trips, operation.name, *args)
            else:
                result = await getattr(self.wrapped, "a" + operation.name)(*args)
        except BaseException as exc:
            self._failed(operation, probe, exc)
            raise
        self._done(operation, probe, result)
        return result

    def _begin(self, operation: _Operation) -> _Probe:
        probe = _Probe(RoundTrips() if self._counts and operation.name in _COUNTABLE else None)
        try:
            span = self.instruments.tracer.start_span(
                operation.span_name, kind=self._span_kind, attributes=operation.attributes
            )
            probe.span = span
            # Current while the store works, so spans of an instrumented client nest under it.
            probe.token = context.attach(trace.set_span_in_context(span))
        except Exception as exc:
            self._broken(exc)
        probe.started = perf_counter()
        return probe

    def _done(self, operation: _Operation, probe: _Probe, result: Any) -> None:
        elapsed = perf_counter() - probe.started
        outcome = operation.outcome(result)
        self._end_span(probe, {"websession.outcome": outcome}, None)
        try:
            instruments = self.instruments
            instruments.duration.record(elapsed, operation.attributes)
            if outcome == "hit":
                instruments.hits.add(1, self._counter_attributes)
            elif outcome == "miss":
                instruments.misses.add(1, self._counter_attributes)
            elif outcome == "created":
                instruments.fresh.add(1, self._counter_attributes)
        except Exception as exc:
            self._broken(exc)

    def _failed(self, operation: _Operation, probe: _Probe, exc: BaseException) -> None:
        elapsed = perf_counter() - probe.started
        try:
            kind = error_type(exc)
        except Exception as error:  # pragma: no cover - an exception class that hides its name
            self._broken(error)
            kind = "_OTHER"
        self._end_span(probe, {"error.type": kind}, exc)
        try:
            self.instruments.duration.record(elapsed, {**operation.attributes, "error.type": kind})
        except Exception as error:
            self._broken(error)

    def _end_span(self, probe: _Probe, attributes: dict[str, Any], exc: BaseException | None) -> None:
        span = probe.span
        if span is not None:
            try:
                if probe.trips is not None:
                    attributes["websession.round_trips"] = probe.trips.count
                span.set_attributes(attributes)
                if exc is not None:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                span.end()
            except Exception as error:
                self._broken(error)
        if probe.token is not None:
            try:
                context.detach(probe.token)  # type: ignore[arg-type]
            except Exception as error:  # pragma: no cover - detach logs its own failures
                self._broken(error)

    def _broken(self, exc: Exception) -> None:
        """OpenTelemetry itself failed: say so once, and let the request go on without it."""
        if not self._warned:
            self._warned = True
            logger.warning(
                "websession: telemetry for the %s store failed; requests go on without it "
                "where it fails (logged once)",
                self.wrapped.kind,
                exc_info=exc,
            )
        else:
            logger.debug("websession: telemetry failed again", exc_info=exc)


# -- 503s, counted where every integration reports them ---------------------------------------


class UnavailableCounter:
    """Counts the outages integrations answer (``websession.session.unavailable``) for one meter
    provider: a listener of :data:`websession.integrations._shared.unavailable_listeners`."""

    def __init__(self, meter_provider: metrics.MeterProvider | None) -> None:
        self.counter = _meter(meter_provider).create_counter(
            "websession.session.unavailable",
            unit="{response}",
            description="Responses an integration answered because the session store was unavailable.",
        )
        self.users = 0

    def __call__(self, exc: StoreUnavailableError, status: int) -> None:
        try:
            self.counter.add(1, {"error.type": error_type(exc), "http.response.status_code": status})
        except Exception:
            logger.debug("websession: could not count a store outage", exc_info=True)


__all__ = ["DURATION_BUCKETS", "InstrumentedStore", "Instruments", "UnavailableCounter", "error_type"]
