"""Reading user index data back from where stores keep it: entries from SQL rows (SQLite
and PostgreSQL), the devices a listing of them shows, and what replaces a generation that
cannot be read (SQLite, files).

An entry is stored as the JSON text of :meth:`Entry.to_json`. What comes back from a table
may have been written by anyone, so every way it can be wrong (not JSON, not an entry, a
number out of range) ends here as None and a log line, never as an exception: the store
then drops the entry, as it drops an entry whose session has ended.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .. import codec
from ..users import Device, Entry

#: What a generation that cannot be read is read as, until a revocation replaces it:
#: generations start at 0 and only grow, so no session was signed in at -1 before the damage
#: (a cookie signed in at 0 and revoked stays revoked, as it would not if this were 0).
UNREADABLE_GENERATION = -1

#: Generations a store writes over one it cannot read start here: far past any count of
#: revocations, and below 2**53, so a JavaScript app sharing cookies reads them exactly.
FRESH_GENERATIONS = 2**52


def fresh_generation() -> int:
    """A generation to write over one that cannot be read: its old value is unknown, so the
    new one must differ from any value it could have had, and from any earlier replacement
    (51 random bits above :data:`FRESH_GENERATIONS`). Every session signed in before is then
    revoked, which is what a revocation (the only writer of generations) means to do.

    Example::

        >>> FRESH_GENERATIONS <= fresh_generation() < 2**53
        True
    """
    return FRESH_GENERATIONS + secrets.randbelow(2**51)


def parse_entry(kind: str, key: str, text: object) -> Entry | None:
    """The entry stored as ``text`` for storage key ``key``, or None (logged) when it is not one.

    Example::

        >>> parse_entry("sqlite", "ab" * 20, '{"created": 0, "labels": {}, "lifetime": null}').created.year
        1970
        >>> parse_entry("sqlite", "ab" * 20, "[1]") is None
        True
    """
    problem: Exception = ValueError(f"not an entry but {type(text).__name__}")
    if isinstance(text, (str, bytes)):
        try:
            entry = Entry.from_json(codec.loads(text))
        except (ValueError, OverflowError, OSError) as exc:  # bad JSON, or a time out of range
            problem = exc
        else:
            if entry is not None:
                return entry
            problem = ValueError("not an entry")
    codec.log_corrupt(kind, key, ValueError(f"its user index entry is unreadable: {problem}"))
    return None


def entry_text(entry: Entry) -> str:
    """The JSON text an entry is stored as.

    Example::

        >>> from datetime import datetime, timezone
        >>> entry_text(Entry(datetime(1970, 1, 1, tzinfo=timezone.utc), {"ua": "x"}, None))
        '{"created":0.0,"labels":{"ua":"x"},"lifetime":null}'
    """
    return codec.dumps(entry.to_json())


def listed_devices(
    kind: str, rows: Iterable[tuple[Any, ...]], now: datetime
) -> tuple[list[Device], list[str]]:
    """The devices of the live ``(order, key, entry text, expires)`` rows a listing returned,
    oldest sign-in first (sign-ins in the same instant in ``order``), and the keys whose
    entries cannot be read.

    Example::

        >>> from datetime import timezone
        >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> text = '{"created": 0, "labels": {"ua": "x"}, "lifetime": null}'
        >>> rows = [(1, "ab" * 20, text, None), (2, "cd" * 20, "[1]", None)]
        >>> devices, unreadable = listed_devices("sqlite", rows, now)
        >>> [device.labels for device in devices], unreadable == ["cd" * 20]
        ([{'ua': 'x'}], True)
    """
    devices: list[tuple[datetime, Any, Device]] = []
    unreadable: list[str] = []
    for order, key, text, expires in rows:
        entry = parse_entry(kind, key, text)
        device = None if entry is None else entry.device(key, expires, now)
        if device is None:
            unreadable.append(key)
        else:
            devices.append((device.created, order, device))
    return [device for _, _, device in sorted(devices, key=lambda item: item[:2])], unreadable
