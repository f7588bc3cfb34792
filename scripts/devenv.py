"""Shared by scripts/test.py and scripts/demo.py: the virtual environment and the services."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")

#: Debian packages that provide the servers and tools the tests start themselves.
APT_PACKAGES = {
    "memcached": "memcached",
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",  # redis-cli --cluster create, for the Redis Cluster fixture
    "node": "nodejs",
    "npm": "npm",  # Debian's nodejs does not ship npm; tests/interop needs `npm ci`
    # The browser test drives Debian's chromium through Playwright (no `playwright install`).
    "chromium": "chromium",
    "wrk": "wrk",  # the HTTP runs of `python -m bench` (a Python load generator stands in without it)
}


def run(command: list[str], *, check: bool = True, cwd: str | None = None) -> int:
    print("+", " ".join(command), flush=True)
    code = subprocess.call(command, cwd=cwd or ROOT)
    if check and code != 0:
        sys.exit(code)
    return code


def ensure_venv(extras: str) -> str:
    """Create .venv when missing and install websession[extras] when pyproject changed."""
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    hasher = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        with open(os.path.join(ROOT, name), "rb") as handle:
            hasher.update(handle.read())
    digest = hasher.hexdigest()[:16]
    stamp = os.path.join(VENV, f".installed-{extras}-{digest}")
    if not os.path.exists(stamp):
        run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
        # constraints.txt pins a set of versions known to work together, so installs are
        # reproducible and pip never has to backtrack through old releases.
        run([python, "-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", f".[{extras}]"])
        open(stamp, "w").close()
    return python


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        time.sleep(0.2)
    return False


def apt_install(packages: list[str]) -> None:
    if not packages:
        return
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("+ apt-get install", *packages, flush=True)
    subprocess.call([*prefix, "apt-get", "update", "-qq"], env=env)
    code = subprocess.call([*prefix, "apt-get", "install", "-y", "-qq", *packages], env=env)
    if code != 0:
        sys.exit(f"could not install {packages}; install them and run again")


def ensure_services() -> None:
    """Install the server binaries the tests start, and start the shared Redis and
    PostgreSQL when they are down. Tests start their own memcached, Redis Cluster and mock
    servers on free ports."""
    apt_install([pkg for binary, pkg in APT_PACKAGES.items() if shutil.which(binary) is None])
    if not port_open(6379):
        subprocess.call(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        )
        if not wait_for_port(6379):
            sys.exit("Redis is not running on 127.0.0.1:6379 and could not be started")
    if not port_open(5432) and os.path.isdir("/etc/postgresql"):
        for version in os.listdir("/etc/postgresql"):
            subprocess.call(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
        wait_for_port(5432)
    ensure_node_projects()


def ensure_node_projects() -> None:
    """`npm ci` every Node project under tests/ (the real npm packages for interop tests)."""
    for folder, dirs, files in os.walk(os.path.join(ROOT, "tests")):
        dirs[:] = [d for d in dirs if d != "node_modules"]
        if "package-lock.json" in files and not os.path.isdir(os.path.join(folder, "node_modules")):
            npm = shutil.which("npm") or sys.exit("npm is needed for the interop tests")
            run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder)
