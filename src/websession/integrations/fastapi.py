"""FastAPI: typed dependencies over :class:`~websession.integrations.asgi.SessionMiddleware`.

``request.session`` already works once the middleware is installed, but it is typed as a
plain dict. ``SessionDep`` gives the endpoint a :class:`~websession.Session`, with ``flash``,
``regenerate`` and ``destroy`` known to the type checker, in HTTP and WebSocket endpoints alike.
With ``SessionMiddleware(..., lazy=True)``, ``SessionDep`` is also what loads the session (an
async dependency, so sync and async endpoints alike get it loaded); endpoints that do not ask
for it never reach the store. ``WebSocketSessionDep`` gives a WebSocket endpoint its session
with ``await session.commit()``.

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
from .asgi import _SOLUTION, STORAGE_SCOPE_KEY, SessionMiddleware, WebSocketSession, load_session


async def get_session(connection: HTTPConnection) -> Session:
    """The request's :class:`~websession.Session`, loaded (a FastAPI dependency).

    Raises :class:`~websession.errors.ConfigurationError` when the middleware is missing.
    """
    return await load_session(connection)


def get_websocket_session(connection: HTTPConnection) -> WebSocketSession:
    """The WebSocket's :class:`~websession.integrations.asgi.WebSocketSession`, with
    ``await session.commit()`` (a FastAPI dependency for WebSocket endpoints).

    Raises :class:`~websession.errors.ConfigurationError` when the middleware is missing or
    the endpoint is not a WebSocket.
    """
    session = connection.scope.get("session")
    if not isinstance(session, WebSocketSession):
        raise ConfigurationError(
            "no websession WebSocket session in this connection (is it a WebSocket endpoint?)",
            solution=_SOLUTION,
        )
    return session


def get_storage(connection: HTTPConnection) -> AnyStorage:
    """The storage the middleware uses (a FastAPI dependency), e.g. to inspect records."""
    storage = connection.scope.get(STORAGE_SCOPE_KEY)
    if storage is None:
        raise ConfigurationError("no websession storage in this request", solution=_SOLUTION)
    return storage  # type: ignore[no-any-return]


#: ``def endpoint(session: SessionDep)``: the request's session, typed.
SessionDep = Annotated[Session, Depends(get_session)]

#: ``async def endpoint(websocket: WebSocket, session: WebSocketSessionDep)``: the socket's
#: session, typed with ``commit()``.
WebSocketSessionDep = Annotated[WebSocketSession, Depends(get_websocket_session)]

#: ``def endpoint(storage: StorageDep)``: the middleware's storage.
StorageDep = Annotated[AnyStorage, Depends(get_storage)]

__all__ = [
    "SessionDep",
    "SessionMiddleware",
    "StorageDep",
    "WebSocketSessionDep",
    "get_session",
    "get_storage",
    "get_websocket_session",
]
