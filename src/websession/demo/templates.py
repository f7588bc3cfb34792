"""The demo's pages: plain server-rendered HTML and one small stylesheet, no JavaScript.

Every value that came from a visitor or a store passes through :func:`html.escape` here.

Example::

    >>> "&lt;b&gt;" in page("t", "<p>" + esc("<b>") + "</p>", store="memory")
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

STYLE = """
:root { --ink: #1d2433; --muted: #5b6475; --line: #e3e6ed; --bg: #f6f7fb; --card: #fff;
        --accent: #3b5bdb; --accent-ink: #fff; --ok: #e6f4ea; --ok-ink: #1e6b35; --code: #f1f3f8; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: var(--ink); color: #fff; }
header .bar { max-width: 960px; margin: 0 auto; padding: 14px 20px; display: flex; gap: 24px;
       align-items: center; }
header .brand { font-weight: 700; letter-spacing: .2px; }
header nav a { color: #cfd6e6; text-decoration: none; margin-right: 16px; }
header nav a:hover, header nav a.here { color: #fff; }
main { max-width: 960px; margin: 24px auto; padding: 0 20px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(270px, 1fr)); gap: 18px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 18px 20px; }
.card h2 { margin: 0 0 10px; font-size: 15px; text-transform: uppercase; letter-spacing: .6px;
       color: var(--muted); }
.big { font-size: 44px; font-weight: 700; line-height: 1.1; }
.muted { color: var(--muted); font-size: 14px; }
.notice { background: var(--ok); color: var(--ok-ink); border-radius: 10px; padding: 12px 16px;
       margin-bottom: 18px;
          border: 1px solid #bfe3c9; }
form { margin: 0; }
form.inline { display: inline; }
input[type=text] { font: inherit; padding: 8px 10px; border: 1px solid var(--line); border-radius: 8px;
       width: 100%;
                   margin-bottom: 10px; }
button { font: inherit; cursor: pointer; border-radius: 8px; padding: 8px 14px;
       border: 1px solid var(--accent);
         background: var(--accent); color: var(--accent-ink); }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: #b42318; border-color: #f1b5ae; }
.products { display: flex; gap: 8px; flex-wrap: wrap; margin: 10px 0; }
ul.cart { list-style: none; padding: 0; margin: 0 0 10px; }
ul.cart li { display: flex; justify-content: space-between; border-bottom: 1px dashed var(--line);
       padding: 4px 0; }
table.facts { border-collapse: collapse; width: 100%; }
table.facts th { text-align: left; color: var(--muted); font-weight: 500; width: 28%; vertical-align: top;
                 padding: 6px 12px 6px 0; white-space: nowrap; }
table.facts td code { word-break: break-all; }
table.facts td { padding: 6px 0; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13.5px; }
code { background: var(--code); padding: 1px 5px; border-radius: 5px; }
pre { background: var(--code); padding: 12px 14px; border-radius: 8px; overflow-x: auto;
       margin: 6px 0 0; }
footer { max-width: 960px; margin: 30px auto; padding: 0 20px; color: var(--muted); font-size: 13px; }
"""

FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='4' fill='%233b5bdb'/%3E%3C/svg%3E"
)


def esc(value: object) -> str:
    """HTML-escape any value for text or attribute use.

    Example::

        >>> esc('<a href="x">')
        '&lt;a href=&quot;x&quot;&gt;'
    """
    return escape(str(value), quote=True)


def page(title: str, body: str, *, store: str, here: str = "/") -> str:
    """A whole HTML page around ``body`` (already escaped HTML)."""
    links = [("/", "Home"), ("/devices", "Your devices"), ("/session", "Inspect the session")]
    nav = "".join(
        f'<a href="{href}"{" class=here" if href == here else ""}>{label}</a>' for href, label in links
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · websession demo</title>
<link rel="icon" href="{FAVICON}">
<style>{STYLE}</style>
</head>
<body>
<header><div class="bar"><span class="brand">websession demo</span><nav>{nav}</nav></div></header>
<main>
{body}
</main>
<footer>Sessions are kept in <code>{esc(store)}</code>. The browser holds only a signed cookie with the
session id. Open the session inspector to see the stored record.</footer>
</body>
</html>
"""


def notice_banner(notice: object) -> str:
    """The flash message, shown once."""
    if notice is None:
        return ""
    return f'<div class="notice" id="notice" role="status">{esc(notice)}</div>'


def account_card(user: object) -> str:
    if user is None:
        return """<section class="card" id="account"><h2>Account</h2>
<form method="post" action="/login">
<input type="text" name="username" placeholder="Your name, e.g. ada" maxlength="40" required autofocus>
<button type="submit" id="sign-in">Sign in</button>
</form>
<p class="muted">No password: this shows the session, not auth. Signing in moves the session to a
new id, so an id planted before sign-in is worthless (session fixation).</p></section>"""
    return f"""<section class="card" id="account"><h2>Account</h2>
<p>Signed in as <strong id="user">{esc(user)}</strong>.</p>
<form method="post" action="/logout">
<button type="submit" class="secondary" id="sign-out">Sign out</button>
</form>
<p class="muted">Signing out deletes this session's record and starts a new one for the goodbye
message, so the old cookie no longer works anywhere.</p></section>"""


def visits_card(visits: int) -> str:
    times = "time" if visits == 1 else "times"
    return f"""<section class="card"><h2>Visits</h2>
<div class="big" id="visits">{visits}</div>
<p class="muted">This browser has opened the home page {visits} {times}. Each visit changes one key,
and only that change is written.</p></section>"""


def cart_card(cart: Mapping[str, int], products: tuple[str, ...]) -> str:
    if cart:
        rows = "".join(
            f"<li><span>{esc(item)}</span><span>&times; {esc(count)}</span></li>"
            for item, count in cart.items()
        )
        items = f'<ul class="cart" id="cart">{rows}</ul>'
        clear = (
            '<form method="post" action="/cart/clear">'
            '<button class="danger" type="submit">Empty the cart</button></form>'
        )
    else:
        items = '<p class="muted" id="cart">Your cart is empty.</p>'
        clear = ""
    buttons = "".join(
        '<form class="inline" method="post" action="/cart/add">'
        f'<input type="hidden" name="item" value="{esc(p)}">'
        f'<button class="secondary" type="submit" id="add-{esc(p.lower())}">Add {esc(p)}</button></form>'
        for p in products
    )
    return f'<section class="card"><h2>Cart</h2>{items}<div class="products">{buttons}</div>{clear}</section>'


def home(
    *, notice: object, user: object, visits: int, cart: Mapping[str, int], products: tuple[str, ...]
) -> str:
    """The body of the home page."""
    return (
        notice_banner(notice)
        + '<div class="grid">'
        + account_card(user)
        + visits_card(visits)
        + cart_card(cart, products)
        + "</div>"
    )


def facts(rows: list[tuple[str, str]]) -> str:
    """A two-column table; values are HTML already."""
    body = "".join(f"<tr><th>{esc(name)}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<table class="facts">{body}</table>'


def inspector(
    *, session_rows: list[tuple[str, str]], cookie_rows: list[tuple[str, str]], record: str | None
) -> str:
    """The body of the session inspector page."""
    stored = (
        f'<pre id="record">{esc(record)}</pre>'
        if record is not None
        else '<p class="muted" id="record">Nothing is stored for this browser yet.</p>'
    )
    return f"""<div class="grid">
<section class="card"><h2>Session</h2>{facts(session_rows)}</section>
<section class="card"><h2>Cookie</h2>{facts(cookie_rows)}</section>
</div>
<section class="card" style="margin-top:18px"><h2>Stored record</h2>
<p class="muted">The JSON the store holds for this session, pretty-printed. Flash messages live under
<code>__flash_&lt;name&gt;__</code> keys until they are read.</p>{stored}
<form method="post" action="/forget" style="margin-top:14px">
<button class="danger" type="submit" id="forget">Forget me (destroy the session)</button></form>
</section>"""


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def devices(user: str, listed: Sequence[Any], current: str | None, notice: object, now: datetime) -> str:
    """The "your devices" page: each session of ``user``, with a sign-out button for the others."""
    rows = []
    for index, device in enumerate(listed):
        here = device.key == current
        action = (
            '<span class="muted">this browser</span>'
            if here
            else '<form method="post" action="/devices/revoke">'
            f'<input type="hidden" name="key" value="{esc(device.key)}">'
            f'<button class="danger" type="submit" id="revoke-{index}">Sign out</button></form>'
        )
        label = device.labels.get("device", "a device")
        rows.append(
            f'<tr class="device{" current" if here else ""}"><td>{esc(label)}</td>'
            f"<td>{esc(_ago(device.created, now))}</td><td>{esc(_ago(device.last_seen, now))}</td>"
            f"<td>{action}</td></tr>"
        )
    others = (
        '<form method="post" action="/devices/revoke-others" style="margin-top:14px">'
        '<button class="danger" type="submit" id="revoke-others">Sign out everywhere else</button></form>'
        if len(listed) > 1
        else ""
    )
    return f"""{notice_banner(notice)}<section class="card" id="devices"><h2>Devices of {esc(user)}</h2>
<table class="facts"><tr><th>device</th><th>signed in</th><th>last seen</th><th></th></tr>
{"".join(rows)}</table>
{others}
<p class="muted">Each row is a session in the store, listed from {esc(user)}'s index: no scan of the
store. Signing one out deletes its record, so that browser is signed out at its next request.</p></section>"""


def devices_unavailable(keeps_devices: bool) -> str:
    """The devices page when nobody is signed in, or the store keeps no user index."""
    why = (
        "Sign in on the home page first, then open this page in another browser too."
        if keeps_devices
        else "This store cannot keep a per-user index (memcached, Workers KV, cookie storage)."
    )
    return (
        f'<section class="card" id="devices"><h2>Your devices</h2><p class="muted">{esc(why)}</p></section>'
    )
