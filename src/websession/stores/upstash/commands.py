"""How the Redis-protocol plans reach Upstash: each op as the command array the REST API takes.

The store's records and users are the plans every Redis-protocol store shares
(:mod:`websession.stores.redis_records`, :mod:`websession.stores.redis_users`): generators
that yield :class:`~websession.stores.redis_commands.Call` and
:class:`~websession.stores.redis_commands.Eval` ops and do no I/O. The store drives them with
:func:`~websession.stores.steps.run_steps` (or its async twin), sending each op as
:func:`rest_command` makes it and, when a script is unknown, as :func:`eval_whole` makes it.

What Upstash guarantees the plans: each command is atomic, and so is a Lua script sent with
``EVALSHA``, which is how an update compares and sets in one step. What it does not: a
script cache that survives everything (``NOSCRIPT`` is answered by sending the script whole
with ``EVAL``, which also caches it), nor atomicity across requests, so every command is one
HTTP request and a plan never counts on two of them landing together.

Example::

    >>> from websession.stores.redis_commands import Call
    >>> rest_command(Call(("SET", "app:an-id", b'{"a":1}', "NX", "EX", 60)))
    ['SET', 'app:an-id', '{"a":1}', 'NX', 'EX', 60]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..redis_commands import Call, Eval, Op
from .errors import UpstashCommandError
from .rest import Command


def rest_command(op: Op) -> Command:
    """The command that sends ``op``: a script by its SHA (``EVALSHA``).

    Example::

        >>> from websession.stores.redis_commands import Eval, Script
        >>> rest_command(Eval(Script.of("return 1"), ("k",), (b"v", 2)))[2:]
        [1, 'k', 'v', 2]
    """
    if type(op) is Call:
        return arguments(op.args)
    if type(op) is Eval:
        return ["EVALSHA", op.script.sha, len(op.keys), *op.keys, *arguments(op.args)]
    raise TypeError(f"cannot send {type(op).__name__} over REST")  # batches: Redis Cluster only


def eval_whole(op: Op, error: UpstashCommandError) -> Command:
    """The command to send after ``op`` failed with ``error``: the script whole (``EVAL``,
    which also caches it) when the server did not know it, else ``error`` is raised."""
    if type(op) is not Eval or not error.reply.startswith("NOSCRIPT"):
        raise error
    return ["EVAL", op.script.source, len(op.keys), *op.keys, *arguments(op.args)]


def arguments(args: Iterable[Any]) -> Command:
    """Command arguments as the REST API takes them: bytes (records and entries, which are
    JSON) as the UTF-8 text they are; strings and numbers as they are.

    Example::

        >>> arguments(("SET", "k", b'{"a":1}', "PX", 1500))
        ['SET', 'k', '{"a":1}', 'PX', 1500]
    """
    return [arg.decode("utf-8") if type(arg) is bytes else arg for arg in args]


__all__ = ["arguments", "eval_whole", "rest_command"]
