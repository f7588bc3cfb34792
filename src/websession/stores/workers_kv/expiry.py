"""Exact expiry on Workers KV, whose own expirations are whole seconds and at least 60 s ahead.

KV refuses expirations less than 60 seconds ahead, so the ``expiration`` sent is clamped to
at least 65 seconds ahead (5 seconds of slack for clock skew), and the exact expiry is kept in
the key's KV metadata as ``{"expires": <epoch milliseconds>}``. An expiration less than
:data:`CLAMP_WINDOW` seconds away may have been clamped, so a read then also fetches the
metadata. Values written by Remix (no metadata) expire at KV's ``expiration``.

What KV guarantees here: it drops a value at its ``expiration`` by itself. What it does not:
drop it at the exact expiry. A clamped value outlives its exact expiry by up to 65 seconds,
invisible to websession (a read compares the metadata with this machine's clock, so it is only
as right as that clock) but not to a Remix Worker sharing the namespace, which reads no
metadata.

Example::

    >>> from datetime import timedelta
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> exact_metadata(now + timedelta(seconds=2))
    {'expires': 1767225602000}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import httpx

MIN_EXPIRATION_AHEAD = 60
#: Added to KV's minimum so a request that takes a while, or a clock a little behind
#: Cloudflare's, is not refused.
EXPIRATION_SLACK = 5
#: A KV expiration closer than this may have been clamped: read the exact one from metadata.
CLAMP_WINDOW = 120


def kv_expiration(expires: datetime, now: datetime) -> int:
    """The ``expiration`` to send KV for an exact expiry: epoch seconds, rounded up, and at
    least 65 seconds after ``now`` (KV refuses less than 60).

    Example::

        >>> from datetime import timedelta
        >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> kv_expiration(now + timedelta(days=1), now) - int(now.timestamp())
        86400
        >>> kv_expiration(now + timedelta(seconds=2), now) - int(now.timestamp())
        65
    """
    floor = math.floor(now.timestamp()) + MIN_EXPIRATION_AHEAD + EXPIRATION_SLACK
    return max(math.ceil(expires.timestamp()), floor)


def exact_metadata(expires: datetime) -> dict[str, int]:
    """The metadata that keeps the exact expiry: epoch milliseconds, rounded up."""
    return {"expires": math.ceil(expires.timestamp() * 1000)}


def moment(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc)


def listed_expiry(entry: Mapping[str, Any]) -> datetime | None:
    """A listed key's expiry: the exact one in its metadata, else KV's ``expiration``."""
    metadata = entry.get("metadata")
    exact = metadata.get("expires") if isinstance(metadata, dict) else None
    try:
        if isinstance(exact, (int, float)):
            return moment(exact / 1000)
        expiration = entry.get("expiration")
        return moment(float(expiration)) if isinstance(expiration, (int, float)) else None
    except (OverflowError, OSError, ValueError):
        return None


def metadata_expiry(response: httpx.Response) -> datetime | None:
    """The exact expiry in a metadata response, or None when it holds none (Remix's values)."""
    try:
        result = response.json().get("result")
        expires = result.get("expires") if isinstance(result, dict) else None
        return None if not isinstance(expires, (int, float)) else moment(expires / 1000)
    except (ValueError, AttributeError, OverflowError, OSError):
        return None


__all__ = [
    "CLAMP_WINDOW",
    "EXPIRATION_SLACK",
    "MIN_EXPIRATION_AHEAD",
    "exact_metadata",
    "kv_expiration",
    "listed_expiry",
    "metadata_expiry",
    "moment",
]
