"""Flask with server-side sessions: `python examples/flask_app.py`, then open http://127.0.0.1:8000.

`flask.session`, `flash()` and `get_flashed_messages()` work unchanged; the data lives in the
store and the cookie holds only a signed id.

    curl -c jar -b jar http://127.0.0.1:8000/
    curl -c jar -b jar -d username=ada http://127.0.0.1:8000/login -L
    curl -c jar -b jar -d '' http://127.0.0.1:8000/logout -L
"""

from __future__ import annotations

import os

from flask import Flask, flash, get_flashed_messages, redirect, request, session

from websession import open_store
from websession.integrations.flask import SessionInterface

app = Flask(__name__)
app.session_interface = SessionInterface(
    open_store(
        os.environ.get("WEBSESSION_STORE", "sqlite://./sessions.db"),
        secrets=[os.environ.get("WEBSESSION_SECRET", "dev-only-secret-change-me")],
        max_age=7 * 24 * 3600,
    )
)


@app.get("/")
def home():
    session["visits"] = session.get("visits", 0) + 1
    return {"user": session.get("user"), "visits": session["visits"], "messages": get_flashed_messages()}


@app.post("/login")
def login():
    session.regenerate()  # a new id at sign-in defeats session fixation
    session["user"] = request.form["username"]
    flash(f"Welcome, {session['user']}")
    return redirect("/", code=303)


@app.post("/logout")
def logout():
    session.clear()  # an emptied session is deleted from the store and its cookie expired
    return redirect("/", code=303)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
