"""How the Redis store carries a plan's commands to Redis: the drive loops.

A plan (:mod:`websession.stores.redis_commands`) yields commands and receives replies; the
functions here run one to its end on one door, over either a connection the store holds
(:func:`drive_held`, :func:`adrive_held`: the commands are packed, with hiredis when it is
installed, and sent on that connection) or a redis-py client (:func:`drive`, :func:`adrive`:
given clients and Redis Cluster, where redis-py routes each command to its slot's node and
groups a :class:`~websession.stores.redis_commands.Batch` by node). :func:`send` and
:func:`asend` carry one command through a client.

What Redis guarantees the loops: a command, or a script, runs alone, and replies on a
connection come in order, so a plan sees each reply of its own commands. What it does not:
two commands of one plan are not atomic together (plans are written so no interleaving
harms them), a script unknown to the server answers ``NOSCRIPT`` (after a restart, a
failover or ``SCRIPT FLUSH``: it is then sent whole with ``EVAL``), and a connection may
drop between commands (every command here is safe to send again, so it is, once).

Example::

    >>> from websession.stores.redis_commands import Call
    >>> class Echo:
    ...     def execute_command(self, *args):
    ...         return args[-1]
    >>> def plan():
    ...     return (yield Call(("ECHO", b"hi")))
    >>> drive(Echo(), plan())
    b'hi'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis.exceptions

from ..redis_commands import Batch, Call, Op, Steps
from .connections import Held

hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as hiredis_pack
except ImportError:  # pragma: no cover - the hiredis extra is not installed
    hiredis_pack = None

T = TypeVar("T")


def drive(client: Any, steps: Steps[T]) -> T:
    """Run ``steps`` to its result through ``client``, a redis-py client of the sync door."""
    try:
        op = next(steps)
        while True:
            op = steps.send(send(client, op))
    except StopIteration as done:
        result: T = done.value
        return result


def drive_held(held: Held, steps: Steps[T]) -> T:
    conn = held.take()
    busy = False
    try:
        if held.broken and conn in held.broken:
            busy = True
            conn.disconnect()
            held.broken.discard(conn)
        op = next(steps)
        while True:
            busy = True
            reply = _held_send(conn, op)
            busy = False
            op = steps.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        if busy:  # a timeout, or an error mid-command: the reply may still be on its way
            held.broken.add(conn)
        held.give(conn)


def _held_send(conn: Any, op: Op) -> Any:
    if isinstance(op, Call):
        return _held_call(conn, op.args)
    if isinstance(op, Batch):  # only Redis Cluster sends batches, and it holds no connection
        return [_held_call(conn, args) for args in op.calls]
    try:
        return _held_call(conn, ("EVALSHA", op.script.sha, len(op.keys), *op.keys, *op.args))
    except redis.exceptions.NoScriptError:
        return _held_call(conn, ("EVAL", op.script.source, len(op.keys), *op.keys, *op.args))


def _pack(conn: Any, args: tuple[Any, ...]) -> Any:
    # hiredis packs in C; redis-py's asyncio connections pack in Python.
    return [hiredis_pack(args)] if hiredis_pack is not None else conn.pack_command(*args)


def _held_call(conn: Any, args: tuple[Any, ...]) -> Any:
    packed = _pack(conn, args)
    try:
        conn.send_packed_command(packed, check_health=False)
        return conn.read_response()
    except redis.exceptions.ConnectionError:
        # A connection that a restart closed while it sat idle: reconnect once and repeat
        # (every command here is safe to repeat). A timeout is not retried: a hung server
        # should give a quick 503, not twice the wait.
        conn.disconnect()
        conn.send_packed_command(packed, check_health=False)
        return conn.read_response()


async def adrive_held(held: Held, steps: Steps[T]) -> T:
    conn = await held.atake()
    busy = False
    try:
        if held.broken and conn in held.broken:
            busy = True
            await conn.disconnect(nowait=True)
            held.broken.discard(conn)
        op = next(steps)
        while True:
            busy = True
            reply = await _aheld_send(conn, op)
            busy = False
            op = steps.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        # No await here: a second cancellation must not skip the give-back.
        if busy:  # a timeout or a cancelled request: the reply may still be on its way
            held.broken.add(conn)
        held.agive(conn)


async def _aheld_send(conn: Any, op: Op) -> Any:
    if isinstance(op, Call):
        return await _aheld_call(conn, op.args)
    if isinstance(op, Batch):
        return [await _aheld_call(conn, args) for args in op.calls]
    try:
        return await _aheld_call(conn, ("EVALSHA", op.script.sha, len(op.keys), *op.keys, *op.args))
    except redis.exceptions.NoScriptError:
        return await _aheld_call(conn, ("EVAL", op.script.source, len(op.keys), *op.keys, *op.args))


async def _aheld_call(conn: Any, args: tuple[Any, ...]) -> Any:
    packed = _pack(conn, args)
    try:
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()
    except redis.exceptions.ConnectionError:
        await conn.disconnect()
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()


def send(client: Any, op: Op) -> Any:
    if isinstance(op, Call):
        return client.execute_command(*op.args)
    if isinstance(op, Batch):
        # On a cluster, redis-py groups the commands by node: one round trip per node.
        pipe = client.pipeline(transaction=False)
        for args in op.calls:
            pipe.execute_command(*args)
        return pipe.execute()
    try:
        return client.execute_command("EVALSHA", op.script.sha, len(op.keys), *op.keys, *op.args)
    except redis.exceptions.NoScriptError:
        return client.execute_command("EVAL", op.script.source, len(op.keys), *op.keys, *op.args)


async def adrive(client: Any, steps: Steps[T]) -> T:
    try:
        op = next(steps)
        while True:
            op = steps.send(await asend(client, op))
    except StopIteration as done:
        result: T = done.value
        return result


async def asend(client: Any, op: Op) -> Any:
    if isinstance(op, Call):
        return await client.execute_command(*op.args)
    if isinstance(op, Batch):
        pipe = client.pipeline(transaction=False)
        for args in op.calls:
            pipe.execute_command(*args)  # queues: a pipeline's commands are sent by execute()
        return await pipe.execute()
    try:
        return await client.execute_command("EVALSHA", op.script.sha, len(op.keys), *op.keys, *op.args)
    except redis.exceptions.NoScriptError:
        return await client.execute_command("EVAL", op.script.source, len(op.keys), *op.keys, *op.args)


__all__ = ["adrive", "adrive_held", "asend", "drive", "drive_held", "send"]
