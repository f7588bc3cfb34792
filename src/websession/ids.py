"""Session ids: how they are made and how an id from a cookie is checked.

An id is 32 lowercase hex characters: 128 bits from :mod:`secrets`. Lowercase hex is safe as
a file name on case-insensitive file systems and as a key in every store. An id that arrives in
a cookie is checked with :func:`is_valid_id` before any store sees it.

Example::

    >>> session_id = generate_id()
    >>> len(session_id), is_valid_id(session_id), is_valid_id("../etc/passwd")
    (32, True, False)
"""

from __future__ import annotations

import re
import secrets
import uuid

ID_BYTES = 16

_HEX_ID = re.compile(r"[0-9a-f]{32}")
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def generate_id() -> str:
    """Return a new random id: 32 lowercase hex characters (128 bits).

    Example::

        >>> len(generate_id())
        32
    """
    return secrets.token_hex(ID_BYTES)


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

        >>> is_valid_id("0" * 32), is_valid_id("0" * 31), is_valid_id(None)
        (True, False, False)
    """
    return isinstance(value, str) and _HEX_ID.fullmatch(value) is not None


def is_valid_uuid(value: object) -> bool:
    """Tell whether ``value`` is a lowercase UUID4 string (remix-v3 ids).

    Example::

        >>> is_valid_uuid("2f1c7a52-7d3e-4d8e-9d43-2b7b1c0e9a10")
        True
    """
    return isinstance(value, str) and _UUID4.fullmatch(value) is not None
