"""Store logic written once for both doors: a generator yields I/O requests, a driver runs them.

A store whose sync and async clients speak the same protocol (a REST command, a memcached
operation) writes each operation as a generator: it ``yield``\\ s a request, receives the
reply, and ``return``\\ s the result. An exception raised while serving a request is thrown
into the generator at its ``yield``, so retry and fallback logic (NOSCRIPT, compare-and-set
mismatches) lives in one place. :func:`run_steps` drives a generator with a blocking call,
:func:`arun_steps` with an awaitable one.

Example::

    >>> def double_then_add(x):
    ...     doubled = yield ("double", x)
    ...     return (yield ("add", doubled))
    >>> calls = {"double": lambda v: v * 2, "add": lambda v: v + 1}
    >>> run_steps(double_then_add(5), lambda request: calls[request[0]](request[1]))
    11
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")  # a request the generator yields
T = TypeVar("T")  # what the generator returns

#: An operation written once: yields requests, receives replies, returns a result.
Steps = Generator[R, Any, T]


def run_steps(steps: Generator[R, Any, T], call: Callable[[R], Any]) -> T:
    """Run ``steps`` to completion, serving each request with ``call``.

    Example::

        >>> def one():
        ...     return (yield "ping")
        >>> run_steps(one(), lambda request: request.upper())
        'PING'
    """
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            request = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            reply, error = call(request), None
        except Exception as exc:  # handed to the generator, which re-raises what it cannot handle
            reply, error = None, exc


async def arun_steps(steps: Generator[R, Any, T], call: Callable[[R], Awaitable[Any]]) -> T:
    """Async twin of :func:`run_steps`: ``call`` returns an awaitable.

    Example::

        >>> import asyncio
        >>> def one():
        ...     return (yield 20)
        >>> async def plus_one(value):
        ...     return value + 1
        >>> asyncio.run(arun_steps(one(), plus_one))
        21
    """
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            request = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            reply, error = await call(request), None
        except Exception as exc:
            reply, error = None, exc


class RoundTrips:
    """How many requests one store operation sent: what telemetry reports as round trips.

    Example::

        >>> trips = RoundTrips()
        >>> trips.count
        0
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def counting(steps: Generator[R, Any, T], trips: RoundTrips) -> Generator[R, Any, T]:
    """``steps``, adding one to ``trips`` for every request it yields (retries included).

    A wrapper rather than a counter in the drivers, so that operations nobody counts run
    exactly as before. Replies and errors are passed through unchanged.

    Example::

        >>> def two():
        ...     first = yield "a"
        ...     return first + (yield "b")
        >>> trips = RoundTrips()
        >>> run_steps(counting(two(), trips), str.upper), trips.count
        ('AB', 2)
    """
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        trips.count += 1
        try:
            reply, error = (yield request), None
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:  # thrown in by a driver: the wrapped steps decide
            reply, error = None, exc


__all__ = ["RoundTrips", "Steps", "arun_steps", "counting", "run_steps"]
