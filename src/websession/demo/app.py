"""The demo application: a small Starlette app over any websession storage.

Sign in and out (the id is regenerated at sign-in), a flash message that shows once, a visit
counter, a cart, an inspector that shows the session's id, expiry and stored record, and "your
devices": the user's sessions, each of which can be signed out from any other.

Example::

    >>> from starlette.testclient import TestClient
    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("__session", secrets=["k"]))
    >>> with TestClient(create_app(storage, "memory://")) as client:
    ...     client.post("/login", data={"username": "ada"}).status_code
    ...     'Signed in as <strong id="user">ada</strong>' in client.get("/").text
    200
    True
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import codec
from ..cookie import find_cookie
from ..integrations._shared import AnyStorage
from ..integrations.asgi import SessionMiddleware
from ..session import Session
from ..storage import SessionStorage
from . import templates

logger = logging.getLogger("websession.demo")

#: What the cart offers.
PRODUCTS = ("Tea", "Coffee", "Cake")
_MAX_NAME = 40


def create_app(storage: AnyStorage, store_label: str) -> Starlette:
    """The demo as a Starlette app over ``storage``; ``store_label`` names the store on pages."""

    def session_of(request: Request) -> Session:
        session: Session = request.scope["session"]
        return session

    def render(title: str, body: str, here: str = "/") -> HTMLResponse:
        return HTMLResponse(templates.page(title, body, store=store_label, here=here))

    def back_home() -> RedirectResponse:
        # 303: the browser follows with a GET, so a reload never re-posts the form.
        return RedirectResponse("/", status_code=303)

    async def home(request: Request) -> HTMLResponse:
        session = session_of(request)
        session["visits"] = int(session.get("visits", 0)) + 1
        cart = session.get("cart", {})
        body = templates.home(
            notice=session.get("notice"),
            user=session.get("user"),
            visits=session["visits"],
            cart=cart if isinstance(cart, dict) else {},
            products=PRODUCTS,
        )
        return render("Home", body)

    async def login(request: Request) -> Response:
        form = await request.form()
        name = str(form.get("username", "")).strip()[:_MAX_NAME] or "guest"
        session = session_of(request)
        if keeps_devices:
            # A new id, the user recorded, and this browser added to the user's devices.
            session.login(name, labels={"device": _device(request)})
        else:
            session.regenerate()
        session["user"] = name
        session.flash("notice", f"Welcome, {name}! Your session moved to a new id when you signed in.")
        return back_home()

    async def logout(request: Request) -> Response:
        session = session_of(request)
        session.clear()
        session.regenerate()  # the old record is deleted; the goodbye lives in a new session
        session.flash("notice", "Signed out. The old session record is gone, so the old cookie is worthless.")
        return back_home()

    async def devices(request: Request) -> Response:
        session = session_of(request)
        user = session.user
        if not keeps_devices or user is None:
            return render("Your devices", templates.devices_unavailable(keeps_devices), "/devices")
        assert isinstance(storage, SessionStorage)
        current = storage.store.storage_key(session.id) if session.id else None
        listed = await storage.asessions_of(user)
        return render(
            "Your devices",
            templates.devices(user, listed, current, session.get("notice"), storage.clock()),
            "/devices",
        )

    async def revoke_device(request: Request) -> Response:
        form = await request.form()
        session = session_of(request)
        user = session.user
        if user is not None and isinstance(storage, SessionStorage):
            key = str(form.get("key", ""))
            # Only a device of the signed-in user: a form cannot sign anyone else out.
            for device in await storage.asessions_of(user):
                if device.key == key:
                    await storage.arevoke(device, user=user)
                    session.flash("notice", "That device is signed out.")
        return RedirectResponse("/devices", status_code=303)

    async def revoke_others(request: Request) -> Response:
        session = session_of(request)
        user = session.user
        if user is not None and isinstance(storage, SessionStorage):
            count = await storage.arevoke_user(user, keep=session)
            session.flash("notice", f"Signed out everywhere else ({count} other device{'s' * (count != 1)}).")
        return RedirectResponse("/devices", status_code=303)

    async def forget(request: Request) -> Response:
        session_of(request).destroy()
        return back_home()

    async def add_to_cart(request: Request) -> Response:
        form = await request.form()
        item = str(form.get("item", ""))
        if item not in PRODUCTS:
            return PlainTextResponse("unknown product", status_code=400)
        session = session_of(request)
        cart = dict(session.get("cart", {}))
        cart[item] = int(cart.get(item, 0)) + 1
        session["cart"] = cart
        return back_home()

    async def clear_cart(request: Request) -> Response:
        session_of(request).unset("cart")
        return back_home()

    async def inspect(request: Request) -> HTMLResponse:
        session = session_of(request)
        raw_cookie = find_cookie(request.headers.get("cookie"), storage.cookie.name)
        record_text, expires = await _stored(storage, session)
        session_rows = [
            ("id", f"<code>{templates.esc(_short(session.id))}</code>" if session.id else "none yet"),
            ("new", "yes" if session.is_new else "no"),
            ("expires", templates.esc(_when(expires))),
            ("store", f"<code>{templates.esc(store_label)}</code>"),
            ("keys", templates.esc(", ".join(sorted(session)) or "none")),
        ]
        cookie_rows = _cookie_rows(storage, raw_cookie)
        return render(
            "Session",
            templates.inspector(session_rows=session_rows, cookie_rows=cookie_rows, record=record_text),
            "/session",
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if isinstance(storage, SessionStorage):
            try:
                purged = await asyncio.to_thread(storage.store.purge_expired)
            except Exception as exc:  # the demo still starts; the store may be down right now
                logger.warning("could not purge expired sessions: %s", exc)
            else:
                if purged:
                    logger.info("purged %d expired sessions", purged)
        try:
            yield
        finally:
            await storage.aclose()

    keeps_devices = isinstance(storage, SessionStorage) and storage.store.user_index
    routes = [
        Route("/", home),
        Route("/devices", devices),
        Route("/devices/revoke", revoke_device, methods=["POST"]),
        Route("/devices/revoke-others", revoke_others, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/forget", forget, methods=["POST"]),
        Route("/cart/add", add_to_cart, methods=["POST"]),
        Route("/cart/clear", clear_cart, methods=["POST"]),
        Route("/session", inspect),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(SessionMiddleware, storage=storage)], lifespan=lifespan
    )


async def _stored(storage: AnyStorage, session: Session) -> tuple[str | None, datetime | None]:
    """The stored record as pretty JSON and its expiry; for cookie storage, the cookie's data."""
    if not isinstance(storage, SessionStorage):
        data = session.record.data if session.record is not None else None
        return (None if data is None else json.dumps(data, indent=2, ensure_ascii=False)), None
    if session.id is None:
        return None, None
    record = await storage.store.aread(session.id, None)
    if record is None:
        return None, None
    return json.dumps(json.loads(codec.dumps(record.data)), indent=2, ensure_ascii=False), record.expires


def _cookie_rows(storage: AnyStorage, raw: str | None) -> list[tuple[str, str]]:
    esc = templates.esc
    rows = [("name", f"<code>{esc(storage.cookie.name)}</code>")]
    if not raw:
        return [*rows, ("value", "not set yet")]
    payload, _, signature = raw.rpartition(".") if storage.cookie.is_signed else (raw, "", "")
    try:
        decoded = base64.b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except ValueError:
        decoded = "(not readable)"
    what = "the JSON of the id" if isinstance(storage, SessionStorage) else "the JSON of the data"
    rows += [
        ("value", f"<code>{esc(_short(raw, 12))}</code>"),
        ("payload", f"base64 of <code>{esc(_short(decoded, 10))}</code> ({what})"),
    ]
    if signature:
        rows.append(("signature", f"HMAC-SHA256 <code>{esc(_short(signature, 12))}</code>"))
    verified = storage.cookie.read(f"{storage.cookie.name}={raw}")
    rows.append(("verifies", "yes" if verified is not None else "no: a fresh session was started"))
    return rows


def _device(request: Request) -> str:
    """A device label from the user agent: what a person recognises in a list of devices."""
    agent = request.headers.get("user-agent", "")
    browser = next((name for name in ("Firefox", "Edg", "Chrome", "Safari") if name in agent), "a browser")
    system = next(
        (name for name in ("Windows", "Mac OS", "Android", "iPhone", "Linux") if name in agent), "a computer"
    )
    return f"{'Edge' if browser == 'Edg' else browser} on {system}"


def _short(value: Any, keep: int = 8) -> str:
    """``abcdefghijkl`` -> ``abcdefgh…``: enough to recognise, not enough to steal."""
    text = str(value)
    return text if len(text) <= keep else f"{text[:keep]}…"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never (or when the browser closes)"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


__all__ = ["PRODUCTS", "create_app"]
