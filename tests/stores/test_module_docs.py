"""Every module of a backend says, from its own side, what its server guarantees and what it
does not, and stays under 400 lines (issue 14, item 4)."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

STORES = pathlib.Path(__file__).resolve().parents[2] / "src" / "websession" / "stores"
#: The backends checked here; the others join as their own packages settle.
PACKAGES = ("sqlite", "file", "memcache", "workers_kv")
MODULES = sorted(path for package in PACKAGES for path in (STORES / package).glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_each_backend_module_says_what_is_guaranteed_and_what_is_not(path: pathlib.Path) -> None:
    text = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert re.search(r"\bguarantees?\b", doc), "no word of what the server guarantees"
    assert re.search(r"\bWhat\s+(it|they)\s+do(es)?\s+not\b", doc), "no word of what it does not"
    assert len(text.splitlines()) < 400
