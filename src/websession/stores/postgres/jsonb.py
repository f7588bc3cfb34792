"""Session data as PostgreSQL ``jsonb``: what it keeps of JSON, and what the store does about
the rest before anything is sent.

What JSONB guarantees (measured on PostgreSQL 15, and covered by tests):

- Integers of any size and floats keep their exact value and type (``2**63-1``, ``2**64+1``,
  ``0.1 + 0.2``, ``1.0``, ``1e300``, ``5e-324``) once written by :func:`jsonb_text`;
  ``[]`` and ``{}`` survive.

What it does not:

- ``-0.0`` comes back as ``0.0``: PostgreSQL's ``numeric`` has no negative zero.
- Object keys come back in JSONB's order (shorter keys first), not insertion order.
- The character U+0000 cannot be stored in ``jsonb``; :func:`_refuse_nul` raises
  :class:`~websession.errors.SessionStoreError` naming the key, and nothing is written.
- Numbers are printed without an exponent, so ``1e+300`` as written by :func:`codec.dumps`
  would come back as an integer: :func:`jsonb_text` writes such floats positionally.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ... import codec
from ...errors import SessionStoreError


def jsonb_text(value: Any) -> str:
    """JSON text for ``value`` that JSONB gives back with the same Python types.

    JSONB keeps numbers as ``numeric`` and prints them without an exponent, so a float that
    Python writes as ``1e+300`` would come back as a 301-digit integer. Such floats are written
    in positional form with a decimal point instead; everything else is :func:`codec.dumps`.

    Example::

        >>> jsonb_text({"a": 1e22, "b": [1.5e-7, 2]})
        '{"a":10000000000000000000000.0,"b":[0.00000015,2]}'
    """
    if not _has_exponent_float(value):
        return codec.dumps(value)
    return _positional_dumps(value)


def _has_exponent_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if "e" in repr(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _positional_dumps(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
        if "e" not in text:
            return text
        text = format(Decimal(text), "f")
        return text if "." in text else text + ".0"
    if isinstance(value, dict):
        return "{" + ",".join(f"{codec.dumps(k)}:{_positional_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_positional_dumps(v) for v in value) + "]"
    return codec.dumps(value)


def _refuse_nul(data: Mapping[str, Any]) -> None:
    """JSONB cannot hold U+0000; say which key carries it before anything is written."""
    for key, value in data.items():
        stack: list[Any] = [key, value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if "\x00" in item:
                    raise SessionStoreError(
                        f"session value for {key!r} contains the character U+0000, "
                        "which PostgreSQL's jsonb cannot store",
                        solution="remove NUL characters before putting text in the session",
                    )
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                stack.extend(item)
