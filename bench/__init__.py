"""websession's benchmarks against the libraries people would otherwise pick.

Run ``python -m bench`` from a checkout (``--quick`` for a short run, ``--help`` for the rest).
The checkout's own ``src/`` is measured, not whatever websession is installed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

if (SRC / "websession").is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
    # Servers the bench starts (uvicorn, gunicorn) import the same code.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(SRC), str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
