"""Signed cookies, byte-compatible with Remix v2 and React Router 7/8.

A :class:`Cookie` turns a value into a ``Set-Cookie`` header and reads it back from a
``Cookie`` header. The value is JSON, base64-encoded and signed with HMAC-SHA256 using the
first secret; every secret is tried when verifying, so secrets can rotate without logging
anyone out. Reading never raises, whatever bytes the header holds.

``format="remix-v3"`` speaks the newer ``@remix-run/cookie`` instead: the value is a plain
string (base64 of its UTF-8 bytes, no JSON), it is not percent-encoded, and the attributes
come in that package's order (Domain, Expires, HttpOnly, Max-Age, Partitioned, Path,
SameSite, Secure).

Example::

    >>> cookie = create_cookie("sess", secrets=["s1", "s2"])
    >>> header = cookie.serialize({"n": 1})
    >>> header
    'sess=eyJuIjoxfQ%3D%3D.lYDlF8cufw96%2FKyvlK9iekRgV7uNy%2BUw0nercrDluB8; Path=/; HttpOnly; SameSite=Lax'
    >>> cookie.parse(header.split(";")[0])
    {'n': 1}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import sys
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict, Union
from urllib.parse import quote, unquote

from . import codec

if TYPE_CHECKING:
    from typing_extensions import Unpack

SameSite = Union[Literal["lax", "strict", "none"], bool, None]  # noqa: UP007 - a runtime alias on 3.10
Priority = Literal["low", "medium", "high"]
#: "remix": Remix v2 and React Router 7/8 (the default). "remix-v3": @remix-run/cookie.
CookieFormat = Literal["remix", "remix-v3"]
COOKIE_FORMATS: tuple[CookieFormat, ...] = ("remix", "remix-v3")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ATTRIBUTE_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e]*")  # visible ASCII except ";"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SAME_SITE = {True: "Strict", "lax": "Lax", "strict": "Strict", "none": "None"}
_PRIORITY = {"low": "Low", "medium": "Medium", "high": "High"}
# encodeURIComponent leaves these unescaped, besides letters and digits.
_URI_COMPONENT_SAFE = "-_.!~*'()"

_warned_unsigned: set[str] = set()

_SIGNED_ALPHABET = re.compile(r"[A-Za-z0-9+/=.]*")
_CACHED_IDS = 4096
_CACHED_ID_LENGTH = 64
#: Signed values up to this long (a small session's whole data) are remembered too.
_CACHED_SIGNED_LENGTH = 512
#: Cookie headers up to this long are remembered with the value found in them, this many at
#: most (about 1.5 MB at worst).
_CACHED_HEADER_LENGTH = 1024
_CACHED_HEADERS = 1024
#: Bindings (a client's user agent: client-controlled) longer than this are never part of a
#: cache key, so a few huge ones cannot pin megabytes.
_CACHED_BINDING_LENGTH = 512
_UNSEEN: Any = object()


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """The attributes of a cookie. Any of them can be overridden when serializing."""

    max_age: float | None = None
    expires: datetime | None = None
    domain: str | None = None
    path: str | None = "/"
    http_only: bool = True
    secure: bool = False
    same_site: SameSite = "lax"
    partitioned: bool = False
    priority: Priority | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` for an attribute no browser would accept."""
        for name in ("domain", "path"):
            value = getattr(self, name)
            if value is not None and not _ATTRIBUTE_VALUE.fullmatch(value):
                raise ValueError(f"cookie {name} {value!r} contains a forbidden character")
        if self.max_age is not None and not math.isfinite(self.max_age):
            raise ValueError("cookie max_age must be a finite number")
        if self.expires is not None and self.expires.tzinfo is None:
            raise ValueError("cookie expires must be a timezone-aware datetime")
        if self.same_site not in _SAME_SITE and self.same_site not in (False, None):
            raise ValueError(f"cookie same_site {self.same_site!r} is not lax, strict or none")
        if self.priority is not None and self.priority not in _PRIORITY:
            raise ValueError(f"cookie priority {self.priority!r} is not low, medium or high")

    def attributes(self, format: CookieFormat = "remix") -> str:
        """The attribute part of Set-Cookie, in the order Remix's `cookie` package writes
        (``format="remix-v3"``: the order of ``@remix-run/cookie``).

        Example::

            >>> CookieOptions(max_age=60, secure=True).attributes("remix-v3")
            'HttpOnly; Max-Age=60; Path=/; SameSite=Lax; Secure'
        """
        present = self._present(format)
        return "; ".join(present[name] for name in _ORDER[format] if name in present)

    def _present(self, format: CookieFormat) -> dict[str, str]:
        """Each attribute this cookie writes, by option name."""
        present = {}
        if self.max_age is not None:
            present["max_age"] = f"Max-Age={math.floor(self.max_age)}"
        if self.domain:
            present["domain"] = f"Domain={self.domain}"
        if self.path:
            present["path"] = f"Path={self.path}"
        if self.expires is not None:
            present["expires"] = (
                f"Expires={format_datetime(self.expires.astimezone(timezone.utc), usegmt=True)}"
            )
        if self.http_only:
            present["http_only"] = "HttpOnly"
        # @remix-run/cookie turns Secure on for partitioned cookies, as browsers require.
        if self.secure or (self.partitioned and format == "remix-v3"):
            present["secure"] = "Secure"
        if self.partitioned:
            present["partitioned"] = "Partitioned"
        if self.priority:
            present["priority"] = f"Priority={_PRIORITY[self.priority]}"
        if self.same_site:
            present["same_site"] = f"SameSite={_SAME_SITE[self.same_site]}"
        return present


#: The order each format writes attributes in: Remix's `cookie` package, and @remix-run/cookie
#: (which does not write Priority; it comes last so the rest lines up).
_ORDER: dict[CookieFormat, tuple[str, ...]] = {
    "remix": (
        "max_age",
        "domain",
        "path",
        "expires",
        "http_only",
        "secure",
        "partitioned",
        "priority",
        "same_site",
    ),
    "remix-v3": (
        "domain",
        "expires",
        "http_only",
        "max_age",
        "partitioned",
        "path",
        "same_site",
        "secure",
        "priority",
    ),
}


@dataclass(frozen=True, slots=True)
class Verified:
    """A cookie value that verified. ``stale`` means an older secret signed it; ``signed`` is
    the signed text it came from (what :meth:`Cookie.serialize_raw` can send again)."""

    value: Any
    stale: bool = False
    signed: str | None = field(default=None, repr=False, compare=False)


class Cookie:
    """A named, optionally signed cookie in the Remix wire format (or ``format="remix-v3"``).

    Build one with :func:`create_cookie`.
    """

    #: A value signed once is sent again as it is while it does not change (a sealed one is
    #: sealed anew each time, so remembering its header would only fill memory).
    _resends: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        secrets: tuple[str, ...],
        options: CookieOptions,
        *,
        format: CookieFormat = "remix",
    ) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"cookie name {name!r} is not a valid token")
        if any(not isinstance(s, str) or not s for s in secrets):
            raise ValueError("cookie secrets must be non-empty strings")
        if format not in COOKIE_FORMATS:
            raise ValueError(f"cookie format {format!r} is not one of {', '.join(COOKIE_FORMATS)}")
        options.validate()
        self.name = name
        self.secrets = secrets
        self.options = options
        #: "remix" (JSON values, percent-encoded) or "remix-v3" (plain strings, not encoded).
        self.format: CookieFormat = format
        # Keyed once: copying a keyed HMAC skips the key schedule on every cookie.
        self._keys = tuple(_keyed(s) for s in secrets)
        self._attributes = options.attributes(format)
        self._lifetime = None if options.max_age is None else timedelta(seconds=options.max_age)
        # Session ids are signed again on every rolling response, and the same signed id comes
        # back on every request: remember recent ones both ways, and their Set-Cookie headers.
        # Only short str values are kept (ids); a cache is cleared whole when full.
        self._signed_ids: dict[tuple[str, str | None], str] = {}
        self._verified_ids: dict[tuple[str, str | None], Verified] = {}
        self._id_headers: dict[tuple[str, str | None], str] = {}
        # Small sessions kept in the cookie itself come back unchanged too: remember the text
        # of each recent signed value that verified (the value is decoded anew from it, so no
        # request sees another's changes), and its Set-Cookie header for a rolling response.
        self._verified_texts: dict[tuple[str, str | None], tuple[str, bool]] = {}
        self._signed_headers: dict[str, str] = {}
        # A browser sends the same Cookie header request after request: remember where our
        # value was in it (finding and percent-decoding it costs more than the lookup).
        # (str and bytes headers apart: comparing the two warns under python -b.)
        self._found: dict[str, str | None] = {}
        self._found_bytes: dict[bytes, str | None] = {}

    def __repr__(self) -> str:
        if self.format != "remix":
            return f"Cookie({self.name!r}, signed={self.is_signed}, format={self.format!r})"
        return f"Cookie({self.name!r}, signed={self.is_signed})"

    @property
    def is_signed(self) -> bool:
        """True when the cookie has at least one secret."""
        return bool(self._keys)

    # -- reading ---------------------------------------------------------------------------

    def parse(self, header: str | bytes | None, *, binding: str | None = None) -> Any | None:
        """Return the value in a Cookie header, or None when it is absent or does not verify.

        Example::

            >>> create_cookie("sess").parse("sess=eyJhIjoxfQ%3D%3D")
            {'a': 1}
        """
        verified = self.read(header, binding=binding)
        return None if verified is None else verified.value

    def read(self, header: str | bytes | None, *, binding: str | None = None) -> Verified | None:
        """Like :meth:`parse`, but also says whether a retired secret signed the value.

        ``binding`` (for example the client's user agent) must be the one the value was signed
        with; see :meth:`sign`.

        Example::

            >>> old = create_cookie("s", secrets=["old"]).serialize(1).split(";")[0]
            >>> create_cookie("s", secrets=["new", "old"]).read(old)
            Verified(value=1, stale=True)
        """
        found: dict[Any, str | None] | None = (
            self._found if type(header) is str else self._found_bytes if type(header) is bytes else None
        )
        if found is not None and len(header) <= _CACHED_HEADER_LENGTH:  # type: ignore[arg-type]
            raw = found.get(header, _UNSEEN)
            if raw is _UNSEEN:
                # @remix-run/cookie never percent-decodes; Remix v2 does.
                raw = find_cookie(header, self.name, decode=self.format == "remix")
                _remember(found, header, raw, _CACHED_HEADERS)
        else:
            raw = find_cookie(header, self.name, decode=self.format == "remix")
        if raw is None or raw == "":
            return None
        return self.unsign(raw, binding=binding)

    def unsign(self, raw: str, *, binding: str | None = None) -> Verified | None:
        """Verify and decode a percent-decoded cookie value; None when it fails in any way."""
        key = (raw, binding)
        known = self._verified_ids.get(key)
        if known is not None:
            return known
        seen = self._verified_texts.get(key)
        if seen is not None:
            # These very characters verified before, under the same secrets: only the text is
            # decoded again, so each request gets a value of its own to change.
            try:
                return Verified(self._value(seen[0]), seen[1], raw)
            except ValueError:  # too deep to decode on this stack: as the uncached path does
                return None
        payload = raw
        stale = False
        if self._keys:
            payload, dot, signature = raw.rpartition(".")
            if not dot:
                return None
            index = _verify(_message(payload, binding), signature, self._keys)
            if index is None:
                return None
            stale = index > 0
        text = _decode_text(payload)
        if text is _INVALID:
            return None
        try:
            value = self._value(text)
        except ValueError:
            return None
        verified = Verified(value, stale, raw)
        if binding is not None and len(binding) > _CACHED_BINDING_LENGTH:
            return verified
        if isinstance(value, str) and len(value) <= _CACHED_ID_LENGTH:
            _remember(self._verified_ids, key, verified)
        elif len(raw) <= _CACHED_SIGNED_LENGTH:
            _remember(self._verified_texts, key, (text, stale))
        return verified

    def _value(self, text: str) -> Any:
        """The value a verified text holds: its JSON, or ("remix-v3") the text itself."""
        return codec.loads(text) if self.format == "remix" else text

    # -- writing ---------------------------------------------------------------------------

    def sign(self, value: Any, *, binding: str | None = None) -> str:
        """Encode and sign ``value``: the cookie value before percent-encoding.

        With a ``binding`` the signature also covers that text (say, the client's user agent),
        so the cookie verifies only when the same binding is given again. The value format is
        unchanged, but JavaScript apps cannot verify bound cookies.

        A "remix-v3" cookie holds text: a str is written as it is, anything else as its JSON.

        Example::

            >>> create_cookie("s").sign({"a": 1})
            'eyJhIjoxfQ=='
            >>> create_cookie("s", format="remix-v3").sign("abc")
            'YWJj'
        """
        short = binding is None or len(binding) <= _CACHED_BINDING_LENGTH
        cacheable = short and isinstance(value, str) and len(value) <= _CACHED_ID_LENGTH
        if cacheable:
            cached = self._signed_ids.get((value, binding))
            if cached is not None:
                return cached
        if self.format == "remix":
            text = codec.dumps(value)
        else:
            text = value if isinstance(value, str) else codec.dumps(value)
        payload = binascii.b2a_base64(text.encode("utf-8"), newline=False).decode("ascii")
        signed = payload
        if self._keys:
            signed = f"{payload}.{_signature(_message(payload, binding), self._keys[0])}"
        # The browser sends it back next: it verifies with the newest secret.
        if cacheable:
            _remember(self._signed_ids, (value, binding), signed)
            _remember(self._verified_ids, (signed, binding), Verified(value, False, signed))
        elif short and len(signed) <= _CACHED_SIGNED_LENGTH:
            _remember(self._verified_texts, (signed, binding), (text, False))
        return signed

    def serialize(self, value: Any, *, binding: str | None = None, **overrides: Any) -> str:
        """Return a Set-Cookie header value holding ``value``.

        ``overrides`` replace any attribute for this header only (``max_age=0``, ``path=...``).

        Example::

            >>> create_cookie("s", http_only=False).serialize("abc", max_age=60)
            's=ImFiYyI%3D; Max-Age=60; Path=/; SameSite=Lax'
        """
        if (
            overrides
            or not isinstance(value, str)
            or len(value) > _CACHED_ID_LENGTH
            or (binding is not None and len(binding) > _CACHED_BINDING_LENGTH)
        ):
            return self.serialize_raw(self.sign(value, binding=binding), **overrides)
        header = self._id_headers.get((value, binding))
        if header is None:
            header = self._header(self.sign(value, binding=binding), self._attributes)
            _remember(self._id_headers, (value, binding), header)
        return header

    def serialize_raw(self, signed: str, **overrides: Any) -> str:
        """Return a Set-Cookie header for an already signed value."""
        if overrides:
            return self._header(signed, self.with_overrides(overrides).attributes(self.format))
        header = self._signed_headers.get(signed)
        if header is None:
            header = self._header(signed, self._attributes)
            if self._resends and len(signed) <= _CACHED_SIGNED_LENGTH:
                _remember(self._signed_headers, signed, header)
        return header

    def _header(self, signed: str, attributes: str) -> str:
        if self.format != "remix":
            encoded = _quote_v3(signed)  # @remix-run/cookie only quotes
        elif _SIGNED_ALPHABET.fullmatch(signed):
            # What encodeURIComponent does to base64, without quote()'s per-byte loop.
            encoded = signed.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        else:
            encoded = quote(signed, safe=_URI_COMPONENT_SAFE)
        return f"{self.name}={encoded}; {attributes}" if attributes else f"{self.name}={encoded}"

    def serialize_expired(self, **overrides: Any) -> str:
        """Return a Set-Cookie header that makes the browser forget the cookie.

        Example::

            >>> create_cookie("s").serialize_expired()
            's=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax'
        """
        options = self.with_overrides({**overrides, "max_age": None, "expires": EPOCH})
        return f"{self.name}=; {options.attributes(self.format)}"

    def with_overrides(self, overrides: dict[str, Any]) -> CookieOptions:
        """The cookie's options with ``overrides`` applied and checked."""
        if not overrides:
            return self.options
        options = replace(self.options, **overrides)
        options.validate()
        return options

    def expires_at(self, now: datetime, overrides: dict[str, Any] | None = None) -> datetime | None:
        """When a value serialized now expires: from max_age, else expires, else never (None).

        Example::

            >>> create_cookie("s", max_age=60).expires_at(EPOCH)
            datetime.datetime(1970, 1, 1, 0, 1, tzinfo=datetime.timezone.utc)
        """
        if not overrides:
            lifetime = self._lifetime
            return self.options.expires if lifetime is None else now + lifetime
        options = self.with_overrides(overrides)
        if options.max_age is not None:
            return now + timedelta(seconds=options.max_age)
        return options.expires

    def warn_if_unsigned(self) -> None:
        """Warn once per cookie name when an unsigned cookie carries session ids, as Remix does."""
        if self._keys or self.name in _warned_unsigned:
            return
        _warned_unsigned.add(self.name)
        warnings.warn(
            f'The "{self.name}" cookie is not signed, but session cookies should be signed to '
            "prevent tampering on the client before they are sent back to the server. "
            "Pass secrets=[...] to create_cookie.",
            UserWarning,
            stacklevel=3,
        )


def _remember(cache: dict[Any, Any], key: Any, value: Any, limit: int = _CACHED_IDS) -> None:
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


class CookieAttributes(TypedDict, total=False):
    """The attributes :func:`create_cookie` takes as keywords: the fields of
    :class:`CookieOptions`, each with the same default."""

    max_age: float | None
    expires: datetime | None
    domain: str | None
    path: str | None
    http_only: bool
    secure: bool
    same_site: SameSite
    partitioned: bool
    priority: Priority | None


def create_cookie(
    name: str,
    *,
    secrets: list[str] | tuple[str, ...] = (),
    format: CookieFormat = "remix",
    **attributes: Unpack[CookieAttributes],
) -> Cookie:
    """Create a cookie. Defaults are safe: HttpOnly, SameSite=Lax, Path=/.

    ``secrets`` sign the value: the first one signs, all of them verify, so put a new secret
    first and keep the old ones until their cookies have expired. ``format="remix-v3"``
    writes cookies the way ``@remix-run/cookie`` (the session middleware of Remix 3) does.
    The attributes (``max_age``, ``expires``, ``domain``, ``path``, ``http_only``, ``secure``,
    ``same_site``, ``partitioned``, ``priority``) are those of :class:`CookieOptions`.

    Example::

        >>> cookie = create_cookie("__session", secrets=["s3cret"], max_age=604800)
        >>> cookie.serialize("abc").split("; ")[1:]
        ['Max-Age=604800', 'Path=/', 'HttpOnly', 'SameSite=Lax']
        >>> create_cookie("__session", max_age=60, format="remix-v3").serialize("abc")
        '__session=YWJj; HttpOnly; Max-Age=60; Path=/; SameSite=Lax'
    """
    return Cookie(name, tuple(secrets), CookieOptions(**attributes), format=format)


def find_cookie(header: str | bytes | None, name: str, *, decode: bool = True) -> str | None:
    """Return the percent-decoded value of ``name`` in a Cookie header; the first one wins.

    Follows the npm ``cookie`` package that Remix uses: pairs split on ``;``, spaces and tabs
    trimmed, surrounding double quotes removed, and percent-decoding applied only when a ``%``
    is present and the escapes are valid UTF-8 (otherwise the raw text is kept). Never raises.
    ``decode=False`` keeps the value as sent, as ``@remix-run/cookie`` does.

    Example::

        >>> find_cookie('a=1; sess="x%2By"; sess=2', "sess")
        'x+y'
    """
    if type(header) is bytes:
        header = header.decode("latin-1")
    elif isinstance(header, (bytes, bytearray)):
        header = bytes(header).decode("latin-1")
    if not isinstance(header, str) or name not in header:
        return None
    if header.startswith(name) and header[len(name) : len(name) + 1] == "=":
        # The first pair is ours, its name not padded (the common case): no split needed.
        value = header[len(name) + 1 :].partition(";")[0].strip(" \t")
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        return _decode_uri_component(value) if decode else value
    for pair in header.split(";"):
        key, eq, value = pair.partition("=")
        if not eq or key.strip(" \t") != name:
            continue
        value = value.strip(" \t")
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        return _decode_uri_component(value) if decode else value
    return None


def _decode_uri_component(value: str) -> str:
    if "%" not in value:
        return value
    fast = value.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
    if "%" not in fast:
        return fast
    if _BAD_ESCAPE.search(value):
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value


def _message(payload: str, binding: str | None) -> str:
    """What the HMAC covers: the payload, plus a digest of the binding when there is one."""
    if binding is None:
        return payload
    bound = hashlib.sha256(binding.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{payload}\x00{bound}"


def _keyed(secret: str) -> Any:
    """An HMAC-SHA256 keyed with ``secret``, to be copied for each message. Where hashlib is
    OpenSSL's (everywhere in practice), the C object under :class:`hmac.HMAC` copies for a
    third of the cost of the Python wrapper; both have the same copy/update/digest methods."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    return getattr(mac, "_hmac", None) or mac


def _signature(payload: str, key: Any) -> str:
    return _digest(payload.encode("utf-8", "surrogatepass"), key).decode("ascii")


def _digest(message: bytes, key: Any) -> bytes:
    mac = key.copy()
    mac.update(message)
    # 32 bytes are 44 base64 characters, the last one "=": keep 43, as Remix does.
    return binascii.b2a_base64(mac.digest(), newline=False)[:43]


def _verify(payload: str, signature: str, keys: tuple[Any, ...]) -> int | None:
    """Return the index of the secret that signed ``payload``, comparing in constant time."""
    if not signature.isascii():
        return None  # no signature of ours is anything but ASCII
    message = payload.encode("utf-8", "surrogatepass")
    sent = signature.encode("ascii")
    for index, key in enumerate(keys):
        if hmac.compare_digest(_digest(message, key), sent):
            return index
    return None


_INVALID = object()


def _quote_v3(value: str) -> str:
    """Quote a value as @remix-run/headers does (signed base64 never needs it)."""
    if '"' in value or ";" in value or " " in value:
        escaped = value.replace('"', '\\"')
        return f'"{escaped}"'
    return value


if sys.version_info >= (3, 11):

    def _b64decode(text: str) -> bytes:
        """Strict base64 (padding added): what ``b64decode(validate=True)`` accepts, checked in C."""
        return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)

else:  # pragma: no cover - Python 3.10

    def _b64decode(text: str) -> bytes:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _decode_text(payload: str) -> Any:
    """Decode base64 → UTF-8 text; ``_INVALID`` when either step fails."""
    try:
        return _b64decode(payload).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        return _INVALID


CookieLike = Union[Cookie, "dict[str, Any]", None]


def as_cookie(cookie: CookieLike) -> Cookie:
    """Accept a :class:`Cookie`, or Remix-style options (``{"name": ..., "secrets": [...]}``).

    Example::

        >>> as_cookie({"name": "__session", "secrets": ["k"]}).name
        '__session'
    """
    if isinstance(cookie, Cookie):
        return cookie
    options = dict(cookie or {})
    return create_cookie(options.pop("name", "__session"), **options)
