"""The cookie store: all session data lives in the cookie itself.

No server-side state at all. The data is limited to what fits in 4096 bytes of Set-Cookie,
and concurrent requests cannot be merged (the browser keeps the last cookie it receives).

Two kinds:

- **signed** (the default, Remix's format): the data is readable by the client, and the
  signature stops changes. The cookie's Max-Age is the only lifetime: a copied cookie value
  stays valid until the secrets change.
- **encrypted** (``encryption_keys=[...]``, needs ``websession[crypto]``): the data is sealed
  with AES-256-GCM (see :mod:`websession.encryption`), and the sealed envelope carries the
  session's creation time and expiry, so the idle timeout (the cookie's max_age, or
  ``default_ttl``) and ``absolute_timeout`` are enforced by the server, not just by the
  browser.

Example::

    >>> from websession import create_cookie, create_cookie_session_storage
    >>> storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"]))
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import SplitResult

from ..codec import CodecLike
from ..cookie import Cookie, CookieLike, as_cookie, find_cookie
from ..errors import ConfigurationError, CookieTooLargeError
from ..options import StorageOptions, check_options, resolved_ttl, url_options
from ..session import Session
from ..storage import MAX_COOKIE_SIZE, CookieSessionStorage, SessionStorage
from ..urls import cookie_from_options, reject_unknown
from .base import Clock, Record, Store, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

    from ..encryption import EncryptedCookie


class EncryptedCookieSessionStorage(CookieSessionStorage):
    """Cookie storage sealed with AES-256-GCM, with server-enforced timeouts.

    The sealed value is an envelope ``{"data": {...}, "created": <epoch s>, "expires": <epoch
    s>}`` (``expires`` absent when the session has no lifetime). A cookie whose envelope has
    expired, or whose session began more than ``absolute_timeout`` seconds ago, gives a fresh
    session, whatever the browser kept. Build it with :func:`create_cookie_session_storage`
    and ``encryption_keys=``.
    """

    def __init__(
        self,
        *,
        cookie: EncryptedCookie,
        rolling: bool = True,
        save_uninitialized: bool = False,
        absolute_timeout: float | None = None,
        default_ttl: float | None = None,
        clock: Clock = utcnow,
        codec: CodecLike = None,
    ) -> None:
        super().__init__(
            cookie=cookie, rolling=rolling, save_uninitialized=save_uninitialized, clock=clock, codec=codec
        )
        self.absolute_timeout = None if absolute_timeout is None else timedelta(seconds=absolute_timeout)
        self.default_ttl = default_ttl

    def __repr__(self) -> str:
        return f"EncryptedCookieSessionStorage(cookie={self.cookie!r})"

    def _open(self, cookie_header: str | bytes | None, binding: str | None) -> Session:
        """The session sealed in a Cookie header; a fresh one when there is none, or when it
        does not open, has expired, or is past the absolute timeout."""
        verified = self.cookie.read(cookie_header, binding=binding)
        opened = None if verified is None else self._open_envelope(verified.value)
        values = None if opened is None else self._decoded(opened[0])
        if opened is None or values is None:
            session = Session(codec=self.codec)
            session.stale_cookie = verified is not None or self._has_cookie(cookie_header)
        else:
            data, created, expires = opened
            session = Session(values, record=Record(data, expires, created), codec=self.codec)
            session.resign = verified is not None and verified.stale
        session.binding = binding
        return session

    def _commit(self, session: Session, overrides: dict[str, Any]) -> str | None:
        """The Set-Cookie value sealing the session, or None when it can stay as it is."""
        if session.destroyed:
            return self.destroy_session(session, **overrides)
        now = self.clock()
        fresh = session.is_new or session.regenerating
        created = now if fresh or session.record is None else session.record.version
        expires = self._expires_at(now, created, overrides)
        if expires is not None and expires <= now:
            return self.destroy_session(session, **overrides)
        if session.is_new and not (session or session.modified or self.save_uninitialized):
            return self._expired_header(overrides) if session.stale_cookie else None
        unchanged = not session.is_new and not session.modified and not session.regenerating
        if unchanged and not self._cookie_due(session, overrides):
            return None
        values = session.data
        data = values if self.codec.plain else self.codec.encode_data(values)
        envelope: dict[str, Any] = {"data": data, "created": math.floor(created.timestamp())}
        if expires is not None:
            envelope["expires"] = math.ceil(expires.timestamp())
        header = self._serialize(envelope, session, overrides)
        size = len(header.encode("utf-8"))
        if size > MAX_COOKIE_SIZE:
            raise CookieTooLargeError(
                f"the {self.cookie.name!r} cookie would be {size} bytes; "
                f"browsers keep at most {MAX_COOKIE_SIZE}"
            )
        session._committed(None, Record(data, expires, _whole_seconds(created)), values)
        return header

    # -- helpers ---------------------------------------------------------------------------

    def _rolls(self, overrides: dict[str, Any]) -> bool:
        # A default_ttl is a lifetime too: re-seal unchanged sessions so the idle timeout slides.
        return self.rolling and (
            self.cookie.with_overrides(overrides).max_age is not None or self.default_ttl is not None
        )

    def _expires_at(self, now: datetime, created: datetime, overrides: dict[str, Any]) -> datetime | None:
        if self.default_ttl is not None:
            # An explicit lifetime wins over the cookie's, as ttl= does for every store.
            expires: datetime | None = now + timedelta(seconds=self.default_ttl)
        else:
            expires = self.cookie.expires_at(now, overrides)
        if self.absolute_timeout is not None:
            deadline = created + self.absolute_timeout
            if expires is None or deadline < expires:
                expires = deadline
        return expires

    def _open_envelope(self, value: Any) -> tuple[dict[str, Any], datetime, datetime | None] | None:
        """The data, creation time and expiry of a live envelope; None for anything else."""
        if not isinstance(value, dict):
            return None
        data, created, expires = value.get("data"), value.get("created"), value.get("expires")
        if not isinstance(data, dict) or not _is_epoch(created):
            return None
        if expires is not None and not _is_epoch(expires):
            return None
        now = self.clock()
        created_at = datetime.fromtimestamp(created, timezone.utc)
        expires_at = None if expires is None else datetime.fromtimestamp(expires, timezone.utc)
        if expires_at is not None and expires_at <= now:
            return None
        if self.absolute_timeout is not None and created_at + self.absolute_timeout <= now:
            return None
        return data, created_at, expires_at

    def _has_cookie(self, header: str | bytes | None) -> bool:
        return bool(find_cookie(header, self.cookie.name))

    def _expired_header(self, overrides: dict[str, Any]) -> str:
        lifetime = ("max_age", "expires")
        return self.cookie.serialize_expired(**{k: v for k, v in overrides.items() if k not in lifetime})


def _is_epoch(value: Any) -> TypeGuard[float]:
    # Python's bool is an int; an envelope never holds one. 0 .. year 9999 fits a datetime.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 253402300800


def _whole_seconds(moment: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(moment.timestamp()), timezone.utc)


def create_cookie_session_storage(
    *,
    cookie: CookieLike = None,
    encryption_keys: Sequence[str | bytes] | None = None,
    allow_unsigned: bool = False,
    revocation: SessionStorage | Store | None = None,
    **options: Unpack[StorageOptions],
) -> CookieSessionStorage:
    """Sessions stored entirely in the cookie (no server-side store).

    Signed by default (Remix's format: readable by the client, not changeable). With
    ``encryption_keys`` (the first seals, all open; each at least 32 random bytes or
    characters, see :func:`websession.encryption.generate_encryption_key`) the data is sealed
    with AES-256-GCM and the server enforces the idle timeout (the cookie's ``max_age``, else
    ``ttl``) and ``absolute_timeout``; the cookie's name and attributes are kept and its
    secrets are not needed. A cookie made with :func:`websession.encryption.create_encrypted_cookie`
    works too. Either way a Set-Cookie over 4096 bytes raises ``CookieTooLargeError``.

    The shared options are :class:`~websession.options.StorageOptions`; ``ttl`` (or its older
    spelling ``default_ttl``) and ``absolute_timeout`` need encryption, and
    ``storage_key_secret`` is refused: there is no store whose keys it could hash.
    ``codec="tagged"`` lets sessions hold datetime, date, UUID, Decimal, bytes and tuples, in
    Flask's tagged-JSON format (docs/codecs.md); the default is plain JSON, as Remix reads it.

    A cookie that carries the session's data must be signed (``secrets``) or encrypted: an
    unsigned one lets any client write any data (``{"user_id": 1}``), so it is refused with a
    ``ConfigurationError``. ``allow_unsigned=True`` (tests, data that grants nothing) accepts it
    and warns once.

    ``revocation`` (a storage or store with a user index: memory, SQLite, Redis, ...) keeps
    each user's generation, so that ``storage.revoke_user(user_id)`` signs a user's cookie
    sessions out: a signed-in cookie carries the generation it was issued at and is checked
    against the store on read, one round trip for signed-in requests only (docs/users.md).

    Example::

        >>> from websession import create_cookie
        >>> storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"]))
        >>> session = storage.get_session(None)
        >>> session["n"] = 1
        >>> storage.get_session(storage.commit_session(session))["n"]
        1
        >>> sealed = create_cookie_session_storage(
        ...     cookie=create_cookie("s", max_age=3600), encryption_keys=["k" * 32], absolute_timeout=86400)
        >>> session = sealed.get_session(None)
        >>> session["n"] = 2
        >>> sealed.get_session(sealed.commit_session(session))["n"]
        2
    """
    check_options("create_cookie_session_storage", options)
    if options.get("storage_key_secret") is not None:
        raise ConfigurationError(
            "cookie storage keeps no records, so storage_key_secret (which hashes the ids a "
            "store keeps its records under) has nothing to hash",
            solution="drop storage_key_secret=, or keep sessions in a server-side store",
        )
    storage = _cookie_storage(as_cookie(cookie), encryption_keys, allow_unsigned, options)
    storage.revocation = _revocation_store(revocation)
    return storage


def _cookie_storage(
    resolved: Cookie,
    encryption_keys: Sequence[str | bytes] | None,
    allow_unsigned: bool,
    options: StorageOptions,
) -> CookieSessionStorage:
    absolute_timeout = options.get("absolute_timeout")
    default_ttl = resolved_ttl(options)[0]
    if encryption_keys is not None or _is_encrypted(resolved):
        from ..encryption import EncryptedCookie, as_encrypted

        sealed = as_encrypted(resolved, encryption_keys) if encryption_keys is not None else resolved
        assert isinstance(sealed, EncryptedCookie)
        return EncryptedCookieSessionStorage(
            cookie=sealed,
            rolling=options.get("rolling", True),
            save_uninitialized=options.get("save_uninitialized", False),
            absolute_timeout=absolute_timeout,
            default_ttl=default_ttl,
            clock=options.get("clock", utcnow),
            codec=options.get("codec"),
        )
    if absolute_timeout is not None or default_ttl is not None:
        raise ConfigurationError(
            "signed cookie storage cannot enforce absolute_timeout or ttl (default_ttl) on the "
            "server: Remix's signed format has no room for a timestamp",
            solution="pass encryption_keys=[...] for server-enforced timeouts, or use a server-side store",
        )
    _refuse_unsigned(resolved, allow_unsigned)
    return CookieSessionStorage(
        cookie=resolved,
        rolling=options.get("rolling", True),
        save_uninitialized=options.get("save_uninitialized", False),
        clock=options.get("clock", utcnow),
        codec=options.get("codec"),
    )


def _revocation_store(revocation: SessionStorage | Store | None) -> Store | None:
    store = revocation.store if isinstance(revocation, SessionStorage) else revocation
    if store is not None and not store.user_index:
        raise ConfigurationError(
            f"revocation= needs a store with a user index; the {store.kind} store has none",
            solution="pass a memory, file, SQLite, Redis, Upstash, PostgreSQL or DynamoDB storage",
        )
    return store


def _refuse_unsigned(cookie: Cookie, allowed: bool) -> None:
    """Signed cookie storage with no secrets would trust whatever data a client sends."""
    if cookie.is_signed:
        return
    if not allowed:
        raise ConfigurationError(
            f"the {cookie.name!r} cookie would carry session data unsigned: any client could forge it",
            solution="create the cookie with secrets=[...] (or pass encryption_keys=[...]); "
            "allow_unsigned=True accepts forged data knowingly",
        )
    cookie.warn_if_unsigned()


def _is_encrypted(cookie: Cookie) -> bool:
    # Checked without importing cryptography: no EncryptedCookie exists before its module does.
    module = sys.modules.get("websession.encryption")
    return module is not None and isinstance(cookie, module.EncryptedCookie)


def open_url(url: SplitResult, options: dict[str, Any]) -> CookieSessionStorage:
    """``cookie://`` (data in the cookie; pass ``secrets``, or ``encryption_keys`` for sealed
    cookies, a list or comma-separated; ``absolute_timeout`` and ``ttl`` need encryption)."""
    keys = options.pop("encryption_keys", None)
    if isinstance(keys, str):
        keys = [k for k in keys.split(",") if k]
    cookie = cookie_from_options(options)
    shared = url_options(options)
    reject_unknown("cookie", options)
    return create_cookie_session_storage(cookie=cookie, encryption_keys=keys, **shared)
