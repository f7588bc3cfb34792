"""Encrypted cookies: AES-256-GCM instead of a signature, with rotating keys.

An :class:`EncryptedCookie` is a :class:`~websession.cookie.Cookie` that *seals* its value:
the browser (and anyone who reads its cookie jar) sees only ciphertext, and any change to it
makes the value fail to open. It plugs in wherever a signed cookie does: cookie storage keeps
the whole session in it (see :func:`websession.create_cookie_session_storage` with
``encryption_keys=``), and an id-based storage can use one to hide its ids. It needs the
``cryptography`` package (``pip install 'websession[crypto]'``).

Keys rotate like secrets: the first key seals, every key opens, and a value opened with an
older key is re-sealed with the first one at the next commit. A key is at least 32 bytes of
random material, as ``bytes`` or as text (:func:`generate_encryption_key` makes one).

Wire format (version 1), the cookie value before percent-encoding::

    base64url_nopad( 0x01 || salt[12] || nonce[12] || AES-256-GCM(k, nonce, plaintext, aad) )
    k         = HMAC-SHA256(key, "websession/aes-256-gcm/v1" || 0x00 || salt)
    aad       = "websession/aes-256-gcm/v1" || 0x00 || cookie name || 0x00 || binding digest
    plaintext = UTF-8 compact JSON of the value

Each value is sealed under its own key derived from 96 random bits, with another 96 random
bits of nonce, so the number of cookies one key may seal has no practical limit (plain
AES-GCM with random nonces should stop near 2**32 messages per key). The cookie name is in
the associated data, so a value sealed for one cookie does not open as another; the binding
digest (SHA-256 hex of the binding text, empty when there is none) ties it to a client
fingerprint when the storage is given one.

Example::

    >>> cookie = create_encrypted_cookie("s", keys=["k" * 32])
    >>> header = cookie.serialize({"user": 7})
    >>> "user" in header
    False
    >>> cookie.parse(header.split(";")[0])
    {'user': 7}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import codec
from .cookie import Cookie, CookieAttributes, CookieFormat, CookieOptions, Verified, create_cookie

if TYPE_CHECKING:
    from typing_extensions import Unpack

VERSION = 1
CONTEXT = b"websession/aes-256-gcm/v1"
#: Key material must be at least this long (bytes, or characters for text keys).
MIN_KEY_LENGTH = 32

_SALT = 12
_NONCE = 12
_TAG = 16
_HEADER = 1 + _SALT + _NONCE
#: No browser sends back a cookie longer than this, and websession never writes one: longer
#: values are refused before any decryption work.
_MAX_RAW = 4096


def generate_encryption_key() -> str:
    """Return a new random key (256 bits, URL-safe text) for ``encryption_keys``.

    Example::

        >>> len(generate_encryption_key()) >= MIN_KEY_LENGTH
        True
    """
    return secrets.token_urlsafe(32)


def _key_material(key: str | bytes) -> bytes:
    if isinstance(key, str):
        material = key.encode("utf-8")
        length = len(key)
    elif isinstance(key, (bytes, bytearray)):
        material = bytes(key)
        length = len(material)
    else:
        raise TypeError(f"encryption keys must be str or bytes, not {type(key).__name__}")
    if length < MIN_KEY_LENGTH:
        raise ValueError(
            f"encryption keys must be at least {MIN_KEY_LENGTH} characters or bytes of random "
            "material; make one with websession.encryption.generate_encryption_key()"
        )
    return material


class EncryptedCookie(Cookie):
    """A cookie whose value is sealed with AES-256-GCM rather than signed.

    Build one with :func:`create_encrypted_cookie`. Reading never raises: a value that does not
    open with any key, was sealed for another cookie name or binding, or is not this format,
    is simply absent.
    """

    _resends = False

    def __init__(
        self,
        name: str,
        keys: Sequence[str | bytes],
        options: CookieOptions,
        *,
        format: CookieFormat = "remix",
    ) -> None:
        # The format only orders the attributes: a sealed value is the same in both.
        super().__init__(name, (), options, format=format)
        if isinstance(keys, (str, bytes)) or not keys:
            raise ValueError("an encrypted cookie needs a non-empty list of keys")
        # Keyed once: each seal and open copies the HMAC instead of re-keying it.
        self._derivers = tuple(
            hmac.new(_key_material(key), CONTEXT + b"\x00", hashlib.sha256) for key in keys
        )
        self._aad = CONTEXT + b"\x00" + name.encode("ascii") + b"\x00"

    def __repr__(self) -> str:
        return f"EncryptedCookie({self.name!r}, keys={len(self._derivers)})"

    @property
    def is_signed(self) -> bool:
        """Always True: sealing authenticates the value as a signature does."""
        return True

    def warn_if_unsigned(self) -> None:
        """Encrypted cookies are authenticated; nothing to warn about."""

    def unsign(self, raw: str, *, binding: str | None = None) -> Verified | None:
        """Open a sealed value; None when it does not open with any key."""
        if len(raw) > _MAX_RAW or not _is_urlsafe(raw):
            return None
        try:
            blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (ValueError, binascii.Error):
            return None
        if len(blob) < _HEADER + _TAG or blob[0] != VERSION:
            return None
        salt, nonce, sealed = blob[1 : 1 + _SALT], blob[1 + _SALT : _HEADER], blob[_HEADER:]
        aad = self._aad_for(binding)
        for index, deriver in enumerate(self._derivers):
            try:
                plaintext = AESGCM(_derive(deriver, salt)).decrypt(nonce, sealed, aad)
            except InvalidTag:
                continue
            try:
                value = codec.loads(plaintext)
            except ValueError:
                return None
            return Verified(value, stale=index > 0)
        return None

    def sign(self, value: Any, *, binding: str | None = None) -> str:
        """Seal ``value`` with the first key: the cookie value before percent-encoding.

        Example::

            >>> cookie = create_encrypted_cookie("s", keys=[b"\\x00" * 32])
            >>> cookie.unsign(cookie.sign([1, 2])).value
            [1, 2]
        """
        plaintext = codec.dumps(value).encode("utf-8")
        salt_and_nonce = os.urandom(_SALT + _NONCE)
        salt, nonce = salt_and_nonce[:_SALT], salt_and_nonce[_SALT:]
        sealed = AESGCM(_derive(self._derivers[0], salt)).encrypt(nonce, plaintext, self._aad_for(binding))
        blob = bytes((VERSION,)) + salt_and_nonce + sealed
        return base64.urlsafe_b64encode(blob).decode("ascii").rstrip("=")

    def _aad_for(self, binding: str | None) -> bytes:
        if binding is None:
            return self._aad
        return self._aad + hashlib.sha256(binding.encode("utf-8", "surrogatepass")).hexdigest().encode()


def _derive(deriver: hmac.HMAC, salt: bytes) -> bytes:
    mac = deriver.copy()
    mac.update(salt)
    return mac.digest()


_URLSAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _is_urlsafe(raw: str) -> bool:
    # urlsafe_b64decode silently drops characters outside its alphabet; refuse them instead,
    # so one sealed value has exactly one spelling.
    return raw.isascii() and all(c in _URLSAFE for c in raw.encode("ascii"))


def create_encrypted_cookie(
    name: str, *, keys: Sequence[str | bytes], **attributes: Unpack[CookieAttributes]
) -> EncryptedCookie:
    """Create a cookie sealed with AES-256-GCM. ``keys``: the first seals, all open. The
    attributes are :func:`~websession.cookie.create_cookie`'s.

    Example::

        >>> cookie = create_encrypted_cookie("__session", keys=[generate_encryption_key()], max_age=60)
        >>> cookie.serialize("abc").split("; ")[1:]
        ['Max-Age=60', 'Path=/', 'HttpOnly', 'SameSite=Lax']
    """
    return as_encrypted(create_cookie(name, **attributes), keys)


def as_encrypted(cookie: Cookie, keys: Sequence[str | bytes]) -> EncryptedCookie:
    """An encrypted cookie with ``cookie``'s name and attributes (its secrets are not used).

    Example::

        >>> from websession import create_cookie
        >>> as_encrypted(create_cookie("s", max_age=5), ["k" * 32]).options.max_age
        5
    """
    return EncryptedCookie(cookie.name, keys, cookie.options, format=cookie.format)


__all__ = [
    "EncryptedCookie",
    "MIN_KEY_LENGTH",
    "as_encrypted",
    "create_encrypted_cookie",
    "generate_encryption_key",
]
