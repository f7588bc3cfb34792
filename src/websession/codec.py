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
#: The decoder's scanner (set by JSONDecoder.__init__, not declared in typeshed).
_scan_once: Any = vars(_decoder)["scan_once"]


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
    if type(text) is bytes:
        text = text.decode("utf-8")
    elif isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8")
    if not isinstance(text, str):
        raise ValueError(f"expected JSON text, not {type(text).__name__}")
    # The C decoder recurses once per nesting level: "[[[[..." from a cookie or a record must
    # be refused like any other bad JSON, not escape as a RecursionError (a 500).
    try:
        # What we store has no surrounding whitespace: scan it in one call, as decode() would
        # after skipping whitespace. Anything else (whitespace, trailing data, not JSON) goes to
        # decode(), which accepts it or raises the same error it always did.
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:
            return _decoder.decode(text)
        if end == len(text):
            return value
        return _decoder.decode(text)
    except RecursionError:
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


_FLASH_PREFIX, _FLASH_SUFFIX = "__flash_", "__"  # session.flash_key's naming, as Remix v2 stores it


def encode_v3(data: Mapping[str, Any]) -> bytes:
    """Encode session data as a "remix-v3" record: ``[values, flash]``, as @remix-run/session
    stores it. Flash values (``__flash_<name>__`` keys) go to the second object.

    Example::

        >>> encode_v3({"user": 1, "__flash_notice__": "Saved"})
        b'[{"user":1},{"notice":"Saved"}]'
    """
    values: dict[str, Any] = {}
    flash: dict[str, Any] = {}
    for key, value in data.items():
        if len(key) >= 10 and key.startswith(_FLASH_PREFIX) and key.endswith(_FLASH_SUFFIX):
            flash[key[len(_FLASH_PREFIX) : -len(_FLASH_SUFFIX)]] = value
        else:
            values[key] = value
    return _encoder.encode([values, flash]).encode("utf-8")


def decode_v3(raw: str | bytes) -> dict[str, Any]:
    """Decode a "remix-v3" record into flat session data (flash under ``__flash_<name>__``).

    Raises :class:`CorruptRecordError` unless it is an array of one or two objects (or nulls).

    Example::

        >>> decode_v3(b'[{"user":1},{"notice":"Saved"}]')
        {'user': 1, '__flash_notice__': 'Saved'}
    """
    try:
        value = loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"record is not JSON: {exc}") from None
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise CorruptRecordError("a remix-v3 record is a JSON array [values, flash]")
    values, flash = [*value, None][:2]
    if not isinstance(values, (dict, type(None))) or not isinstance(flash, (dict, type(None))):
        raise CorruptRecordError("a remix-v3 record holds two JSON objects")
    data = dict(values or {})
    for name, flashed in (flash or {}).items():
        data[f"{_FLASH_PREFIX}{name}{_FLASH_SUFFIX}"] = flashed
    return data


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
            if isinstance(item, str) and not is_utf8_safe(item):
                return "text with a lone surrogate cannot be stored as UTF-8"
            continue
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    return f"dict key {k!r} is not a str"
                stack.append(k)
                stack.append(v)
        else:
            return type(item).__name__
    return None


def is_utf8_safe(text: str) -> bool:
    """False for text holding lone surrogates, which UTF-8 (and so JSON on the wire) cannot carry.

    Example::

        >>> is_utf8_safe("ü€"), is_utf8_safe(chr(0xD800))
        (True, False)
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def log_corrupt(store: str, session_id: str, error: Exception) -> None:
    """Log a corrupt record once per read; the session is then treated as missing."""
    logger.warning("websession: %s record for id %.8s… is unreadable: %s", store, session_id, error)
