"""The apps the HTTP runs serve, picked by the ``BENCH_APP`` environment variable.

Served by uvicorn (``bench.http_apps:asgi_app``, a factory) and gunicorn
(``bench.http_apps:wsgi_app()``); the Redis URL and key prefix come from ``BENCH_REDIS_URL``
and ``BENCH_PREFIX``.
"""

from __future__ import annotations

import os
from typing import Any

from .contenders import COOKIE, LIFETIME, SECRET
from .drive import touch


def _redis_url() -> str:
    return os.environ["BENCH_REDIS_URL"]


def _prefix() -> str:
    return os.environ.get("BENCH_PREFIX", "bench:http:")


def asgi_app() -> Any:
    """A Starlette app with /read and /write, wrapped in the session middleware named by BENCH_APP."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    kind = os.environ["BENCH_APP"]

    async def view(request: Request) -> PlainTextResponse:
        if kind != "starlette-plain":
            touch(request.session, request.scope["path"])
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/read", view), Route("/write", view)])
    if kind == "starlette-plain":
        return app
    if kind == "starlette-cookie":
        from starlette.middleware.sessions import SessionMiddleware

        return SessionMiddleware(app, secret_key=SECRET, session_cookie=COOKIE, max_age=LIFETIME)
    if kind == "starsessions":
        import redis.asyncio
        from starsessions import SessionAutoloadMiddleware
        from starsessions import SessionMiddleware as StarsessionsMiddleware
        from starsessions.stores.redis import RedisStore

        store = RedisStore(connection=redis.asyncio.Redis.from_url(_redis_url()), prefix=_prefix())
        return StarsessionsMiddleware(
            SessionAutoloadMiddleware(app),
            store=store,
            lifetime=LIFETIME,
            rolling=True,
            cookie_name=COOKIE,
            cookie_https_only=False,
        )
    if kind.startswith("websession-"):
        import websession

        from .adapters import asgi_middleware
        from .contenders import _cookie

        if kind == "websession-cookie":
            storage = websession.create_cookie_session_storage(cookie=_cookie())
        else:
            storage = websession.create_redis_session_storage(
                cookie=_cookie(), url=_redis_url(), prefix=_prefix()
            )
        return asgi_middleware(app, storage)[0]
    raise ValueError(f"unknown BENCH_APP {kind!r}")


def wsgi_app() -> Any:
    """A Flask app with /read and /write and the sessions named by BENCH_APP."""
    import flask

    kind = os.environ["BENCH_APP"]
    app = flask.Flask("bench")
    app.config["PERMANENT_SESSION_LIFETIME"] = LIFETIME
    app.config["SECRET_KEY"] = SECRET
    app.config["SESSION_COOKIE_NAME"] = COOKIE

    def view() -> str:
        if kind != "flask-plain":
            touch(flask.session, flask.request.path)
        return "ok"

    app.add_url_rule("/read", "read", view)
    app.add_url_rule("/write", "write", view)
    if kind == "flask-session":
        import redis
        from flask_session import Session

        app.config.update(
            SESSION_TYPE="redis",
            SESSION_REDIS=redis.Redis.from_url(_redis_url()),
            SESSION_KEY_PREFIX=_prefix(),
        )
        Session(app)
    elif kind == "websession-flask":
        import websession

        from .adapters import flask_interface
        from .contenders import _cookie

        storage = websession.create_redis_session_storage(
            cookie=_cookie(), url=_redis_url(), prefix=_prefix()
        )
        app.session_interface = flask_interface(storage)[0]
    elif kind != "flask-plain":
        raise ValueError(f"unknown BENCH_APP {kind!r}")
    return app
