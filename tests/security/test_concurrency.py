"""Concurrent requests on one session, on every store that claims atomic changes.

- 50 parallel requests, each setting its own key, leave all 50 keys (threads through the sync
  door, tasks on one event loop through the async door); every request read the session
  before any of them committed, so a store that wrote snapshots would lose all but one;
- a destroy racing 20 updates leaves the session destroyed: updates that lose the race get an
  expired cookie, and nothing brings the record back.

Stores that declare ``atomic_changes = False`` (cookie, custom callbacks, Workers KV) are
listed and skipped with the reason, as in the conformance suite.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..conformance.harness import AsyncDoor, SyncDoor
from .backends import BACKENDS, Backend
from .conftest import make_cookie, request_header

PARALLEL = 50
RACERS = 20
ROUNDS = 3


@pytest.fixture(params=["sync", "async"])
def door(request: pytest.FixtureRequest) -> Any:
    return SyncDoor() if request.param == "sync" else AsyncDoor()


@pytest.fixture
def storage(request: pytest.FixtureRequest, door: Any) -> Any:
    backend: Backend = request.getfixturevalue("backend")
    made = backend.make(request, cookie=make_cookie(max_age=3600))
    if not made.store.atomic_changes:
        door.close(made)
        pytest.skip(f"declared: the {backend.name} store does not apply changes atomically")
    yield made
    door.close(made)


ALL = [pytest.param(b, id=b.name) for b in BACKENDS]


@pytest.mark.parametrize("backend", ALL)
def test_fifty_parallel_requests_each_keep_their_key(backend: Backend, door: Any, storage: Any) -> None:
    session = door.get(storage, None)
    session["base"] = 0
    header = request_header(door.commit(storage, session))
    mutations = [lambda s, i=i: s.set(f"k{i}", i) for i in range(PARALLEL)]
    door.concurrently(storage, header, mutations)
    assert dict(door.get(storage, header)) == {"base": 0, **{f"k{i}": i for i in range(PARALLEL)}}


@pytest.mark.parametrize("backend", ALL)
def test_a_destroy_racing_updates_leaves_the_session_destroyed(
    backend: Backend, door: Any, storage: Any
) -> None:
    raw = backend.raw(storage)
    for round in range(ROUNDS):
        session = door.get(storage, None)
        session["user"] = round
        header = request_header(door.commit(storage, session))
        key = storage.store.storage_key(session.id)
        # The destroyer sits at a different place in the line each round.
        position = (round * 7) % (RACERS + 1)
        mutations: list[Any] = [lambda s, i=i: s.set(f"k{i}", i) for i in range(RACERS)]
        mutations.insert(position, lambda s: s.destroy())
        results = door.concurrently(storage, header, mutations)
        assert "Expires=Thu, 01 Jan 1970" in (results[position] or "")
        replay = door.get(storage, header)
        assert replay.is_new and len(replay) == 0, f"round {round}: the destroyed session came back"
        assert key not in raw.stored_keys()
        for result in results:
            # An update that landed before the destroy rolls the same cookie; one after it
            # gets the expired cookie. None issues a new id that would carry the data on.
            assert result is None or "Expires=Thu, 01 Jan 1970" in result or result.startswith(header), result
