#!/usr/bin/env python3
"""Run the websession demo: `python3 scripts/demo.py [--store URL] [--port 8000]`.

It creates or reuses .venv, installs websession with the demo extras, and serves the demo app
on http://127.0.0.1:8000 with a SQLite store in ./.websession-demo/.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from devenv import ensure_venv


def main() -> int:
    python = ensure_venv(extras="demo")
    os.execv(python, [python, "-m", "websession", "demo", *sys.argv[1:]])
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
