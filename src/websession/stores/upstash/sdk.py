"""Commands through an ``upstash_redis`` client you already have (``client=``), and how what
that SDK raises becomes websession's errors.

The SDK speaks the same REST protocol as :mod:`.rest`, so the same guarantees hold: one
command (or one ``EVAL``/``EVALSHA`` script) per request runs atomically; a pipeline runs in
order in one request but not atomically; the SDK (1.2 and later) sends back the sync token,
so this client reads its own writes even from a replica of a global database, while other
processes may briefly read an older copy. Requests are limited in size (1 MB on the free
plan).

What it does not do: serve both doors. ``upstash_redis.Redis`` is sync only and
``upstash_redis.asyncio.Redis`` async only, so the other door raises ConfigurationError. The
SDK decodes every reply as UTF-8 text; a record that is not UTF-8 fails to decode and is
treated as corrupt. A client you pass keeps its own settings (timeouts, retries) and stays
yours to close.

Example::

    >>> import upstash_redis
    >>> transport = SdkTransport(upstash_redis.Redis("https://eu1-example.upstash.io", "AX..."))
    >>> transport, transport.is_async
    (upstash_redis.client.Redis, False)
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from ... import codec
from ...errors import ConfigurationError, SessionStoreError, StoreUnavailableError
from ..base import ErrorRules, translate_errors
from .errors import REFUSED_SOLUTION, UpstashCommandError, transport_rules
from .rest import Command


class SdkTransport:
    """Commands through an ``upstash_redis`` client, which serves one door only.

    Replies come back as the REST transport gives them: strings as ``bytes`` (but ``"OK"``),
    integers as ``int``, nil as ``None``.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.is_async = _is_async_client(client)
        self._errors = translate_errors(_rules(), "Upstash")

    def __repr__(self) -> str:
        return f"{type(self.client).__module__}.{type(self.client).__name__}"

    def execute(self, command: Command) -> Any:
        self._door(async_door=False)
        with self._errors:
            return _from_sdk(self.client.execute(command))

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        self._door(async_door=False)
        batch = self.client.pipeline()
        for command in commands:
            batch.execute(command)
        with self._errors:
            return [_from_sdk(result) for result in batch.exec()]

    async def aexecute(self, command: Command) -> Any:
        self._door(async_door=True)
        with self._errors:
            return _from_sdk(await self.client.execute(command))

    def close(self) -> None:
        """The client belongs to the caller, who closes it."""

    async def aclose(self) -> None:
        """The client belongs to the caller, who closes it."""

    def _door(self, *, async_door: bool) -> None:
        if async_door and not self.is_async:
            raise ConfigurationError(
                "this Upstash storage was given a sync upstash_redis.Redis client, so only the sync "
                "door (get_session/commit_session/destroy_session) works",
                solution="pass an upstash_redis.asyncio.Redis client, or url= and token= for both doors",
            )
        if not async_door and self.is_async:
            raise ConfigurationError(
                "this Upstash storage was given an upstash_redis.asyncio.Redis client, so only the "
                "async door (aget_session/acommit_session/adestroy_session) works",
                solution="pass an upstash_redis.Redis client, or url= and token= for both doors",
            )


def _is_async_client(client: Any) -> bool:
    try:
        from upstash_redis import Redis
        from upstash_redis.asyncio import Redis as AsyncRedis
    except ImportError:  # pragma: no cover - a look-alike client without the package
        return inspect.iscoroutinefunction(getattr(client, "execute", None))
    if isinstance(client, AsyncRedis):
        return True
    if isinstance(client, Redis):
        return False
    raise ConfigurationError(
        f"client= must be an upstash_redis.Redis or upstash_redis.asyncio.Redis, not {type(client).__name__}"
    )


def _from_sdk(value: Any) -> Any:
    # The SDK decodes replies to str; the store works on the bytes Redis holds.
    if isinstance(value, str):
        return value if value == "OK" else value.encode("utf-8")
    if isinstance(value, list):
        return [_from_sdk(item) for item in value]
    return value


def _refused_or_failed(error: BaseException, where: str) -> BaseException:
    # The SDK raises UpstashError both for a refused token and for a command's error reply.
    message = str(error)
    if message.lower() == "unauthorized":
        return SessionStoreError(f"{where} refused the token: {message}", solution=REFUSED_SOLUTION)
    return UpstashCommandError(message)


def _not_utf8(error: BaseException, where: str) -> BaseException:
    # The SDK decodes every string as UTF-8; a record that is not UTF-8 is corrupt.
    return codec.CorruptRecordError(f"record is not UTF-8: {error}")


def _not_json(error: BaseException, where: str) -> BaseException:
    # A reply that is not JSON: a proxy or gateway error page.
    return StoreUnavailableError(f"{where} sent a reply that is not JSON: {error}")


def _rules() -> ErrorRules:
    """What the SDK raises, in the order to test it: UnicodeDecodeError is a ValueError."""
    rules: ErrorRules = (
        *transport_rules("in time"),
        (UnicodeDecodeError, _not_utf8),
        (ValueError, _not_json),
    )
    try:
        from upstash_redis.errors import UpstashError
    except ImportError:  # pragma: no cover - a look-alike client without the package
        return rules
    return ((UpstashError, _refused_or_failed), *rules)


__all__ = ["SdkTransport"]
