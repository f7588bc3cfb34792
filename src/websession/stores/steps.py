"""Store logic written once for both doors: a generator yields I/O requests, a driver runs them.

A store whose sync and async clients speak the same protocol (a REST command, a memcached
operation) writes each operation as a generator: it ``yield``\\ s a request, receives the
reply, and ``return``\\ s the result. An exception raised while serving a request is thrown
into the generator at its ``yield``, so retry and fallback logic (NOSCRIPT, compare-and-set
mismatches) lives in one place. :func:`run_steps` drives a generator with a blocking call,
:func:`arun_steps` with an awaitable one. :class:`UserIndexDoors` gives a store its user-index
methods, both doors, from one plan each.

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


def _doors(operation: str, plan: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The sync and async methods named ``operation`` that drive ``self._users.<plan>``."""

    def sync(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run(getattr(self._users, plan)(*args, **kwargs), operation)

    async def asynchronous(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._arun(getattr(self._users, plan)(*args, **kwargs), operation)

    for method, name in ((sync, operation), (asynchronous, "a" + operation)):
        method.__name__ = name
        method.__qualname__ = f"UserIndexDoors.{name}"
        method.__doc__ = f"Store.{operation}, driven by the store's ``_users.{plan}`` plan."
    return sync, asynchronous


class UserIndexDoors:
    """Mixin: a store's user-index methods (``create_for_user``, ``take_for_user``,
    ``sessions_of``, ``revoke``, ``revoke_user``, ``generation``) and their ``a*`` twins,
    each written once from a plan.

    The store gives ``_users``, whose methods ``create``, ``take``, ``sessions``, ``revoke``,
    ``revoke_user`` and ``generation`` take the store method's arguments and return its steps
    (:class:`websession.stores.redis_users.UserIndex` is one), and ``_run(steps, operation)``
    / ``_arun(steps, operation)``, which drive steps on the sync and the async door
    (``operation`` names the method, for errors). List it before the store's base class.

    Example::

        >>> class Plans:
        ...     def generation(self, user, *, bump=False):
        ...         return (yield ("HGET", user)) + bump
        >>> class Store(UserIndexDoors):
        ...     _users = Plans()
        ...     def _run(self, steps, operation):
        ...         return run_steps(steps, lambda request: 41)
        >>> Store().generation("ada", bump=True)
        42
    """

    create_for_user, acreate_for_user = _doors("create_for_user", "create")
    take_for_user, atake_for_user = _doors("take_for_user", "take")
    sessions_of, asessions_of = _doors("sessions_of", "sessions")
    revoke, arevoke = _doors("revoke", "revoke")
    revoke_user, arevoke_user = _doors("revoke_user", "revoke_user")
    generation, ageneration = _doors("generation", "generation")


__all__ = ["RoundTrips", "Steps", "UserIndexDoors", "arun_steps", "counting", "run_steps"]
