"""Store cases for the conformance suite. Each module here defines ``CASES``; a new store
joins the suite by adding a module, without editing the tests."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ..harness import Options


@dataclass(frozen=True)
class StoreCase:
    """How to build one store's storage for a test.

    ``make(request, options)`` returns a storage; it may use pytest fixtures through
    ``request`` and register clean-up with ``request.addfinalizer``.
    """

    name: str
    make: Callable[[pytest.FixtureRequest, Options], Any]
    #: The store checks expiry with the clock it is given (else it relies on server TTLs).
    fake_clock: bool = True
    #: Data lives in a server-side store (False for cookie storage).
    server_side: bool = True
    marks: tuple[Any, ...] = ()


def ttl_option(options: Options, name: str = "ttl") -> dict[str, Any]:
    """The factory keyword for ``options.ttl``, and nothing when the test gives none: some
    factories read a None ``ttl`` as "no lifetime of the store's own"."""
    return {} if options.ttl is None else {name: options.ttl}


def all_cases() -> list[StoreCase]:
    cases: list[StoreCase] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        cases.extend(getattr(module, "CASES", []))
    return cases
