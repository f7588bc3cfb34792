"""The commands a Redis-protocol store operation sends, as data: the interface between an
operation's plan and whatever carries it to the server.

A plan is a generator (:data:`Steps`): it yields one :data:`Op` at a time, receives that
op's reply with ``send()``, and returns the operation's result; it does no I/O itself. An
error the carrier raises may be thrown into it at its ``yield``. The Redis store carries ops
through redis-py, on held connections or a cluster client, on either door
(:mod:`websession.stores.redis.wire`); the Upstash store carries them over REST. A carrier
must:

- send a :class:`Call`'s ``args`` as one command and hand back its reply;
- send an :class:`Eval` as ``EVALSHA sha numkeys keys... args...`` and, after ``NOSCRIPT``,
  as ``EVAL source ...`` (which also caches the script);
- send a :class:`Batch`'s commands in one pipeline (not atomic) and hand back the list of
  their replies. Only Redis Cluster plans yield batches.

Replies are what Redis answered: bytes or str (a client made with ``decode_responses``),
integers, None, lists (a script's table), or a dict (redis-py's HGETALL); the helpers below
read each the same whatever the carrier. The guarantees behind the plans are Redis's own: one
command, or one script, runs alone (Redis is single-threaded), so each op is atomic; two ops
are not, and a plan says why its order is safe. On Redis Cluster one op reaches one hash slot
only (a pipeline excepted), so no multi-key atomicity spans slots.

Example::

    >>> def ping_twice():
    ...     first = yield Call(("PING",))
    ...     return [first, (yield Call(("PING",)))]
    >>> from websession.stores.steps import run_steps
    >>> run_steps(ping_twice(), lambda op: b"PONG")
    [b'PONG', b'PONG']
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from .redis_cas import digest

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, run with EVALSHA and, after NOSCRIPT, with EVAL (which also caches it).

    Example::

        >>> Script.of("return 1").sha
        'e0e1f9fabfc9d4800c877a703b823ac0578ff8db'
    """

    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> Script:
        return cls(source, digest(source.encode()))


@dataclass(frozen=True, slots=True)
class Call:
    """One command."""

    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Eval:
    """One script call over ``keys`` (the first is where Redis Cluster sends it)."""

    script: Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Batch:
    """Several independent commands in one pipeline (not atomic); the reply is their list.
    Only Redis Cluster operations send these: there they reach several nodes at once."""

    calls: tuple[tuple[Any, ...], ...]


Op = Union[Call, Eval, Batch]  # noqa: UP007 - a runtime alias on 3.10
#: An operation written once: it yields commands, receives their replies, returns its result.
Steps = Generator[Op, Any, T]


# -- replies -----------------------------------------------------------------------------------


def as_bytes(reply: Any) -> bytes:
    """A string reply as bytes: bytes, or str from a client made with decode_responses=True.

    Example::

        >>> as_bytes("{}"), as_bytes(b"{}")
        (b'{}', b'{}')
    """
    return reply.encode("utf-8") if isinstance(reply, str) else bytes(reply)


def text(reply: Any) -> str:
    """A string reply as text; bytes that are not UTF-8 raise UnicodeDecodeError."""
    return reply if isinstance(reply, str) else bytes(reply).decode("utf-8")


def string_bytes(reply: Any) -> bytes:
    """A string reply as bytes; anything else (a number, nil) raises TypeError."""
    if isinstance(reply, str):
        return reply.encode("utf-8")
    if isinstance(reply, (bytes, bytearray, memoryview)):
        return bytes(reply)
    raise TypeError(f"a {type(reply).__name__}, not a string")


def key_text(reply: Any) -> str:
    """A key or field name as text; bytes that are not UTF-8 never name a session, so lossy
    is fine."""
    return reply if isinstance(reply, str) else string_bytes(reply).decode("utf-8", "replace")


def integer(reply: Any) -> int:
    """An integer reply (or a number as text); 0 for nil or anything else.

    Example::

        >>> integer(3), integer(b"4"), integer(None)
        (3, 4, 0)
    """
    if isinstance(reply, bool):
        return int(reply)
    if isinstance(reply, int):
        return reply
    try:
        return int(key_text(reply))
    except (TypeError, ValueError):
        return 0


def pairs(reply: Any) -> list[tuple[Any, Any]]:
    """HGETALL's reply as pairs: redis-py gives a dict, a script or REST a flat list.

    Example::

        >>> pairs([b"a", b"1", b"b", b"2"]), pairs({b"a": b"1"})
        ([(b'a', b'1'), (b'b', b'2')], [(b'a', b'1')])
    """
    if isinstance(reply, dict):
        return list(reply.items())
    items = list(reply or ())
    return list(zip(items[0::2], items[1::2], strict=True))


__all__ = [
    "Batch",
    "Call",
    "Eval",
    "Op",
    "Script",
    "Steps",
    "as_bytes",
    "integer",
    "key_text",
    "pairs",
    "string_bytes",
    "text",
]
