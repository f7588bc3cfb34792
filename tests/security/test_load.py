"""Load and isolation over real HTTP: uvicorn, the ASGI middleware and Redis, on loopback.

200 clients, each a separate HTTP client with its own cookie jar (a browser), open their own
session and then hit ``/`` in a loop. On every response each client checks that the status is
200, that the session is its own, and that its counter rose by exactly one. At the end the
counters stored in Redis must equal what each client last saw. Zero cross-session leaks, zero
lost increments, zero 5xx.

Bounded in time and count. The CI setting runs 15 seconds; the longer setting used for the
figures in docs/security.md is::

    WEBSESSION_LOAD_SECONDS=120 WEBSESSION_LOAD_CLIENTS=200 \\
        python -m pytest -s tests/security/test_load.py

(``WEBSESSION_LOAD_MAX_REQUESTS`` caps the count, ``WEBSESSION_LOAD_WORKERS`` sets uvicorn's
worker processes). The figures are printed and written to ``test-artifacts/load-test.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from websession import create_cookie

from .counter_app import SECRET

SECONDS = float(os.environ.get("WEBSESSION_LOAD_SECONDS", "15"))
CLIENTS = int(os.environ.get("WEBSESSION_LOAD_CLIENTS", "200"))
MAX_REQUESTS = int(os.environ.get("WEBSESSION_LOAD_MAX_REQUESTS", "2000000"))
WORKERS = int(os.environ.get("WEBSESSION_LOAD_WORKERS", "1"))

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server(redis_url: str, redis_prefix: str, tmp_path: pathlib.Path) -> Iterator[str]:
    """uvicorn serving counter_app on a free loopback port, its sessions in Redis."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "WEBSESSION_LOAD_REDIS_URL": redis_url,
        "WEBSESSION_LOAD_PREFIX": redis_prefix,
    }
    command = [sys.executable, "-m", "uvicorn", "counter_app:app", "--app-dir", str(HERE)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    command += ["--log-level", "warning", "--no-access-log", "--backlog", "4096"]
    log = tmp_path / "uvicorn.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while not _accepting(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        errors = [line for line in log.read_text().splitlines() if "Traceback" in line or "ERROR" in line]
        assert errors == [], log.read_text()[-3000:]


@dataclass
class Tally:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    last_seen: dict[int, int] = field(default_factory=dict)
    cookies: dict[int, str] = field(default_factory=dict)


async def run_clients(base: str, tally: Tally) -> float:
    stop_at = time.monotonic() + SECONDS
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(60.0)

    async def one(index: int) -> None:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as browser:
            response = await browser.get("/start", params={"client": index})
            assert response.status_code == 200, response.text
            tally.cookies[index] = response.headers["set-cookie"].split(";")[0]
            last = 0
            while time.monotonic() < stop_at and tally.requests < MAX_REQUESTS:
                began = time.perf_counter()
                response = await browser.get("/")
                tally.latencies.append(time.perf_counter() - began)
                tally.requests += 1
                tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
                if response.status_code != 200:
                    continue
                body = response.json()
                if body["client"] != index:
                    tally.leaks.append(f"client {index} was shown {body}")
                    continue
                if body["n"] != last + 1:
                    tally.lost.append(f"client {index}: counter went from {last} to {body['n']}")
                last = body["n"]
            tally.last_seen[index] = last

    began = time.monotonic()
    await asyncio.gather(*(one(index) for index in range(CLIENTS)))
    return time.monotonic() - began


def stored_counters(redis_url: str, prefix: str, cookies: dict[int, str]) -> dict[int, tuple[int, int]]:
    """What Redis holds for each client's session: (owner, counter)."""
    import redis

    cookie = create_cookie("__session", secrets=[SECRET])
    client = redis.Redis.from_url(redis_url)
    try:
        stored = {}
        for index, header in cookies.items():
            data = json.loads(client.get(prefix + cookie.parse(header)))
            stored[index] = (data["client"], data["n"])
        return stored
    finally:
        client.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_two_hundred_clients_see_only_their_own_counter(
    server: str, redis_url: str, redis_prefix: str
) -> None:
    tally = Tally()
    elapsed = asyncio.run(run_clients(server, tally))
    figures = {
        "clients": CLIENTS,
        "seconds": round(elapsed, 1),
        "requests": tally.requests,
        "requests_per_second": round(tally.requests / elapsed),
        "latency_ms": {
            name: round(1000 * percentile(tally.latencies, fraction), 1)
            for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        },
        "statuses": tally.statuses,
        "leaks": len(tally.leaks),
        "lost_increments": len(tally.lost),
        "uvicorn_workers": WORKERS,
    }
    print("\nload test:", json.dumps(figures))
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "load-test.json").write_text(json.dumps(figures, indent=2) + "\n")

    assert tally.leaks == [], tally.leaks[:5]
    assert tally.lost == [], tally.lost[:5]
    assert set(tally.statuses) == {200}, tally.statuses
    assert len(tally.last_seen) == CLIENTS and all(n > 0 for n in tally.last_seen.values())
    stored = stored_counters(redis_url, redis_prefix, tally.cookies)
    assert stored == {index: (index, tally.last_seen[index]) for index in range(CLIENTS)}
