"""Scale figures: cost per request as stored sessions grow, memory per session in the memory
store, throughput with several clients at once.

Stores are filled straight in their own record format (a Redis pipeline, one SQLite
transaction, files written in the store's layout), which is much faster than a million
commits and leaves the same bytes a commit would.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .contenders import LIFETIME, Env, websession_storage
from .drive import INITIAL

_RECORD = json.dumps(INITIAL, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Growth:
    """Cost per request of one store at each population size."""

    store: str
    points: dict[int, dict[str, float]] = field(default_factory=dict)  # size -> workload -> s/request


def _fill(storage: Any, kind: str, ids: list[str]) -> None:
    """Store :data:`INITIAL` under every id, in the store's own record format."""
    store = storage.store
    expires = datetime.now(timezone.utc) + timedelta(seconds=LIFETIME)
    if kind.startswith("redis"):
        import redis

        client = redis.Redis.from_url(store.url.replace("redis+cluster", "redis"))
        try:
            for start in range(0, len(ids), 10_000):
                pipe = client.pipeline(transaction=False)
                for id in ids[start : start + 10_000]:
                    pipe.set(store.key(id), _RECORD, ex=LIFETIME)
                pipe.execute()
        finally:
            client.close()
    elif kind == "sqlite":
        import sqlite3

        db = sqlite3.connect(store.path)
        try:
            with db:
                db.executemany(
                    f"INSERT INTO {store.table} (id, data, expires) VALUES (?, ?, ?)",
                    ((id, _RECORD, expires.timestamp()) for id in ids),
                )
        finally:
            db.close()
    elif kind == "file":
        from websession.stores.file import format_expires

        content = json.dumps(
            {"data": INITIAL, "expires": format_expires(expires)}, separators=(",", ":"), ensure_ascii=False
        ).encode()
        made: set[str] = set()
        for id in ids:
            path = store.path_of(id)
            if id[:4] not in made:
                path.parent.mkdir(exist_ok=True, mode=0o700)
                made.add(id[:4])
            path.write_bytes(content)
    else:
        raise ValueError(f"cannot fill a {kind} store")


def _cycle(storage: Any, headers: list[str], n: int, workload: str) -> float:
    """``n`` sync get + commit cycles on random stored sessions; seconds per request."""
    picks = [random.choice(headers) for _ in range(n)]
    gc.collect()
    start = time.perf_counter()
    for header in picks:
        session = storage.get_session(header)
        if workload == "write":
            session["n"] = session.get("n", 0) + 1
        else:
            session.get("user_id")
        storage.commit_session(session)
    return (time.perf_counter() - start) / n


def growth(
    kind: str,
    sizes: list[int],
    env: Env,
    *,
    n: int,
    rounds: int,
    progress: Any = print,
) -> Growth:
    """One store per size, each filled to that many sessions (on Redis, each in a redis-server
    of its own, since a keyspace is shared), then read and write cycles on all of them in
    alternating rounds, so that the machine's load drifts over every size alike. Requests go
    to the same number of random active sessions at every size."""
    from websession.ids import generate_id

    result = Growth(kind)
    stores: dict[int, tuple[Any, list[str]]] = {}
    try:
        for size in sorted(sizes):
            url = env.servers.another_redis() if kind == "redis" else None
            storage = websession_storage(kind, env, redis_url=url)
            ids = [generate_id() for _ in range(size)]
            started = time.perf_counter()
            _fill(storage, kind, ids)
            progress(f"  {kind}: {size:,} sessions stored in {time.perf_counter() - started:.1f} s")
            # The same number of active sessions at every size (as many as the smallest store
            # holds, at most 1,000): what grows is what is stored, not the working set.
            sample = random.sample(ids, min([*sizes, 1000]))
            stores[size] = (storage, [storage.cookie.serialize(id).split(";", 1)[0] for id in sample])
            del ids
        for storage, headers in stores.values():
            _cycle(storage, headers, max(10, n // 10), "read")  # warm the caches a server would have
        samples: dict[int, dict[str, list[float]]] = {size: {"read": [], "write": []} for size in stores}
        order = sorted(stores)
        for index in range(rounds):
            for size in order if index % 2 == 0 else order[::-1]:
                storage, headers = stores[size]
                for workload in ("read", "write"):
                    samples[size][workload].append(_cycle(storage, headers, n, workload))
        for size, by in samples.items():
            result.points[size] = {workload: statistics.median(values) for workload, values in by.items()}
            point = result.points[size]
            read, write = point["read"] * 1e6, point["write"] * 1e6
            progress(f"  {kind} {size:>9,} sessions: read {read:7.1f} us, write {write:7.1f} us")
    finally:
        for storage, _ in stores.values():
            storage.close()
    return result


def memory_per_session(count: int) -> dict[str, float]:
    """Bytes of Python heap per session in the memory store, holding :data:`INITIAL`."""
    from websession.stores.memory import MemoryStore

    gc.collect()
    tracemalloc.start()
    try:
        store = MemoryStore()
        before = tracemalloc.get_traced_memory()[0]
        expires = datetime.now(timezone.utc) + timedelta(seconds=LIFETIME)
        for _ in range(count):
            store.create(INITIAL, expires)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return {
        "sessions": count,
        "bytes_per_session": (after - before) / count,
        "record_bytes": len(_RECORD.encode()),
    }


async def _concurrent(runner: Any, n: int, clients: int) -> float:
    start = time.perf_counter()
    await runner.run_concurrent(n, "read", clients)
    share = max(1, n // clients)
    return share * clients / (time.perf_counter() - start)


def concurrency(
    loop: asyncio.AbstractEventLoop,
    runners: dict[str, Any],
    levels: list[int],
    *,
    n: int,
    rounds: int,
) -> dict[str, dict[int, float]]:
    """Requests per second with ``clients`` browsers at once on one event loop (in process)."""
    rates: dict[str, dict[int, list[float]]] = {name: {c: [] for c in levels} for name in runners}
    for _ in range(rounds):
        for clients in levels:
            for name, runner in runners.items():
                gc.collect()
                rates[name][clients].append(loop.run_until_complete(_concurrent(runner, n, clients)))
    return {name: {c: statistics.median(v) for c, v in by.items()} for name, by in rates.items()}
