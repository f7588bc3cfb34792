"""FastAPI: typed dependencies over :class:`~websession.integrations.asgi.SessionMiddleware`.

``request.session`` already works once the middleware is installed, but it is typed as a
plain dict. ``SessionDep`` gives the endpoint a :class:`~websession.Session`, with ``flash``,
``regenerate`` and ``destroy`` known to the type checker, in HTTP and WebSocket endpoints alike.
With ``SessionMiddleware(..., lazy=True)``, ``SessionDep`` is also what loads the session (an
async dependency, so sync and async endpoints alike get it loaded); endpoints that do not ask
for it never reach the store.

Example::

    >>> from fastapi import FastAPI
    >>> from fastapi.testclient import TestClient
    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    >>> app = FastAPI()
    >>> app.add_middleware(SessionMiddleware, storage=storage)
    >>> @app.post("/login")
    ... def login(session: SessionDep) -> dict[str, str]:
    ...     session.regenerate()
    ...     session["user"] = "ada"
    ...     return {"user": session["user"]}
    >>> @app.get("/me")
    ... def me(session: SessionDep) -> dict[str, str | None]:
    ...     return {"user": session.get("user")}
    >>> with TestClient(app) as client:
    ...     client.post("/login").json(), client.get("/me").json()
    ({'user': 'ada'}, {'user': 'ada'})
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from ..errors import ConfigurationError
from ..session import Session
from ._shared import AnyStorage
from .asgi import _SOLUTION, STORAGE_SCOPE_KEY, SessionMiddleware, load_session


async def get_session(connection: HTTPConnection) -> Session:
    """The request's :class:`~websession.Session`, loaded (a FastAPI dependency).

    Raises :class:`~websession.errors.ConfigurationError` when the middleware is missing.
    """
    return await load_session(connection)


def get_storage(connection: HTTPConnection) -> AnyStorage:
    """The storage the middleware uses (a FastAPI dependency), e.g. to inspect records."""
    storage = connection.scope.get(STORAGE_SCOPE_KEY)
    if storage is None:
        raise ConfigurationError("no websession storage in this request", solution=_SOLUTION)
    return storage  # type: ignore[no-any-return]


#: ``def endpoint(session: SessionDep)``: the request's session, typed.
SessionDep = Annotated[Session, Depends(get_session)]

#: ``def endpoint(storage: StorageDep)``: the middleware's storage.
StorageDep = Annotated[AnyStorage, Depends(get_storage)]

__all__ = ["SessionDep", "SessionMiddleware", "StorageDep", "get_session", "get_storage"]
