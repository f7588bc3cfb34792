"""Starlette with server-side sessions: `python examples/starlette_app.py`, then open http://127.0.0.1:8000.

`request.session` works as with Starlette's own SessionMiddleware; the data lives in the store
(SQLite here) and the cookie holds only a signed id.

    curl -c jar -b jar http://127.0.0.1:8000/
    curl -c jar -b jar -d username=ada http://127.0.0.1:8000/login -L
    curl -c jar -b jar -d '' http://127.0.0.1:8000/logout -L
"""

from __future__ import annotations

import os

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from websession import open_store
from websession.integrations.asgi import SessionMiddleware

storage = open_store(
    os.environ.get("WEBSESSION_STORE", "sqlite://./sessions.db"),
    secrets=[os.environ.get("WEBSESSION_SECRET", "dev-only-secret-change-me")],
    max_age=7 * 24 * 3600,
)


async def home(request: Request) -> JSONResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JSONResponse({"user": request.session.get("user"), "visits": request.session["visits"]})


async def login(request: Request) -> RedirectResponse:
    form = await request.form()
    request.session.regenerate()  # a new id at sign-in defeats session fixation
    request.session["user"] = str(form["username"])
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> RedirectResponse:
    request.session.destroy()  # deletes the record and expires the cookie
    return RedirectResponse("/", status_code=303)


app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ],
    middleware=[Middleware(SessionMiddleware, storage=storage)],
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
