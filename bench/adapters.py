"""How the bench plugs websession into ASGI and Flask.

It uses :mod:`websession.integrations` when that package is there. Before it landed, the bench
drove websession through the small adapters below (the same calls the real middleware makes:
``aget_session`` before the app, ``acommit_session`` when the response starts), so the
harness could be built and checked against the anchors first.
"""

from __future__ import annotations

from typing import Any

from .drive import ASGIApp, Message, Scope


def asgi_middleware(app: ASGIApp, storage: Any) -> tuple[ASGIApp, str]:
    """Wrap ``app`` in websession's ASGI middleware; say which one was used."""
    try:
        from websession.integrations.asgi import SessionMiddleware
    except ImportError:
        return InlineAsgiSessions(app, storage), "inline adapter"
    return SessionMiddleware(app, storage=storage), "websession.integrations.asgi"


def flask_interface(storage: Any) -> tuple[Any, str]:
    """websession's Flask ``SessionInterface`` over ``storage``; say which one was used."""
    try:
        from websession.integrations.flask import SessionInterface
    except ImportError:
        return _inline_flask_interface(storage), "inline adapter"
    return SessionInterface(storage), "websession.integrations.flask"


class InlineAsgiSessions:
    """The least an ASGI session middleware over the storage API must do."""

    def __init__(self, app: ASGIApp, storage: Any) -> None:
        self.app = app
        self.storage = storage

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                header = value
                break
        session = await self.storage.aget_session(header)
        scope["session"] = session
        storage = self.storage

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_cookie = await storage.acommit_session(session)
                if set_cookie is not None:
                    message = dict(message)
                    message["headers"] = [
                        *message.get("headers", ()),
                        (b"set-cookie", set_cookie.encode("latin-1")),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _inline_flask_interface(storage: Any) -> Any:
    from flask.sessions import SessionInterface, SessionMixin

    from websession.session import Session

    class InlineFlaskSession(Session, SessionMixin):  # type: ignore[misc]
        pass

    class InlineFlaskInterface(SessionInterface):
        def open_session(self, app: Any, request: Any) -> Any:
            found = storage.get_session(request.headers.get("Cookie"))
            session = InlineFlaskSession.__new__(InlineFlaskSession)
            for slot in Session.__slots__:
                object.__setattr__(session, slot, getattr(found, slot))
            return session

        def save_session(self, app: Any, session: Any, response: Any) -> None:
            set_cookie = storage.commit_session(session)
            if set_cookie is not None:
                response.headers.add("Set-Cookie", set_cookie)

    return InlineFlaskInterface()
