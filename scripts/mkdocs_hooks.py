"""MkDocs hooks (see mkdocs.yml).

- ``on_nav`` puts the automatic navigation in reading order. mkdocs.yml has no ``nav:``, so
  every page under docs/ shows up without editing a list; this hook only orders what it knows
  and appends the rest alphabetically. Pages added later by other areas (docs/stores/redis.md,
  docs/frameworks/flask.md, ...) appear on their own.
- ``on_page_content`` tidies what the docstrings' reStructuredText leaves in the API reference:
  roles such as :class:`~websession.Session` become plain code, ``Example::`` loses a colon.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):<code>([^<]*)</code>")
_LITERAL_INTRO = re.compile(r"<p>([^<]*?)::</p>")

#: Top-level pages and folders, in the order a reader needs them.
ORDER = [
    "index.md",
    "getting-started.md",
    "stores",
    "frameworks",
    "users.md",
    "migrating.md",
    "sharing-with-remix.md",
    "cli.md",
    "telemetry.md",
    "typed-sessions.md",
    "codecs.md",
    "security.md",
    "wire-format.md",
    "design.md",
    "performance.md",
    "reference.md",
    "contributing.md",
]

#: Inside a folder: its index first, then these stems, then the rest alphabetically.
FOLDER_ORDER = {
    "stores": [
        "index",
        "sqlite",
        "memory",
        "file",
        "cookie",
        "redis",
        "upstash",
        "memcache",
        "postgres",
        "dynamodb",
        "workers-kv",
        "custom",
    ],
}


def _key(item: Any) -> str:
    """The path an item stands for: a page's source file, or a section's folder."""
    file = getattr(item, "file", None)
    if file is not None:
        return str(file.src_uri)
    for child in getattr(item, "children", None) or []:
        key = _key(child)
        if key:
            return key.split("/")[0] if "/" in key else key
    return ""


def _ordered(items: list[Any], order: list[str], stem: bool = False) -> list[Any]:
    def rank(item: Any) -> tuple[int, str]:
        key = _key(item)
        name = key.rsplit("/", 1)[-1].removesuffix(".md") if stem else key
        return (order.index(name) if name in order else len(order), key)

    return sorted(items, key=rank)


def _pages(items: list[Any]) -> list[Any]:
    pages: list[Any] = []
    for item in items:
        if getattr(item, "file", None) is not None:
            pages.append(item)
        pages.extend(_pages(getattr(item, "children", None) or []))
    return pages


def on_nav(nav: Any, config: Any, files: Any) -> Any:
    nav.items = _ordered(nav.items, ORDER)
    for item in nav.items:
        children = getattr(item, "children", None)
        if children:
            folder = _key(item)
            item.children = _ordered(children, FOLDER_ORDER.get(folder, ["index"]), stem=True)
    # Previous/next links follow the new order.
    nav.pages = _pages(nav.items)
    for index, page in enumerate(nav.pages):
        page.previous_page = nav.pages[index - 1] if index else None
        page.next_page = nav.pages[index + 1] if index + 1 < len(nav.pages) else None
    return nav


def _role(match: re.Match[str]) -> str:
    """Sphinx's display rules: ``title <target>`` shows the title, ``~a.b.c`` shows ``c``."""
    text = match[1]
    if " &lt;" in text:
        text = text.split(" &lt;", 1)[0]
    elif text.startswith("~"):
        text = text.rsplit(".", 1)[-1]
    return f"<code>{text}</code>"


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    html = _ROLE.sub(_role, html)
    return _LITERAL_INTRO.sub(r"<p>\1:</p>", html)
