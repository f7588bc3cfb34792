"""Operations of several requests, written once for both doors: a plan yields
:class:`_Call` and :class:`_Pause` (websession.stores.steps), and :func:`run_plan` (boto3) or
:func:`arun_plan` (aiobotocore) serves them.

What DynamoDB guarantees: each request is atomic on its one item, and a TransactWriteItems (up
to 100 actions, at most one per item) is atomic across items. What it does not: keep items in
step across two requests, so a plan orders its requests such that a failure between any two
leaves nothing unsafe behind; make a batch atomic (BatchGetItem reads 100 keys and
BatchWriteItem writes 25 items, each one on its own) or complete (a throttled batch hands back
what it left unprocessed); or wait for a transaction in flight on an item (the request fails,
and the plan pauses with jitter and sends it again). Reads in plans are strongly consistent, so
each step sees the ones before it; an item past its TTL may still be read (deletion comes
within about 48 hours), so plans judge sessions by their expiry; and no item, a user's index
included, may grow past 400 KB.

Example::

    >>> from contextlib import nullcontext
    >>> class Client:
    ...     def get_item(self, **kwargs):
    ...         return {"Item": kwargs["Key"]}
    >>> def plan():
    ...     reply = yield _Call("get_item", {"Key": {"_idx": {"S": "a"}}})
    ...     yield _Pause(0)
    ...     return reply["Item"]
    >>> run_plan(Client(), nullcontext(), plan())
    {'_idx': {'S': 'a'}}
"""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from ...errors import StoreUnavailableError
from ..steps import Steps, arun_steps, run_steps

#: BatchWriteItem's limit of items per request, and how many times unprocessed items are sent.
BATCH_WRITE_ITEMS = 25
BATCH_WRITE_ATTEMPTS = 8
#: BatchGetItem's limit of keys per request.
BATCH_GET_ITEMS = 100

T = TypeVar("T")


@dataclass(frozen=True)
class _Call:
    """One request of the client: ``client.<operation>(**kwargs)``."""

    operation: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Pause:
    """Wait before trying again (time.sleep or asyncio.sleep, by door)."""

    seconds: float


_Request = Union[_Call, _Pause]  # noqa: UP007 - a runtime alias on 3.10


def _backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1`` on a busy user item, with jitter so that
    requests that conflicted once do not meet again."""
    return min(1.0, 0.02 * 2.0**attempt) * random.uniform(0.5, 1.0)


def busy_pause(attempt: int) -> _Pause:
    """The wait before sending again a request that met a transaction in flight."""
    return _Pause(_backoff(attempt))


def throttled_pause(attempt: int) -> _Pause:
    """The wait before sending again what a throttled batch left unprocessed."""
    return _Pause(min(2.0, 0.05 * 2**attempt))


def run_plan(client: Any, errors: AbstractContextManager[Any], plan: Steps[_Request, T]) -> T:
    """Run ``plan`` with a boto3 client, each call inside ``errors`` (translate_errors)."""

    def call(request: _Request) -> Any:
        if isinstance(request, _Pause):
            time.sleep(request.seconds)
            return None
        with errors:
            return getattr(client, request.operation)(**request.kwargs)

    return run_steps(plan, call)


async def arun_plan(client: Any, errors: AbstractContextManager[Any], plan: Steps[_Request, T]) -> T:
    """Async twin of :func:`run_plan`, for an aiobotocore client."""

    async def call(request: _Request) -> Any:
        if isinstance(request, _Pause):
            await asyncio.sleep(request.seconds)
            return None
        with errors:
            return await getattr(client, request.operation)(**request.kwargs)

    return await arun_steps(plan, call)


def batch_steps(
    where: str,
    table: str,
    operation: str,
    requests: dict[str, Any],
    unprocessed: str,
    *,
    left: str = "unprocessed",
    solution: str | None = None,
) -> Steps[_Request, list[dict[str, Any]]]:
    """A BatchGetItem or BatchWriteItem (``operation``) on ``table``, sending what DynamoDB
    left ``unprocessed`` (throttled) again with backoff; returns the items read.

    After :data:`BATCH_WRITE_ATTEMPTS` tries it raises StoreUnavailableError, saying the items
    were ``left`` so, with ``solution``."""
    found: list[dict[str, Any]] = []
    for attempt in range(BATCH_WRITE_ATTEMPTS):
        reply = yield _Call(operation, {"RequestItems": requests})
        found.extend(reply.get("Responses", {}).get(table, []))
        requests = reply.get(unprocessed) or {}
        if not requests:
            return found
        yield throttled_pause(attempt)
    raise StoreUnavailableError(
        f"{where} left items {left} after {BATCH_WRITE_ATTEMPTS} tries (throttled)", solution=solution
    )


__all__ = [
    "BATCH_GET_ITEMS",
    "BATCH_WRITE_ATTEMPTS",
    "BATCH_WRITE_ITEMS",
    "arun_plan",
    "batch_steps",
    "busy_pause",
    "run_plan",
    "throttled_pause",
]
