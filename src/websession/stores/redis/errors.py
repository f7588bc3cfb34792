"""How redis-py's exceptions become websession's.

Redis says "try elsewhere or later" in several ways: a refused or reset connection, a
timeout, a cluster that is down or resharding (``CLUSTERDOWN``, ``TRYAGAIN``), a primary that a
failover just turned into a replica (``READONLY``), a server still loading its data. Those
raise :class:`~websession.errors.StoreUnavailableError`, which the integrations answer with
503; any other redis-py error is a :class:`~websession.errors.SessionStoreError`. The cause is
kept, and the message names the store operation that failed.

What Redis does not tell: whether a command that timed out or lost its connection ran. Every
command websession sends is safe to repeat (a read, a compare-and-set, a conditional create),
so a retry or the user's next request finds the truth in the store.

Example::

    >>> try:
    ...     with during("read"):
    ...         raise redis.exceptions.ConnectionError("refused")
    ... except StoreUnavailableError as error:
    ...     print(error)
    redis store unavailable during read: refused
"""

from __future__ import annotations

import redis.exceptions

from ...errors import SessionStoreError, StoreUnavailableError
from ..base import ErrorRules, translate_errors

UNAVAILABLE = (
    redis.exceptions.ConnectionError,  # refused, reset, closed by a restart, loading
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,  # a failover made our node a replica
    redis.exceptions.RedisClusterException,  # no reachable node, slots not covered
)

#: Every exception redis-py raises (its cluster errors are not all RedisErrors).
FAILURES = (*UNAVAILABLE, redis.exceptions.RedisError)


def unavailable(error: BaseException, operation: str) -> StoreUnavailableError:
    return StoreUnavailableError(f"redis store unavailable during {operation}: {error}")


def _failed(error: BaseException, operation: str) -> SessionStoreError:
    return SessionStoreError(f"redis store failed during {operation}: {error}")


#: ``where`` is the store operation ("read", "create_for_user", "connect", ...).
REDIS_ERRORS: ErrorRules = (
    (UNAVAILABLE, unavailable),
    (redis.exceptions.RedisError, _failed),
)

_DURING: dict[str, translate_errors] = {}


def during(operation: str) -> translate_errors:
    """The error translation around one ``operation``: made once per name and shared, since
    it holds no state (the hot path allocates nothing for it)."""
    found = _DURING.get(operation)
    if found is None:
        found = _DURING[operation] = translate_errors(REDIS_ERRORS, operation)
    return found


__all__ = ["FAILURES", "REDIS_ERRORS", "UNAVAILABLE", "during", "unavailable"]
