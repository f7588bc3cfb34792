"""Session ids: how they are made and how an id from a cookie is checked.

An id is 40 lowercase hex characters: 128 random bits from :mod:`secrets`, then the time it
was made (32-bit Unix seconds). The time lets a storage enforce an absolute session lifetime
without keeping metadata beside the data; the cookie's signature stops anyone from changing it.
Lowercase hex is safe as a file name on case-insensitive file systems and as a key in every
store. An id that arrives in a cookie is checked with :func:`is_valid_id` before any store sees
it.

Example::

    >>> session_id = generate_id()
    >>> len(session_id), is_valid_id(session_id), is_valid_id("../etc/passwd")
    (40, True, False)
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import datetime, timezone

#: Random bytes in every id: 128 bits.
ID_BYTES = 16

_HEX_ID = re.compile(r"[0-9a-f]{40}")
_REMIX_FILE_ID = re.compile(r"[0-9a-f]{16}")
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def generate_id(now: float | None = None) -> str:
    """Return a new id: 128 random bits and the creation time, as 40 lowercase hex characters.

    Example::

        >>> len(generate_id())
        40
    """
    stamp = int(time.time() if now is None else now) & 0xFFFFFFFF
    return f"{secrets.token_hex(ID_BYTES)}{stamp:08x}"


def created_at(id: str) -> datetime | None:
    """When an id from :func:`generate_id` was made; None for other ids.

    Example::

        >>> created_at(generate_id(now=0)).year
        1970
    """
    if not is_valid_id(id):
        return None
    return datetime.fromtimestamp(int(id[32:], 16), timezone.utc)


def generate_uuid() -> str:
    """Return a random UUID4 string, the id form of the remix-v3 stack (122 random bits).

    Example::

        >>> is_valid_uuid(generate_uuid())
        True
    """
    return str(uuid.uuid4())


def is_valid_id(value: object) -> bool:
    """Tell whether ``value`` is an id websession could have issued.

    Example::

        >>> is_valid_id("0" * 40), is_valid_id("0" * 32), is_valid_id(None)
        (True, False, False)
    """
    return isinstance(value, str) and _HEX_ID.fullmatch(value) is not None


def generate_remix_file_id() -> str:
    """An id as Remix's ``createFileSessionStorage`` makes them: 64 random bits, 16 hex.

    Only the file store's ``remix_ids`` opt-in issues these; they are half the 128 bits of
    :func:`generate_id` and carry no creation time.

    Example::

        >>> len(generate_remix_file_id()), is_remix_file_id(generate_remix_file_id())
        (16, True)
    """
    return secrets.token_hex(8)


def is_remix_file_id(value: object) -> bool:
    """Tell whether ``value`` is a Remix file-storage id: 16 lowercase hex characters.

    Example::

        >>> is_remix_file_id("0123456789abcdef"), is_remix_file_id("0123456789ABCDEF")
        (True, False)
    """
    return isinstance(value, str) and _REMIX_FILE_ID.fullmatch(value) is not None


def is_valid_uuid(value: object) -> bool:
    """Tell whether ``value`` is a lowercase UUID4 string (remix-v3 ids).

    Example::

        >>> is_valid_uuid("2f1c7a52-7d3e-4d8e-9d43-2b7b1c0e9a10")
        True
    """
    return isinstance(value, str) and _UUID4.fullmatch(value) is not None
