"""Starlette's own ``tests/middleware/test_session.py`` run against our middleware.

The file comes from the Starlette sdist that constraints.txt pins (tests/peers.py). A thin
shim stands in for ``starlette.middleware.sessions``: it takes Starlette's constructor
arguments and builds our middleware over a server-side memory store, so every test drives
a real Starlette app through the framework's test client. Starlette's tests then run here
unchanged, except those named in ``EXCLUDED``, each with the reason.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.peers import patched_module, peer_source
from websession import Session, create_cookie, create_memory_session_storage
from websession.integrations.asgi import SessionMiddleware as OurMiddleware

#: Starlette's tests that check something other than the middleware's behaviour.
EXCLUDED = {
    # Starlette's Session class tracks `accessed` for its own Vary logic; ours is a different
    # class (the one request.session is under our middleware), tested in tests/test_session.py.
    "test_session_tracks_modification": "asserts Starlette's own Session class internals",
    # Cookie attribute names are case-insensitive (RFC 6265 5.2); ours are written byte for
    # byte as Remix writes them ("Path=", "Domain=", "Partitioned"), which these regexes miss.
    "test_partitioned_session": "matches Starlette's lowercase attribute spelling",
    "test_session_cookie_subpath": "matches Starlette's lowercase attribute spelling",
    "test_domain_cookie": "matches Starlette's lowercase attribute spelling",
    # A lifetime already over deletes the record and expires the cookie with Remix's
    # "Expires=Thu, 01 Jan 1970" header; Starlette writes the data with Max-Age=0.
    "test_session_zero_max_age": "asserts Starlette's spelling of an expired cookie (Max-Age=0)",
    # Ours adds Vary: Cookie to every response by default (vary_cookie=True): a shared cache
    # must not serve a page that *might* depend on the session to another visitor.
    "test_vary_cookie_on_access": "asserts Vary is left out when the session is not touched",
}


class SessionMiddleware(OurMiddleware):
    """Starlette's ``SessionMiddleware`` signature, served by websession."""

    def __init__(
        self,
        app: Any,
        secret_key: str,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,
        path: str = "/",
        same_site: str = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
    ) -> None:
        cookie = create_cookie(
            session_cookie,
            secrets=[secret_key],
            max_age=max_age,
            path=path,
            same_site=same_site,  # type: ignore[arg-type]
            secure=https_only,
            domain=domain,
            partitioned=partitioned,
        )
        storage = create_memory_session_storage(cookie=cookie, rolling=False)
        super().__init__(app, storage)


_SHIM = "tests.integrations.test_starlette_suite"
_suite = patched_module(
    "starlette_session_suite",
    peer_source("starlette") / "tests" / "middleware" / "test_session.py",
    {
        "from starlette.middleware.sessions import Session, SessionMiddleware": (
            f"from {_SHIM} import Session, SessionMiddleware"
        ),
        "from tests.types import TestClientFactory": "from typing import Any as TestClientFactory",
        # The one change to Starlette's own views: its Session is a dict, which JSONResponse
        # serializes as it is; ours is a MutableMapping (it tracks changes), so `dict(...)`.
        # A known difference, stated in docs/frameworks/starlette.md.
        'JSONResponse({"session": request.session})': 'JSONResponse({"session": dict(request.session)})',
    },
)

for _name, _test in list(_suite.items()):
    if _name.startswith("test_") and callable(_test):
        if _name in EXCLUDED:
            _test = pytest.mark.skip(reason=f"excluded: {EXCLUDED[_name]}")(_test)
        globals()[_name] = _test


@pytest.fixture
def test_client_factory() -> Any:
    return functools.partial(TestClient)


__all__ = ["Session", "SessionMiddleware"]
