"""A local server that speaks the Upstash REST protocol in front of a real Redis.

It follows Upstash's documented behaviour (https://upstash.com/docs/redis/features/restapi):

- ``POST /`` takes one command as a JSON array (``["SET", "k", "v", "EX", 100]``) and answers
  ``{"result": ...}``; a command error answers HTTP 400 ``{"error": "ERR ..."}``.
- ``POST /pipeline`` takes an array of commands and answers an array with one
  ``{"result": ...}`` or ``{"error": ...}`` per command (HTTP 200; not atomic).
- ``POST /multi-exec`` runs the commands in MULTI/EXEC and answers the same way; a transaction
  Redis discards (a command refused while queueing) answers HTTP 400 ``{"error": "EXECABORT ..."}``.
- ``GET``/``POST``/``PUT /<command>/<arg>/...`` is the path form; a POST body is the last
  argument and query parameters follow as name/value pairs.
- The token comes as ``Authorization: Bearer <token>`` or the ``_token`` query parameter;
  otherwise HTTP 401 ``{"error": "Unauthorized"}``. Other methods answer HTTP 405.
- With ``Upstash-Encoding: base64`` every string in a result is base64, except the status
  reply ``"OK"``. Numbers stay numbers, nil is ``null``, arrays keep their shape.
- Every reply carries an ``upstash-sync-token`` header; the ``Upstash-Sync-Token`` request
  header a client echoes is recorded in :attr:`UpstashRestServer.requests`.

Replies of Redis are read raw (RESP2) so a status reply and a bulk string stay distinct, as
they are on Upstash. ``fault`` and ``delay`` let a test play an outage or a slow network.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from queue import Empty, LifoQueue
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from ._processes import ServerProcess
from .redis import REDIS_HOST, REDIS_PORT

# -- a raw RESP2 connection ----------------------------------------------------------------------


class Status(str):
    """A RESP simple-string reply (``+OK``), kept apart from bulk strings."""


class RedisError(str):
    """A RESP error reply (``-ERR ...``)."""


class RespConnection:
    """One connection to Redis that sends commands and reads replies without interpreting them."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def alive(self) -> bool:
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            return self.sock.recv(1, socket.MSG_PEEK) != b""  # b"": Redis closed it
        except BlockingIOError:
            return True  # nothing to read: open and idle
        except OSError:
            return False
        finally:
            self.sock.settimeout(timeout)

    def send(self, args: list[bytes]) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(parts))

    def call(self, args: list[bytes]) -> Any:
        self.send(args)
        return self.read()

    def read(self) -> Any:
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return Status(rest.decode("utf-8", "replace"))
        if kind == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            data = self.reader.read(length + 2)
            if len(data) != length + 2:
                raise ConnectionError("Redis closed the connection")
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.read() for _ in range(count)]
        raise ConnectionError(f"unexpected RESP reply {line[:40]!r}")


class RedisBackend:
    """A pool of raw connections to one Redis server."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: LifoQueue[RespConnection] = LifoQueue()

    def run(self, job: Any) -> Any:
        connection = self._idle_connection() or RespConnection(self.host, self.port)
        try:
            result = job(connection)
        except BaseException:
            connection.close()
            raise
        self._idle.put(connection)
        return result

    def close(self) -> None:
        while (connection := self._idle_connection()) is not None:
            connection.close()

    def _idle_connection(self) -> RespConnection | None:
        """An idle connection that Redis has not closed meanwhile (it may have restarted)."""
        while True:
            try:
                connection = self._idle.get_nowait()
            except Empty:
                return None
            if connection.alive():
                return connection
            connection.close()


# -- the REST server -----------------------------------------------------------------------------


class BadRequest(Exception):
    """The request cannot be turned into Redis commands."""


@dataclass
class LoggedRequest:
    """What one HTTP request asked for."""

    path: str
    commands: list[list[str]]
    #: The Upstash-Sync-Token header the client sent (None: absent).
    sync_token: str | None
    #: The upstash-sync-token header the server answered with.
    answered_token: str


@dataclass
class UpstashRestServer:
    """An Upstash-compatible REST endpoint on 127.0.0.1, in front of Redis at ``redis``."""

    redis: tuple[str, int]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    port: int = 0
    #: (status, text body) to answer every request with, instead of running it.
    fault: tuple[int, str] | None = None
    #: Seconds to wait before answering each request.
    delay: float = 0.0
    requests: list[LoggedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.backend = RedisBackend(*self.redis)
        self._sync_counter = 0
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UpstashRestServer:
        httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.upstash = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="upstash-rest", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection, as a server that goes away does."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self.backend.close()

    def next_sync_token(self) -> str:
        with self._lock:
            self._sync_counter += 1
            return f"{self._sync_counter}-{secrets.token_hex(4)}"

    def log(self, request: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def commands(self) -> list[str]:
        """The command names received so far, in order (upper-case)."""
        with self._lock:
            return [command[0].upper() for request in self.requests for command in request.commands]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    upstash: UpstashRestServer

    def server_activate(self) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._open_lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each reply waits for a delayed ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def _not_allowed(self) -> None:
        self.answered_token = self.server.upstash.next_sync_token()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply(405, {"error": "Method Not Allowed"})

    def _handle(self) -> None:
        upstash = self.server.upstash
        self.answered_token = upstash.next_sync_token()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if upstash.delay:
            time.sleep(upstash.delay)
        if upstash.fault is not None:
            status, text = upstash.fault
            self._send(status, text.encode(), "text/plain")
            return
        url = urlsplit(self.path)
        query = parse_qsl(url.query, keep_blank_values=True)
        if not self._authorized(upstash.token, query):
            self._reply(401, {"error": "Unauthorized"})
            return
        base64_replies = (self.headers.get("Upstash-Encoding") or "").lower() == "base64"
        path = url.path.rstrip("/")
        try:
            if path in ("/pipeline", "/multi-exec"):
                if self.command != "POST":
                    raise BadRequest("ERR only POST is allowed for " + path)
                commands = _command_list(body)
                upstash.log(LoggedRequest(path, _names(commands), self._sync_token(), self.answered_token))
                status, payload = self._batch(commands, path == "/multi-exec", base64_replies)
            else:
                command = _command(body) if path == "" else _path_command(path, body, query)
                upstash.log(
                    LoggedRequest(path or "/", _names([command]), self._sync_token(), self.answered_token)
                )
                reply = upstash.backend.run(lambda redis: redis.call(command))
                if isinstance(reply, RedisError):
                    status, payload = 400, {"error": str(reply)}
                else:
                    status, payload = 200, {"result": _encode(reply, base64_replies)}
        except BadRequest as exc:
            status, payload = 400, {"error": str(exc)}
        except (OSError, ConnectionError) as exc:
            status, payload = 500, {"error": f"ERR internal server error: {exc}"}
        self._reply(status, payload)

    def _batch(self, commands: list[list[bytes]], atomic: bool, base64_replies: bool) -> tuple[int, Any]:
        backend = self.server.upstash.backend
        if not atomic:

            def pipeline(redis: RespConnection) -> list[Any]:
                for command in commands:
                    redis.send(command)
                return [redis.read() for _ in commands]

            replies = backend.run(pipeline)
        else:

            def transaction(redis: RespConnection) -> Any:
                redis.send([b"MULTI"])
                for command in commands:
                    redis.send(command)
                redis.send([b"EXEC"])
                for _ in range(len(commands) + 1):
                    redis.read()  # +OK, then +QUEUED (or the error that dooms the transaction)
                return redis.read()  # the replies, or EXECABORT

            replies = backend.run(transaction)
            if isinstance(replies, RedisError):
                return 400, {"error": str(replies)}
        return 200, [
            {"error": str(reply)}
            if isinstance(reply, RedisError)
            else {"result": _encode(reply, base64_replies)}
            for reply in replies
        ]

    def _authorized(self, token: str, query: list[tuple[str, str]]) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode()):
            return True
        return any(
            name == "_token" and secrets.compare_digest(value.encode(), token.encode())
            for name, value in query
        )

    def _sync_token(self) -> str | None:
        return self.headers.get("Upstash-Sync-Token")

    def _reply(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        token = getattr(self, "answered_token", None) or self.server.upstash.next_sync_token()
        self.send_header("upstash-sync-token", token)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _argument(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRequest(f"ERR failed to parse command: unsupported argument {json.dumps(value)[:40]}")
    return value.encode("utf-8") if isinstance(value, str) else str(value).encode()


def _command(body: bytes) -> list[bytes]:
    try:
        parsed = json.loads(body)
    except ValueError:
        raise BadRequest("ERR failed to parse command: the body is not JSON") from None
    if not isinstance(parsed, list) or not parsed:
        raise BadRequest(
            "ERR failed to parse command: expected a JSON array of the command and its arguments"
        )
    return [_argument(item) for item in parsed]


def _command_list(body: bytes) -> list[list[bytes]]:
    try:
        parsed = json.loads(body)
    except ValueError:
        raise BadRequest("ERR failed to parse pipeline request: the body is not JSON") from None
    if not isinstance(parsed, list) or not parsed or not all(isinstance(c, list) and c for c in parsed):
        raise BadRequest("ERR failed to parse pipeline request: expected an array of command arrays")
    return [[_argument(item) for item in command] for command in parsed]


def _path_command(path: str, body: bytes, query: list[tuple[str, str]]) -> list[bytes]:
    command = [unquote(part).encode("utf-8") for part in path.strip("/").split("/")]
    if body:
        command.append(body)
    for name, value in query:
        if name != "_token":
            command += [name.encode("utf-8"), value.encode("utf-8")]
    return command


def _names(commands: list[list[bytes]]) -> list[list[str]]:
    return [[part.decode("utf-8", "replace") for part in command] for command in commands]


def _encode(reply: Any, base64_replies: bool) -> Any:
    if isinstance(reply, Status):
        if base64_replies and reply != "OK":
            return base64.b64encode(reply.encode()).decode("ascii")
        return str(reply)
    if isinstance(reply, RedisError):
        return str(reply)
    if isinstance(reply, bytes):
        if base64_replies:
            return base64.b64encode(reply).decode("ascii")
        return reply.decode("utf-8", "replace")
    if isinstance(reply, list):
        return [_encode(item, base64_replies) for item in reply]
    return reply


# -- a private redis-server, for tests that restart or flush it ------------------------------------


class RedisProcess(ServerProcess):
    """A redis-server of one test's own, without persistence."""

    binary_name = "redis-server"

    def arguments(self) -> list[str]:
        return ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def upstash_server(redis_url: str) -> Iterator[UpstashRestServer]:
    """An Upstash REST endpoint in front of the shared Redis; tests use their own key prefix."""
    server = UpstashRestServer((REDIS_HOST, REDIS_PORT)).start()
    yield server
    server.stop()


@pytest.fixture
def upstash_private_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, on a free port, that the test may stop or flush."""
    process = RedisProcess()
    process.start()
    yield process
    process.remove()


@pytest.fixture
def upstash_private_server(upstash_private_redis: RedisProcess) -> Iterator[UpstashRestServer]:
    """An Upstash REST endpoint of this test's own, in front of ``upstash_private_redis``."""
    server = UpstashRestServer(("127.0.0.1", upstash_private_redis.port)).start()
    yield server
    server.stop()
