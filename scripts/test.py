#!/usr/bin/env python3
"""Run websession's whole test suite: `python3 scripts/test.py [pytest args]`.

It needs nothing but Python 3.10+ (and root or sudo on Debian to install the servers). It
creates or reuses .venv, installs the package with its test extras, installs and starts the
servers the tests talk to when they are missing, then runs ruff, mypy and pytest with coverage.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from devenv import ensure_services, ensure_venv, run


def main() -> int:
    python = ensure_venv(extras="dev")
    ensure_services()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    run([python, "-m", "ruff", "check", "src", "tests", "scripts", "examples", "bench"])
    run([python, "-m", "ruff", "format", "--check", "src", "tests", "scripts", "examples", "bench"])
    run([python, "-m", "mypy"])
    args = sys.argv[1:] or ["--cov", "--cov-report=term:skip-covered", "tests", "src/websession"]
    code = run([python, "-m", "pytest", *args], check=False)
    if code == 5:
        print("scripts/test.py: pytest collected no tests; that is a failure", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
