"""JSON encoding of session data: the only format websession ever stores or reads.

Encoding is compact and writes non-ASCII text raw, as JavaScript's ``JSON.stringify`` does, so
records and cookies are byte-compatible with Remix. Decoding never executes anything: pickle is
not used anywhere in websession.

A storage's *codec* says which Python values a session may hold. :class:`JSONCodec` (the
default) allows plain JSON values only. :class:`TaggedJSON` (``codec="tagged"``) also keeps
datetime, date, UUID, Decimal, bytes, tuples and ``Markup``, written as one-key objects in the
format of Flask's ``TaggedJSONSerializer`` (docs/codecs.md). Stores never see anything but
JSON-native data: the storage converts at its boundary.

Example::

    >>> encode({"user": "ü", "n": 1})
    b'{"user":"\\xc3\\xbc","n":1}'
    >>> decode_record(b'{"n":1}')
    {'n': 1}
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, ClassVar, Literal, Union
from uuid import UUID

from .changes import Changes
from .errors import ConfigurationError

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


def _find_problem(value: Any, extra: tuple[type, ...] = ()) -> str | None:
    """Say what in ``value`` JSON cannot hold faithfully, or None when all is well. ``extra``
    are the further types a codec can hold (and that hold nothing to look into)."""
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
        elif isinstance(item, extra):
            continue
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


# -- codecs: which Python values a session may hold --------------------------------------------


class JSONCodec:
    """Plain JSON, the default codec: values are str, int, float, bool, None, and lists (or
    tuples, read back as lists) and dicts of them. Records are byte-compatible with Remix.

    A storage converts values with its codec where they cross into a store or a cookie
    (:meth:`encode_data`, :meth:`encode_changes`) and back (:meth:`decode_data`); for this
    codec every conversion is the identity, and storages skip them (:attr:`plain`).

    Example::

        >>> codec = JSONCodec()
        >>> codec.dumps({"a": (1, 2)}), codec.decode_data({"a": [1, 2]})
        ('{"a":[1,2]}', {'a': [1, 2]})
        >>> codec.check_value("when", datetime(2024, 5, 1))
        Traceback (most recent call last):
        ...
        TypeError: session value for 'when' is not JSON-serialisable: datetime
    """

    #: The name ``codec=`` accepts for this codec (and the ``codec`` option of store URLs).
    name: ClassVar[str] = "json"
    #: True when values are stored as they are, so storages skip the conversions.
    plain: ClassVar[bool] = True
    #: Types whose values can be edited in place: a session remembers the JSON of those it
    #: hands out, to notice such edits (``session["cart"].append(...)``).
    mutable: ClassVar[tuple[type, ...]] = (list, dict)

    #: Refuse a value this codec cannot hold, with a TypeError naming the key.
    check_value = staticmethod(check_value)
    #: The compact JSON text of a value (of its stored form): equal texts, equal values.
    dumps = staticmethod(dumps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def encode_value(self, value: Any) -> Any:
        """A value in its stored, JSON-native form."""
        return value

    def encode_data(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Session data in its stored form: a new dict of JSON-native values."""
        return dict(data)

    def encode_changes(self, changes: Changes) -> Changes:
        """A change set with its values in their stored form."""
        return changes

    def decode_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """Stored data (as a store or cookie returned it) as session values. Raises
        :class:`CorruptRecordError` when it cannot be read."""
        return data


#: The ``" d"`` tag holds second-precision UTC (HTTP dates); years below 1000 do not survive
#: email.utils' parsing of two- and three-digit years.
_HTTP_DATE_YEARS = range(1000, 10000)


class TaggedJSON(JSONCodec):
    """JSON plus datetime, date, UUID, Decimal, bytes, tuples and ``Markup``, each written as a
    one-key object in the format of Flask's ``TaggedJSONSerializer``: Flask's cookie sessions
    and this codec read each other's data (docs/codecs.md).

    - a tuple: ``" t"``, a list of the items;
    - a UUID: ``" u"``, 32 hex digits;
    - bytes: ``" b"``, base64;
    - ``Markup`` (a str with ``__html__``): ``" m"``, the HTML text;
    - a datetime: ``" d"``, Flask's HTTP date, when that holds it exactly (aware, UTC, whole
      seconds); any other as ``" dt"``, ISO 8601 (naive stays naive, microseconds and the UTC
      offset are kept);
    - a date: ``" da"``, ISO 8601 (``2024-05-01``);
    - a Decimal: ``" dc"``, its text (``"1.10"``);
    - a one-key dict whose key is a tag: ``" di"``, its key suffixed with ``__``.

    Flask reads every tag but ``" dt"``, ``" da"`` and ``" dc"`` (it returns those as the
    one-key dicts they are stored as). Every datetime comes back as the same instant; an aware
    one comes back with a fixed-offset ``tzinfo`` (the zone's name is not kept), so an ambiguous
    local time of a named zone no longer compares ``==`` to the original.

    Example::

        >>> from uuid import UUID
        >>> codec = TaggedJSON()
        >>> stored = codec.encode_data({"at": datetime(2024, 5, 1, 12, 30), "ids": (UUID(int=1),)})
        >>> stored
        {'at': {' dt': '2024-05-01T12:30:00'}, 'ids': {' t': [{' u': '00000000000000000000000000000001'}]}}
        >>> codec.decode_data(stored)["at"]
        datetime.datetime(2024, 5, 1, 12, 30)
    """

    name: ClassVar[str] = "tagged"
    plain: ClassVar[bool] = False
    # A tuple is immutable but may hold a list that is edited in place.
    mutable: ClassVar[tuple[type, ...]] = (list, dict, tuple)

    _HOLDS: ClassVar[tuple[type, ...]] = (bytes, datetime, date, UUID, Decimal)

    def check_value(self, key: str, value: Any) -> None:
        """Refuse a value this codec cannot hold (or a key that reads as a tag), naming the key.

        Example::

            >>> TaggedJSON().check_value("tags", {1, 2})
            Traceback (most recent call last):
            ...
            TypeError: session value for 'tags' cannot be stored by the tagged codec: set
        """
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        if key in _READERS:
            # A session of this one key would read back, in Flask, as the tagged value itself.
            raise TypeError(f"session key {key!r} is a tag of the tagged codec")
        problem = _find_problem(value, self._HOLDS)
        if problem is not None:
            raise TypeError(f"session value for {key!r} cannot be stored by the tagged codec: {problem}")

    def dumps(self, value: Any) -> str:
        """The compact JSON text of a value's tagged form.

        Example::

            >>> TaggedJSON().dumps({"n": Decimal("1.10"), "b": b"hi"})
            '{"n":{" dc":"1.10"},"b":{" b":"aGk="}}'
        """
        return _encoder.encode(_tag(value))

    def encode_value(self, value: Any) -> Any:
        return _tag(value)

    def encode_data(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {key: _tag(value) for key, value in data.items()}

    def encode_changes(self, changes: Changes) -> Changes:
        return Changes({key: _tag(value) for key, value in changes.set.items()}, changes.removed)

    def decode_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """Stored data as session values; tagged objects become the values they stand for.

        A malformed tagged object (``{" d": "garbage"}``) makes the whole record unreadable:
        :class:`CorruptRecordError`, which storages log and treat as no session.

        Example::

            >>> TaggedJSON().decode_data({"b": {" b": "aGk="}, "n": {" dc": "1.10"}})
            {'b': b'hi', 'n': Decimal('1.10')}
            >>> TaggedJSON().decode_data({"d": {" d": "not a date"}})
            Traceback (most recent call last):
            ...
            websession.codec.CorruptRecordError: malformed ' d' value: 'not a date'
        """
        try:
            decoded = _untag(data)
        except RecursionError:
            raise CorruptRecordError("record nested too deeply") from None
        if not isinstance(decoded, dict):
            # Flask unwraps a whole record that is one tagged object; a session is a dict.
            raise CorruptRecordError(f"record is a tagged {type(decoded).__name__}, not an object")
        return decoded


_TAG_SCALARS = frozenset((str, int, float, bool, type(None)))


def _tag(value: Any) -> Any:
    """A value in its tagged, JSON-native form: Flask's ``TaggedJSONSerializer.tag``, with
    its order of checks (dict, tuple, list, bytes, Markup, UUID, datetime) and three more."""
    kind = type(value)
    if kind in _TAG_SCALARS:
        return value
    if isinstance(value, dict):
        if len(value) == 1:
            key = next(iter(value))
            if key in _READERS:
                return {" di": {f"{key}__": _tag(value[key])}}
        return {key: _tag(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return {" t": [_tag(item) for item in value]}
    if isinstance(value, list):
        return [_tag(item) for item in value]
    if isinstance(value, bytes):
        return {" b": binascii.b2a_base64(value, newline=False).decode("ascii")}
    if isinstance(value, str):
        html = getattr(value, "__html__", None)
        return {" m": str(html())} if callable(html) else value
    if isinstance(value, UUID):
        return {" u": value.hex}
    if isinstance(value, datetime):
        return _tag_datetime(value)
    if isinstance(value, date):
        return {" da": value.isoformat()}
    if isinstance(value, Decimal):
        return {" dc": str(value)}
    return value  # int and float subclasses; anything else was refused by check_value


def _tag_datetime(value: datetime) -> dict[str, str]:
    """Flask's ``" d"`` when an HTTP date holds the value exactly, else the precise ``" dt"``."""
    offset = value.utcoffset()
    if offset is not None and not offset and not value.microsecond and value.year in _HTTP_DATE_YEARS:
        return {" d": format_datetime(value.astimezone(timezone.utc), usegmt=True)}
    return {" dt": value.isoformat()}


def _untag(value: Any) -> Any:
    """A stored value as a Python value: Flask's ``_untag_scan`` (children first, then the
    object itself), strict where Flask is lenient."""
    kind = type(value)
    if kind is dict:
        value = {key: _untag(item) for key, item in value.items()}
        if len(value) == 1:
            key = next(iter(value))
            reader = _READERS.get(key)
            if reader is not None:
                try:
                    return reader(value[key])
                except (TypeError, ValueError, ArithmeticError, binascii.Error):
                    raise CorruptRecordError(f"malformed {key!r} value: {value[key]!r}") from None
        return value
    if kind is list:
        return [_untag(item) for item in value]
    return value


def _read_tuple(value: Any) -> tuple[Any, ...]:
    if type(value) is not list:
        raise TypeError("not a list")
    return tuple(value)


def _read_uuid(value: Any) -> UUID:
    return UUID(_text(value))


def _read_bytes(value: Any) -> bytes:
    return base64.b64decode(_text(value), validate=True)


def _read_markup(value: Any) -> str:
    return _markup()(_text(value))


def _read_http_date(value: Any) -> datetime:
    # werkzeug's parse_date, which Flask's " d" tag uses: an HTTP date, UTC when it names no zone.
    parsed = parsedate_to_datetime(_text(value))
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def _read_datetime(value: Any) -> datetime:
    return datetime.fromisoformat(_text(value))


def _read_date(value: Any) -> date:
    return date.fromisoformat(_text(value))


def _read_decimal(value: Any) -> Decimal:
    return Decimal(_text(value))


def _read_dict(value: Any) -> dict[str, Any]:
    if type(value) is not dict or len(value) != 1:
        raise TypeError("not a one-key object")
    key = next(iter(value))
    if not key.endswith("__"):
        raise ValueError("key without the __ suffix")
    return {key[:-2]: value[key]}


def _text(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("not a string")
    return value


#: Tag -> how its stored value is read back.
_READERS: dict[str, Callable[[Any], Any]] = {
    " t": _read_tuple,
    " u": _read_uuid,
    " b": _read_bytes,
    " m": _read_markup,
    " d": _read_http_date,
    " dt": _read_datetime,
    " da": _read_date,
    " dc": _read_decimal,
    " di": _read_dict,
}


@functools.cache
def _markup() -> Callable[[str], str]:
    """markupsafe's Markup when it is installed (it is with Flask), else plain text: HTML read
    back as text is escaped again when rendered, never trusted."""
    try:
        from markupsafe import Markup
    except ImportError:  # pragma: no cover - markupsafe comes with Flask and Jinja
        return str
    return Markup


#: The codecs ``codec=`` accepts by name.
CODECS: dict[str, JSONCodec] = {"json": JSONCodec(), "tagged": TaggedJSON()}
#: The default codec.
PLAIN_JSON = CODECS["json"]

#: What ``codec=`` accepts: a codec, its name, or None for plain JSON.
CodecLike = Union[JSONCodec, Literal["json", "tagged"], None]  # noqa: UP007 - a runtime alias on 3.10


def as_codec(codec: CodecLike | str) -> JSONCodec:
    """The codec ``codec=`` names: a codec as it is, ``"json"`` (or None) or ``"tagged"``.

    Example::

        >>> as_codec(None), as_codec("tagged")
        (JSONCodec(), TaggedJSON())
    """
    if codec is None:
        return PLAIN_JSON
    if isinstance(codec, JSONCodec):
        return codec
    found = CODECS.get(codec) if isinstance(codec, str) else None
    if found is None:
        raise ConfigurationError(
            f"unknown session codec {codec!r}", solution=f"use one of: {', '.join(CODECS)}, or a codec object"
        )
    return found
