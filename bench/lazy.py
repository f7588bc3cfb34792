"""Lazy loading (issue 13): what a route that never touches the session costs behind the
middleware, next to one that reads it, with every browser carrying a session cookie.

The same tiny apps run eagerly (the default) and with ``lazy=True``, over the bench's private
Redis, so the round trips come from the server's own counters: eager reads the record for
every request that carries a cookie; lazy reads it only where the app uses the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .contenders import COOKIE, LIFETIME, AsgiRunner, Env, Runner, WsgiRunner, websession_storage
from .drive import touch
from .measure import Figure, RedisCounters, call, run_rounds

#: The workloads of this phase: a route that never touches the session, and one that reads it.
WORKLOADS = ("static", "read")


async def endpoint(scope: Any, receive: Any, send: Any) -> None:
    """The bench app, written for both modes: ``load_session`` is free when the session is
    already loaded (eager), and "/static" never asks for it."""
    from websession.integrations.asgi import load_session

    if scope["path"] != "/static":
        touch(await load_session(scope), scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def asgi(lazy: bool) -> Callable[[Env], Runner]:
    def build(env: Env) -> Runner:
        from websession.integrations.asgi import SessionMiddleware

        storage = websession_storage("redis", env)
        runner = AsgiRunner(SessionMiddleware(endpoint, storage, lazy=lazy), COOKIE, env, storage.aclose)
        runner.redis = True
        return runner

    return build


def flask(lazy: bool) -> Callable[[Env], Runner]:
    def build(env: Env) -> Runner:
        import flask as flask_module

        from websession.integrations.flask import SessionInterface

        storage = websession_storage("redis", env)
        app = flask_module.Flask("bench-lazy")
        app.config["PERMANENT_SESSION_LIFETIME"] = LIFETIME
        app.session_interface = SessionInterface(storage, lazy=lazy)

        def view() -> str:
            path = flask_module.request.path
            if path != "/static":
                touch(flask_module.session, path)
            return "ok"

        for path in ("/init", "/read", "/static"):
            app.add_url_rule(path, "bench_" + path.strip("/"), view)  # Flask has its own "static"
        runner = WsgiRunner(app, COOKIE, env, storage.close)
        runner.redis = True
        return runner

    return build


#: Rows of the table: name -> how to build it.
RUNNERS: dict[str, Callable[[Env], Runner]] = {
    "websession redis, ASGI (eager, the default)": asgi(lazy=False),
    "websession redis, ASGI, lazy=True": asgi(lazy=True),
    "websession Flask redis (eager, the default)": flask(lazy=False),
    "websession Flask redis, lazy=True": flask(lazy=True),
}


def lazy_loading(
    loop: asyncio.AbstractEventLoop,
    env: Env,
    counters: RedisCounters,
    *,
    n: int,
    rounds: int,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[tuple[str, str], Figure]:
    """Time and count round trips for every row on both workloads."""
    runners = {}
    for name, build in RUNNERS.items():
        runner = build(env)
        call(loop, runner, "prime")
        runners[name] = runner
    try:
        return run_rounds(loop, runners, WORKLOADS, n=n, rounds=rounds, counters=counters, progress=progress)
    finally:
        for runner in runners.values():
            call(loop, runner, "close")
