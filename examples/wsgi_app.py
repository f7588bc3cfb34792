"""A plain WSGI app with server-side sessions: `python examples/wsgi_app.py` (standard library server).

Any WSGI framework works the same way: wrap the app in SessionMiddleware and find the session
in `environ["websession.session"]`.

    curl -c jar -b jar http://127.0.0.1:8000/
    curl -c jar -b jar -d username=ada http://127.0.0.1:8000/login -L
    curl -c jar -b jar -d '' http://127.0.0.1:8000/logout -L
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from websession import open_store
from websession.integrations.wsgi import SessionMiddleware, get_session

storage = open_store(
    os.environ.get("WEBSESSION_STORE", "sqlite://./sessions.db"),
    secrets=[os.environ.get("WEBSESSION_SECRET", "dev-only-secret-change-me")],
    max_age=7 * 24 * 3600,
)


def app(environ, start_response):
    session = get_session(environ)
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    if method == "POST" and path == "/login":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(size).decode())
        session.regenerate()  # a new id at sign-in defeats session fixation
        session["user"] = form["username"][0]
        start_response("303 See Other", [("Location", "/"), ("Content-Length", "0")])
        return [b""]
    if method == "POST" and path == "/logout":
        session.destroy()  # deletes the record and expires the cookie
        start_response("303 See Other", [("Location", "/"), ("Content-Length", "0")])
        return [b""]
    if path != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    session["visits"] = session.get("visits", 0) + 1
    body = json.dumps({"user": session.get("user"), "visits": session["visits"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = SessionMiddleware(app, storage)

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    with make_server("127.0.0.1", port, application) as server:
        print(f"serving on http://127.0.0.1:{port}")
        server.serve_forever()
