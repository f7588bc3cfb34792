"""Run servers as real processes on free ports for tests: the demo, the examples."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def server_process(
    command: list[str], port: int, log: Path, env: dict[str, str | None] | None = None
) -> Iterator[str]:
    """Start ``command`` (which listens on ``port``) with this checkout's src on PYTHONPATH;
    yield its base URL once it accepts connections; stop it afterwards. ``env`` entries set
    variables, or remove them when None."""
    environ = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environ, cwd=log.parent
        )
        try:
            deadline = time.monotonic() + 60
            while not _accepting(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{' '.join(command)} did not start:\n{log.read_text()}")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def demo_process(directory: Path, *args: str) -> Iterator[str]:
    """Run `python -m websession demo` the way the README does; yield its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "websession",
        "demo",
        "--port",
        str(port),
        "--dir",
        str(directory),
        *args,
    ]
    log = directory.parent / f"demo-{port}.log"
    with server_process(command, port, log, env={"WEBSESSION_SECRET": None}) as base:
        yield base
