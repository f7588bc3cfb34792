"""The peers' own test suites, fetched at test time from their source distributions.

Drop-in claims are judged by the suites of the libraries users migrate from (Django's
``sessions_tests``, Starlette's and Flask's session tests). Like the npm packages of the
interop tests, their sources are not committed: the version pinned in constraints.txt is
downloaded once with pip into ``.cache/peers/`` (git-ignored) and reused. A failed download is
an error that says what to do, never a skip.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "peers"


def pinned(project: str) -> str:
    """The version of ``project`` that constraints.txt pins."""
    text = (ROOT / "constraints.txt").read_text()
    found = re.search(rf"(?im)^{re.escape(project)}==([^\s;]+)", text)
    if found is None:
        raise RuntimeError(f"constraints.txt pins no {project}")
    return found.group(1)


def peer_source(project: str) -> Path:
    """The unpacked sdist of the pinned ``project``: downloaded on first use."""
    version = pinned(project)
    marker = CACHE / f"{project.lower()}-{version}.unpacked"
    target = CACHE / f"{project.lower()}-{version}"
    if not marker.exists():
        _fetch(project, version, target)
        marker.write_text(version)
    return target


def _fetch(project: str, version: str, target: Path) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", f"{project}=={version}", "--dest", scratch,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        archives = list(Path(scratch).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError(
                f"could not download the {project} {version} sdist for its test suite "
                f"(PyPI must be reachable; run `python3 scripts/test.py`): {done.stderr.strip()[-500:]}"
            )
        with tarfile.open(archives[0]) as archive:
            archive.extractall(scratch, filter="data")
        unpacked = next(p for p in Path(scratch).iterdir() if p.is_dir())
        if target.exists():
            import shutil

            shutil.rmtree(target)
        unpacked.rename(target)


def patched_module(name: str, path: Path, replacements: dict[str, str]) -> dict[str, object]:
    """Execute a peer's test file with some import lines replaced (the shim) and return its
    namespace; every replacement must match, so an upstream change fails loudly."""
    source = path.read_text()
    for old, new in replacements.items():
        if old not in source:
            raise RuntimeError(f"{path.name} no longer contains {old!r}: update the shim")
        source = source.replace(old, new)
    namespace: dict[str, object] = {"__name__": name, "__file__": str(path)}
    exec(compile(source, str(path), "exec"), namespace)  # the peer's own test code, patched
    return namespace
