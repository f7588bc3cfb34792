"""JSON encoding of session data: the only format websession ever stores or reads.

Encoding is compact and writes non-ASCII text raw, as JavaScript's ``JSON.stringify`` does, so
records and cookies are byte-compatible with Remix. Decoding never executes anything: pickle is
not used anywhere in websession.

Example::

    >>> encode({"user": "ü", "n": 1})
    b'{"user":"\\xc3\\xbc","n":1}'
    >>> decode_record(b'{"n":1}')
    {'n': 1}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("websession")

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_decoder = json.JSONDecoder()


class CorruptRecordError(ValueError):
    """A stored record is not a JSON object. Stores treat it as missing."""


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON text.

    Example::

        >>> dumps({"a": [1, 2]})
        '{"a":[1,2]}'
    """
    return _encoder.encode(value)


def encode(data: Mapping[str, Any]) -> bytes:
    """Encode session data as UTF-8 JSON bytes.

    Example::

        >>> encode({"a": 1})
        b'{"a":1}'
    """
    return _encoder.encode(data).encode("utf-8")


def loads(text: str | bytes) -> Any:
    """Decode JSON text or UTF-8 bytes. Raises ``ValueError`` on anything that is not JSON,
    including input of another type and nesting too deep to decode.

    Example::

        >>> loads(b'[1]')
        [1]
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8")
    if not isinstance(text, str):
        raise ValueError(f"expected JSON text, not {type(text).__name__}")
    try:
        return _decoder.decode(text)
    except RecursionError:
        # The C decoder recurses once per nesting level: "[[[[..." from a cookie or a record
        # must be refused like any other bad JSON, not escape as a RecursionError (a 500).
        raise ValueError("JSON nested too deeply") from None


def decode_record(raw: str | bytes) -> dict[str, Any]:
    """Decode a stored record that must be a JSON object.

    Raises :class:`CorruptRecordError` when it is not, so a store can log it and treat the
    session as missing instead of failing the request.

    Example::

        >>> decode_record('{"a":1}')
        {'a': 1}
    """
    try:
        value = loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"record is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CorruptRecordError(f"record is a JSON {type(value).__name__}, not an object")
    return value


def check_value(key: str, value: Any) -> None:
    """Refuse a value that would not survive a JSON round trip, naming the key.

    Example::

        >>> check_value("when", object())
        Traceback (most recent call last):
        ...
        TypeError: session value for 'when' is not JSON-serialisable: object
    """
    if not isinstance(key, str):
        raise TypeError(f"session keys must be str, not {type(key).__name__}")
    problem = _find_problem(value)
    if problem is not None:
        raise TypeError(f"session value for {key!r} is not JSON-serialisable: {problem}")


_SCALARS = (str, int, float, bool, type(None))


def _find_problem(value: Any) -> str | None:
    """Say what in ``value`` JSON cannot hold faithfully, or None when all is well."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _SCALARS):
            if isinstance(item, float) and (item != item or item in (float("inf"), float("-inf"))):
                return f"{item!r} has no JSON form"
            continue
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    return f"dict key {k!r} is not a str"
                stack.append(v)
        else:
            return type(item).__name__
    return None


def log_corrupt(store: str, session_id: str, error: Exception) -> None:
    """Log a corrupt record once per read; the session is then treated as missing."""
    logger.warning("websession: %s record for id %.8s… is unreadable: %s", store, session_id, error)
