"""``python -m websession``: the same command as ``websession``."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
