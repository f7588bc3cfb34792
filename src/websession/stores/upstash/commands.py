"""How the Redis-protocol plans reach Upstash: each op as the command array the REST API takes.

The store's records and users are the plans every Redis-protocol store shares
(:mod:`websession.stores.redis_records`, :mod:`websession.stores.redis_users`): generators
that yield :class:`~websession.stores.redis_commands.Call` and
:class:`~websession.stores.redis_commands.Eval` ops and do no I/O. :func:`over_rest` turns
them into the steps of :mod:`websession.stores.steps` whose requests are REST commands, so
:class:`~.store.UpstashStore` runs them with a blocking or an awaiting transport alike.

What Upstash guarantees the plans: each command is atomic, and so is a Lua script sent with
``EVALSHA``, which is how an update compares and sets in one step. What it does not: a
script cache that survives everything (``NOSCRIPT`` is answered by sending the script whole
with ``EVAL``, which also caches it), nor atomicity across requests, so every command is one
HTTP request and a plan never counts on two of them landing together.

Example::

    >>> from websession.stores.redis_commands import Call
    >>> from websession.stores.steps import run_steps
    >>> def plan():
    ...     return (yield Call(("SET", "app:an-id", b'{"a":1}', "NX")))
    >>> sent = []
    >>> run_steps(over_rest(plan()), lambda command: sent.append(command) or "OK")
    'OK'
    >>> sent
    [['SET', 'app:an-id', '{"a":1}', 'NX']]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from .. import redis_commands
from ..redis_commands import Call, Eval
from ..steps import Steps
from .errors import UpstashCommandError
from .rest import Command

T = TypeVar("T")


def over_rest(steps: redis_commands.Steps[T]) -> Steps[Command, T]:
    """Run a plan's ops as REST commands: a script by its SHA, sent whole after ``NOSCRIPT``;
    bytes as the UTF-8 text they are (records and entries are JSON)."""
    try:
        op = next(steps)
    except StopIteration as done:  # answered without a command (a key no store writes)
        answer: T = done.value
        return answer
    while True:
        if isinstance(op, Call):
            reply = yield rest_command(op.args)
        elif isinstance(op, Eval):
            args: Command = [len(op.keys), *op.keys, *map(_argument, op.args)]
            try:
                reply = yield ["EVALSHA", op.script.sha, *args]
            except UpstashCommandError as exc:
                if not exc.reply.startswith("NOSCRIPT"):
                    raise
                reply = yield ["EVAL", op.script.source, *args]
        else:  # pragma: no cover - batches are for Redis Cluster only
            raise TypeError(f"cannot send {type(op).__name__} over REST")
        try:
            op = steps.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result


def rest_command(args: Iterable[Any]) -> Command:
    """A command as the REST API takes it: bytes as the UTF-8 text they are (records and
    entries are JSON), numbers as numbers.

    Example::

        >>> rest_command(("SET", "k", b'{"a":1}', "PX", 1500))
        ['SET', 'k', '{"a":1}', 'PX', 1500]
    """
    return [_argument(arg) for arg in args]


def _argument(value: Any) -> str | int:
    if isinstance(value, bytes):
        return value.decode("utf-8")  # encoded JSON records and entries
    if isinstance(value, (str, int)):
        return value
    return str(value)


__all__ = ["over_rest", "rest_command"]
