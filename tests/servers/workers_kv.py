"""A local server for Cloudflare's Workers KV REST API, backed by Miniflare's KV implementation.

tests/interop-kv/server.mjs runs Miniflare (the simulator behind ``wrangler dev``) and answers
the REST endpoints the store uses; KV's own rules (the 60-second minimum expiration, metadata,
size limits) come from Miniflare, not from a re-implementation. `scripts/test.py` installs it
with ``npm ci``; the session fixture starts it on a free loopback port.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

KV_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "interop-kv")


@dataclass(frozen=True)
class KVServer:
    """Where the local KV REST server listens and the credentials it accepts."""

    port: int
    account_id: str
    namespace_id: str
    api_token: str

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    @property
    def base_url(self) -> str:
        return f"{self.api_root}/accounts/{self.account_id}/storage/kv/namespaces/{self.namespace_id}"


@pytest.fixture(scope="session")
def kv_server() -> Iterator[KVServer]:
    """The Miniflare-backed KV REST server for this test run; an error when it cannot start."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is needed for the Workers KV tests; run `python3 scripts/test.py`, which installs it"
        )
    if not os.path.isdir(os.path.join(KV_DIR, "node_modules", "miniflare")):
        pytest.fail(f"Miniflare is not installed; run `npm ci` in {KV_DIR} (scripts/test.py does)")
    server = KVServer(0, "test-account", f"ns-{secrets.token_hex(4)}", secrets.token_hex(16))
    env = {
        **os.environ,
        "KV_ACCOUNT_ID": server.account_id,
        "KV_NAMESPACE_ID": server.namespace_id,
        "KV_API_TOKEN": server.api_token,
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [node, "server.mjs", "0"], cwd=KV_DIR, env=env, stdout=subprocess.PIPE, stderr=log
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(process.stdout.fileno(), 100)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"listening "):
            log.seek(0)
            pytest.fail(
                f"the KV server did not start: {line!r} {log.read().decode(errors='replace')[-2000:]}"
            )
        yield KVServer(int(line.split()[1]), server.account_id, server.namespace_id, server.api_token)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
