"""Root fixtures. Server fixtures live in tests/servers/, one module per server, loaded here
as plugins, so each store's tests find the server they need by fixture name."""

from __future__ import annotations

import pathlib

import pytest

from tests.timing import restart_test_watch

pytest_plugins = sorted(
    f"tests.servers.{path.stem}"
    for path in (pathlib.Path(__file__).parent / "servers").glob("*.py")
    if path.stem != "__init__"
)


@pytest.fixture(autouse=True)
def _test_watch() -> None:
    """Restart the wall-time budget that server-clock checks allow (tests/timing.py)."""
    restart_test_watch()
