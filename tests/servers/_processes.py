"""Helpers for server fixtures that run a server binary of their own on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ServerProcess:
    """A server binary this test run owns, on one port for its whole life: start, stop, restart."""

    #: The binary's name, looked up on PATH.
    binary_name = ""

    def __init__(self) -> None:
        binary = shutil.which(self.binary_name)
        if binary is None:
            pytest.fail(
                f"{self.binary_name} is not installed; run `python3 scripts/test.py`, which installs it"
            )
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"websession-{self.binary_name}-")
        self.process: subprocess.Popen[bytes] | None = None

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def start(self, seconds: float = 10.0) -> ServerProcess:
        self.process = subprocess.Popen(
            [self.binary, *self.arguments()], cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + seconds
        while not port_open(self.port):
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                pytest.fail(f"{self.binary_name} exited at start (code {self.process.returncode}): {error}")
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"{self.binary_name} did not listen on port {self.port} within {seconds:g}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            if process.stderr is not None:
                process.stderr.close()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
