"""Session values as DynamoDB attribute values and back, exactly as the JavaScript document
client writes them (S, N, BOOL, NULL, L, M), so a Remix app can share the table.

What DynamoDB guarantees: an item comes back with the types it was written with; a number is
decimal text of up to 38 significant digits, so ``2**63-1`` and ``0.1 + 0.2`` survive when sent
as text (never through a binary float); an item holds up to 400 KB, names and values together.
What it does not: tell an int from a float (``1.0`` comes back as ``1``, as in JavaScript),
hold numbers of more than 38 digits or outside 1e-130 to 1e126, or say which key broke the
limit. :func:`marshal` refuses those numbers itself, naming the session key. What DynamoDB
guarantees of requests (conditional writes, transactions of up to 100 actions, strongly
consistent reads when asked, TTL deletion within about 48 hours, no atomicity across items
outside a transaction) does not concern values: see the package's docstring.

Example::

    >>> unmarshal(marshal("k", {"n": 2**63 - 1, "f": 0.5, "s": ["x", None]}))
    {'n': 9223372036854775807, 'f': 0.5, 's': ['x', None]}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ...errors import SessionStoreError

#: DynamoDB's item size limit (attribute names and values together).
MAX_ITEM_BYTES = 400 * 1024

_MAX_DIGITS = 38


def marshal(key: str, value: Any) -> dict[str, Any]:
    """A JSON value as a DynamoDB attribute value; ``key`` names it in errors.

    Example::

        >>> marshal("k", {"a": [1, 0.5, None, True, "x"]})
        {'M': {'a': {'L': [{'N': '1'}, {'N': '0.5'}, {'NULL': True}, {'BOOL': True}, {'S': 'x'}]}}}
    """
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        text = str(value)
        if len(text.lstrip("-")) > _MAX_DIGITS:
            raise _unstorable(key, f"{text[:20]}... has more than {_MAX_DIGITS} digits")
        return {"N": text}
    if isinstance(value, float):
        magnitude = abs(value)
        if magnitude != 0 and not 1e-130 <= magnitude < 1e126:
            raise _unstorable(key, f"{value!r} is outside DynamoDB's number range (1e-130 to 1e126)")
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (list, tuple)):
        return {"L": [marshal(key, item) for item in value]}
    if isinstance(value, dict):
        return {"M": {k: marshal(key, v) for k, v in value.items()}}
    raise _unstorable(key, type(value).__name__)


def unmarshal(attribute: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as JSON; numbers with a point or exponent become floats.

    Example::

        >>> unmarshal({"L": [{"N": "9223372036854775807"}, {"N": "0.30000000000000004"}]})
        [9223372036854775807, 0.30000000000000004]
    """
    (kind, value), *rest = attribute.items()
    if rest:
        raise ValueError(f"attribute value with several types: {sorted(attribute)}")
    if kind == "S":
        return value
    if kind == "N":
        text = str(value)
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "L":
        return [unmarshal(item) for item in value]
    if kind == "M":
        return {k: unmarshal(v) for k, v in value.items()}
    raise ValueError(f"DynamoDB type {kind} has no JSON form")


def _unstorable(key: str, problem: str) -> SessionStoreError:
    return SessionStoreError(
        f"session value for {key!r} cannot be stored in DynamoDB: {problem}",
        solution="store it as a string",
    )


def epoch(moment: datetime) -> dict[str, str]:
    """An expiry as the number attribute the TTL reads: whole epoch seconds, rounded up so an
    item never expires early.

    Example::

        >>> epoch(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc))
        {'N': '1767225601'}
    """
    return {"N": str(int(-(-moment.timestamp() // 1)))}


def moment(seconds: Any) -> datetime:
    """The expiry an epoch-seconds number stands for, in UTC."""
    return datetime.fromtimestamp(float(seconds), timezone.utc)


__all__ = ["MAX_ITEM_BYTES", "epoch", "marshal", "moment", "unmarshal"]
