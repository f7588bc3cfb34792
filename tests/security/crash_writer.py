"""A process that writes file-store sessions as fast as it can until it is killed.

Run by test_crash.py as ``python crash_writer.py DIR [STALL_AFTER]``. Each session holds a
counter ``n``, a blob of about a megabyte that depends on ``n``, and a digest of both, so a
reader can tell a whole record from a torn one. After each commit it prints ``<id> <n>``: a
record is at least that new once the line is out.

With ``STALL_AFTER``, the write after that many commits stops halfway through the file's
bytes (flushed to the file), prints ``stalled`` and waits: the parent's SIGKILL then lands
in the middle of a write for certain, rather than by luck.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import Any

from websession import create_cookie, create_file_session_storage

SESSIONS = 6
BLOB = 1024 * 1024


def content(n: int) -> dict[str, object]:
    blob = (f"{n:08d}" * (BLOB // 8))[: BLOB - n % 4096]
    return {"n": n, "blob": blob, "digest": hashlib.sha256(f"{n}:{blob}".encode()).hexdigest()}


def is_whole(data: dict[str, object]) -> bool:
    n, blob = data.get("n"), data.get("blob")
    return (
        isinstance(n, int)
        and isinstance(blob, str)
        and data.get("digest") == hashlib.sha256(f"{n}:{blob}".encode()).hexdigest()
    )


class StallingFile:
    """A file whose first write stops halfway, flushed, until the process is killed."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def __enter__(self) -> StallingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def write(self, data: bytes) -> int:
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        print("stalled", flush=True)
        time.sleep(60)
        raise SystemExit("not killed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def stall_next_write() -> None:
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        return StallingFile(real_fdopen(fd, *args, **kwargs))

    os.fdopen = fdopen  # type: ignore[assignment]


def main(directory: str, stall_after: int | None) -> None:
    storage = create_file_session_storage(dir=directory, cookie=create_cookie("s", secrets=["k"]))
    commits = 0
    headers: list[str] = []
    for _ in range(SESSIONS):
        session = storage.get_session(None)
        session.update(content(0))
        headers.append(storage.commit_session(session).split(";")[0])  # type: ignore[union-attr]
        print(session.id, 0, flush=True)
        commits += 1
    n = 0
    while True:
        for header in headers:
            n += 1
            commits += 1
            if commits == stall_after:
                stall_next_write()
            session = storage.get_session(header)
            session.update(content(n))
            storage.commit_session(session)
            print(session.id, n, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
