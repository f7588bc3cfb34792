"""Root fixtures. Server fixtures live in tests/servers/, one module per server, loaded here
as plugins, so each store's tests find the server they need by fixture name."""

from __future__ import annotations

import pathlib

pytest_plugins = sorted(
    f"tests.servers.{path.stem}"
    for path in (pathlib.Path(__file__).parent / "servers").glob("*.py")
    if path.stem != "__init__"
)
