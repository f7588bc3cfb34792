"""FastAPI with server-side sessions: `python examples/fastapi_app.py`, then open http://127.0.0.1:8000/docs.

`SessionDep` gives endpoints a typed websession Session (flash, regenerate, destroy).

    curl -c jar -b jar http://127.0.0.1:8000/
    curl -c jar -b jar --json '{"username": "ada"}' http://127.0.0.1:8000/login -L
    curl -c jar -b jar -d '' http://127.0.0.1:8000/logout -L
"""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from websession import open_store
from websession.integrations.fastapi import SessionDep, SessionMiddleware

storage = open_store(
    os.environ.get("WEBSESSION_STORE", "sqlite://./sessions.db"),
    secrets=[os.environ.get("WEBSESSION_SECRET", "dev-only-secret-change-me")],
    max_age=7 * 24 * 3600,
)

app = FastAPI(title="websession + FastAPI")
app.add_middleware(SessionMiddleware, storage=storage)


class Credentials(BaseModel):
    username: str


@app.get("/")
async def home(session: SessionDep) -> dict[str, object]:
    session["visits"] = session.get("visits", 0) + 1
    return {"user": session.get("user"), "visits": session["visits"], "notice": session.get("notice")}


@app.post("/login")
async def login(credentials: Credentials, session: SessionDep) -> RedirectResponse:
    session.regenerate()  # a new id at sign-in defeats session fixation
    session["user"] = credentials.username
    session.flash("notice", f"Welcome, {credentials.username}")
    return RedirectResponse("/", status_code=303)


@app.post("/logout")
async def logout(session: SessionDep) -> RedirectResponse:
    session.destroy()  # deletes the record and expires the cookie
    return RedirectResponse("/", status_code=303)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
