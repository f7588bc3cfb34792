"""HTTP runs: each app in its own server process (uvicorn for Starlette, gunicorn for Flask,
one worker each), loaded in turn by wrk with a Lua script that keeps the session cookie as a
browser does, or by a small Python load generator when wrk is not installed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .servers import Process, ServerError, free_port

#: name -> (server, BENCH_APP, needs Redis, anchor it is compared to)
APPS: dict[str, tuple[str, str, bool, str | None]] = {
    "Starlette, no sessions": ("uvicorn", "starlette-plain", False, None),
    "Starlette SessionMiddleware (cookie)": ("uvicorn", "starlette-cookie", False, None),
    "starsessions (redis)": ("uvicorn", "starsessions", True, None),
    "websession cookie (Starlette)": (
        "uvicorn",
        "websession-cookie",
        False,
        "Starlette SessionMiddleware (cookie)",
    ),
    "websession redis (Starlette)": ("uvicorn", "websession-redis", True, "starsessions (redis)"),
    "Flask, no sessions": ("gunicorn", "flask-plain", False, None),
    "Flask-Session (redis)": ("gunicorn", "flask-session", True, None),
    "websession redis (Flask)": ("gunicorn", "websession-flask", True, "Flask-Session (redis)"),
}

# Keeps the last Set-Cookie and sends it back, like a browser. wrk gives each thread its own
# Lua state, and the bench runs one connection per thread: one browser per connection.
WRK_SCRIPT = """
local cookie = nil
request = function()
  if cookie then
    return wrk.format("GET", wrk.path, {["Cookie"] = cookie})
  end
  return wrk.format("GET", wrk.path)
end
response = function(status, headers, body)
  local c = headers["Set-Cookie"] or headers["set-cookie"]
  if c then
    local pair = string.match(c, "^[^;]+")
    if string.match(pair, "=$") or string.match(pair, "=''$") then cookie = nil else cookie = pair end
  end
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class AppServer:
    """One app in one server process on a free port."""

    def __init__(self, name: str, redis_url: str | None, directory: Path) -> None:
        server, kind, _, _ = APPS[name]
        self.name = name
        self.port = free_port()
        env = dict(os.environ, BENCH_APP=kind, BENCH_PREFIX=f"bench:http:{kind}:")
        if redis_url is not None:
            env["BENCH_REDIS_URL"] = redis_url
        python = sys.executable
        if server == "uvicorn":
            command = [
                python,
                "-m",
                "uvicorn",
                "bench.http_apps:asgi_app",
                "--factory",
                "--port",
                str(self.port),
            ]
            command += ["--host", "127.0.0.1", "--workers", "1", "--log-level", "warning", "--no-access-log"]
        else:
            command = [python, "-m", "gunicorn", "bench.http_apps:wsgi_app()", "-b", f"127.0.0.1:{self.port}"]
            command += ["-w", "1", "--log-level", "warning"]
        root = Path(__file__).resolve().parent.parent
        self.process = Process(f"{kind}-{self.port}", command, self.port, directory, env=env, cwd=root)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.process.stop()


#: CPUs for the load generator when the bench pinned itself (see bench.__main__.pin).
LOAD_CPUS: set[int] = set()


def _on_load_cpus() -> None:
    os.sched_setaffinity(0, LOAD_CPUS)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, seconds: float, connections: int) -> LoadResult:
    """Load ``url`` for ``seconds`` with wrk: ``connections`` keep-alive connections, one
    thread (and so one cookie jar) each."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        duration = max(1, round(seconds))
        out = subprocess.run(
            ["wrk", f"-t{connections}", f"-c{connections}", f"-d{duration}s", "-s", script.name, url],
            capture_output=True,
            text=True,
            timeout=duration + 30,
            preexec_fn=_on_load_cpus if LOAD_CPUS else None,
        ).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if match is None:
        raise ServerError(f"could not read wrk's output:\n{out}")
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(3)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = int(errors.group(1)) if errors else 0
    if socket_errors:
        count += sum(int(g) for g in socket_errors.groups()[:1]) + int(socket_errors.group(4))
    return LoadResult(int(match.group(1)), float(match.group(2)) * unit, count)


async def _python_load(host: str, port: int, path: str, seconds: float, connections: int) -> LoadResult:
    """Keep-alive HTTP/1.1 clients, each with its own cookie, for ``seconds``."""
    deadline = time.perf_counter() + seconds
    counts = [0, 0]

    async def client() -> None:
        cookie: bytes | None = None
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
                if cookie:
                    head += b"Cookie: " + cookie + b"\r\n"
                writer.write(head + b"\r\n")
                status_line = await reader.readline()
                if not status_line:
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                length, close = 0, False
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    value = value.strip()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"set-cookie":
                        pair = value.split(b";", 1)[0]
                        cookie = None if pair.endswith((b"=", b"=''")) else pair
                    elif name == b"connection" and value.lower() == b"close":
                        close = True
                await reader.readexactly(length)
                counts[0 if status_line.split()[1].startswith(b"2") else 1] += 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return LoadResult(counts[0] + counts[1], time.perf_counter() - start, counts[1])


def python_load(url: str, seconds: float, connections: int) -> LoadResult:
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert match is not None
    return asyncio.run(
        _python_load(match.group(1), int(match.group(2)), match.group(3), seconds, connections)
    )


def load(url: str, seconds: float, connections: int) -> LoadResult:
    """wrk when it is installed and the run lasts a second or more (its shortest), else the
    Python load generator."""
    if have_wrk() and seconds >= 1:
        return wrk(url, seconds, connections)
    return python_load(url, seconds, connections)
