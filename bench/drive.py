"""Drive one request cycle at a time straight through an ASGI or WSGI callable, no HTTP.

Each driver keeps a cookie jar of ``slots`` browsers and sends request ``i`` from browser
``i % slots``, storing whatever Set-Cookie comes back, as a browser would. The work the driver
itself does (one scope dict, one header split) is the same for every contender.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

#: What a new session holds after the first request: a signed-in user with a little state.
INITIAL = {"user_id": 42, "name": "Ada Lovelace", "roles": ["admin", "dev"], "theme": "dark", "n": 0}

#: "static" is a route that never touches the session (the lazy-loading phase, bench/lazy.py).
PATHS = {"read": "/read", "write": "/write", "init": "/init", "static": "/static"}


def touch(session: MutableMapping[str, Any], path: str) -> None:
    """What every benchmark app does with its session, whatever the library.

    "/read" reads one key, "/write" increments a counter; both start a session holding
    :data:`INITIAL` when there is none (the first request of a browser over HTTP).
    """
    if path == "/init" or session.get("user_id") is None:
        for key, value in INITIAL.items():
            session[key] = value
    elif path == "/write":
        session["n"] = session.get("n", 0) + 1


async def asgi_endpoint(scope: Scope, receive: Any, send: Any) -> None:
    """A bare ASGI app that uses ``scope["session"]`` as Starlette's ``request.session`` would."""
    touch(scope["session"], scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> Message:
    return _REQUEST


class AsgiDriver:
    """Requests through an ASGI app; ``cookie_name`` picks the cookie to keep."""

    def __init__(self, app: ASGIApp, cookie_name: str, slots: int = 64) -> None:
        self.app = app
        self.cookie_name = cookie_name.encode("latin-1")
        self.jar: list[bytes | None] = [None] * slots
        self.started: Message | None = None

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = message

    async def request(self, slot: int, path: str) -> int:
        cookie = self.jar[slot]
        headers = [(b"host", b"bench"), (b"accept", b"*/*")]
        if cookie is not None:
            headers.append((b"cookie", cookie))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        self.started = None
        await self.app(scope, _receive, self._send)
        started = self.started
        assert started is not None, "the app sent no response"
        for name, value in started.get("headers", ()):
            if name.lower() == b"set-cookie":
                pair = value.split(b";", 1)[0]
                if pair.partition(b"=")[0] == self.cookie_name:
                    self.jar[slot] = pair if pair.partition(b"=")[2] not in (b"", b"''", b'""') else None
        return int(started["status"])

    async def prime(self) -> None:
        """Give every browser a session holding :data:`INITIAL`."""
        for slot in range(len(self.jar)):
            await self.request(slot, PATHS["init"])
        missing = self.jar.count(None)
        if missing:
            raise RuntimeError(f"{missing} browsers got no session cookie")

    async def run(self, n: int, workload: str) -> None:
        path = PATHS[workload]
        slots = len(self.jar)
        for i in range(n):
            await self.request(i % slots, path)

    async def run_concurrent(self, n: int, workload: str, clients: int) -> None:
        """``clients`` browsers at once on one event loop, ``n`` requests in all."""
        path = PATHS[workload]
        share = max(1, n // clients)

        async def browser(slot: int) -> None:
            driver = AsgiDriver(self.app, self.cookie_name.decode())
            driver.jar = [self.jar[slot % len(self.jar)]]
            for _ in range(share):
                await driver.request(0, path)

        await asyncio.gather(*(browser(slot) for slot in range(clients)))


class WsgiDriver:
    """Requests through a WSGI app (Flask), read to the end and closed as a server would."""

    def __init__(self, app: Callable[..., Any], cookie_name: str, slots: int = 64) -> None:
        self.app = app
        self.cookie_name = cookie_name
        self.jar: list[str | None] = [None] * slots
        self._headers: list[tuple[str, str]] = []
        self._status = ""

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self._status = status
        self._headers = headers
        return None

    def request(self, slot: int, path: str) -> int:
        environ = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "bench",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "bench",
            "HTTP_ACCEPT": "*/*",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        cookie = self.jar[slot]
        if cookie is not None:
            environ["HTTP_COOKIE"] = cookie
        body = self.app(environ, self._start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        for name, value in self._headers:
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                if key == self.cookie_name:
                    self.jar[slot] = pair if val not in ("", "''", '""') else None
        return int(self._status.split(" ", 1)[0])

    def prime(self) -> None:
        for slot in range(len(self.jar)):
            self.request(slot, PATHS["init"])
        missing = self.jar.count(None)
        if missing:
            raise RuntimeError(f"{missing} browsers got no session cookie")

    def run(self, n: int, workload: str) -> None:
        path = PATHS[workload]
        slots = len(self.jar)
        for i in range(n):
            self.request(i % slots, path)
