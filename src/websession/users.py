"""Users and their devices: the per-user index of sessions, and how a session is bound to it.

``session.login(user_id)`` binds a session to a user: the next commit moves it to a fresh id
(fixation defence), records the user in the session under the reserved key ``__user__``, and
adds the session to the user's index *in the same store*, atomically with the write. The index
is what ``storage.sessions_of(user)`` lists ("your devices") and what ``storage.revoke_user``
empties ("sign out everywhere") at a cost of O(sessions of that user), never a scan.

Each user also has a *generation*, a counter that every revocation increments. A session that
moves to a new id (regenerate) is re-indexed only if its user's generation did not change since
the move began, so a regenerate racing a revocation can never carry a revoked session over to a
new id. Cookie storages, whose sessions cannot be deleted server-side, keep the generation in
the cookie and compare it on read (docs/users.md).

Example::

    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    >>> session = storage.get_session(None)
    >>> session.login("ada", labels={"device": "laptop"})
    >>> header = storage.commit_session(session)
    >>> [device.labels for device in storage.sessions_of("ada")]
    [{'device': 'laptop'}]
    >>> storage.revoke_user("ada")
    1
    >>> storage.get_session(header.split(";")[0]).user is None
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeGuard

from .errors import UserIndexUnsupportedError

#: The reserved session key that names the signed-in user: ``{"id": "<user id>"}`` (plus
#: ``"gen"``, the user's generation at sign-in, in cookie storages). Like Remix's
#: ``__flash_<name>__`` keys it is part of the stored record, so a JavaScript app sharing the
#: store sees it; websession's own API reads it through ``session.user``.
USER_KEY = "__user__"

#: A label value is short text: a user agent, an IP prefix, a device name.
MAX_LABEL_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Device:
    """One signed-in session of a user, as the user's index knows it.

    ``key`` is the session's storage key: its id, or a keyed hash of it when the store was
    given ``storage_key_secret`` (then the id itself is not recoverable, by design). Pass it to
    ``storage.revoke``. ``last_seen`` is when the session was last used, to within a minute
    (see :func:`last_seen`); ``expires`` is when it ends if unused.

    Example::

        >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> Device("ab" * 20, created=now, last_seen=now, labels={"device": "phone"}).labels
        {'device': 'phone'}
    """

    key: str
    created: datetime
    last_seen: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    expires: datetime | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """What a store keeps in a user's index for one session: when it was signed in, its
    labels, and the lifetime its record was given (from which :func:`last_seen` follows)."""

    created: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    lifetime: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as stored (epoch seconds), the same in every store.

        Example::

            >>> Entry(datetime(2026, 1, 1, tzinfo=timezone.utc), {"ua": "x"}, 60).to_json()
            {'created': 1767225600.0, 'labels': {'ua': 'x'}, 'lifetime': 60}
        """
        return {"created": self.created.timestamp(), "labels": dict(self.labels), "lifetime": self.lifetime}

    @classmethod
    def from_json(cls, value: Any) -> Entry | None:
        """Read a stored entry back; None when it is not one (a corrupt index is pruned).

        Example::

            >>> Entry.from_json({"created": 0, "labels": {}, "lifetime": None}).created.year
            1970
            >>> Entry.from_json("garbage") is None, Entry.from_json({"created": float("nan")}) is None
            (True, True)
        """
        if not isinstance(value, dict):
            return None
        created, labels, lifetime = value.get("created"), value.get("labels", {}), value.get("lifetime")
        if not _is_seconds(created, _MAX_EPOCH):
            return None
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            return None
        if lifetime is not None and not _is_seconds(lifetime, _MAX_LIFETIME):
            return None
        return cls(datetime.fromtimestamp(created, timezone.utc), labels, lifetime)

    def device(self, key: str, expires: datetime | None, now: datetime) -> Device:
        """The :class:`Device` for a live record stored under ``key`` that expires at ``expires``."""
        return Device(key, self.created, last_seen(self, expires, now), dict(self.labels), expires)


#: The largest epoch second a datetime holds (9999-12-31), and a lifetime far beyond any session's.
_MAX_EPOCH = 253402300799
_MAX_LIFETIME = 100 * 365 * 86400


def _is_seconds(value: Any, most: float) -> TypeGuard[float]:
    """A finite number of seconds in [0, most]: JSON may hold NaN, infinities and huge numbers."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= most


@dataclass(frozen=True, slots=True)
class Taken:
    """What :meth:`Store.take_for_user` removed: the record, its index entry, and the user's
    generation read in the same atomic step."""

    record: Any  # Record | None; typed loosely to keep this module free of store imports
    entry: Entry | None
    generation: int


def last_seen(entry: Entry, expires: datetime | None, now: datetime) -> datetime:
    """When a session was last used, derived from its record's expiry: a rolling session's
    expiry is moved to *now + lifetime* whenever it is used (in the read's own round trip, or at
    most about once a minute on stores where that is a write), so *expiry - lifetime* is the
    last use, at no cost on any request. A record without an expiry reports its sign-in time.

    Example::

        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> last_seen(Entry(t, lifetime=3600), t + timedelta(hours=2), t + timedelta(hours=1.5))
        datetime.datetime(2026, 1, 1, 1, 0, tzinfo=datetime.timezone.utc)
    """
    if expires is None or entry.lifetime is None:
        return entry.created
    try:
        seen = expires - timedelta(seconds=entry.lifetime)
    except OverflowError:  # an expiry near year 1: no use to derive anything from
        return entry.created
    return min(max(seen, entry.created), now)


def user_of(data: Mapping[str, Any]) -> str | None:
    """The user a stored session is bound to, or None.

    Example::

        >>> user_of({"__user__": {"id": "ada"}}), user_of({"__user__": "forged"}), user_of({})
        ('ada', None, None)
    """
    binding = data.get(USER_KEY)
    if isinstance(binding, dict):
        user = binding.get("id")
        if isinstance(user, str) and user:
            return user
    return None


def generation_of(data: Mapping[str, Any]) -> int | None:
    """The user generation a cookie-stored session was signed in at, or None.

    Example::

        >>> generation_of({"__user__": {"id": "ada", "gen": 3}}), generation_of({"__user__": {"id": "a"}})
        (3, None)
    """
    binding = data.get(USER_KEY)
    if isinstance(binding, dict):
        gen = binding.get("gen")
        if isinstance(gen, int) and not isinstance(gen, bool):
            return gen
    return None


def check_user_id(user: object) -> str:
    """A user id as stored: a non-empty string (an int is accepted and turned into one).

    Example::

        >>> check_user_id(42), check_user_id("ada")
        ('42', 'ada')
    """
    if isinstance(user, bool) or not isinstance(user, (str, int)):
        raise TypeError("a user id must be a str or an int")
    text = str(user)
    if not text or len(text) > 1024:
        raise ValueError("a user id must be 1 to 1024 characters")
    return text


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Labels as stored: a small dict of short strings.

    Example::

        >>> check_labels({"device": "phone"})
        {'device': 'phone'}
    """
    if not labels:
        return {}
    checked: dict[str, str] = {}
    for name, value in labels.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("labels map str to str")
        if len(name) > 64 or len(value) > MAX_LABEL_LENGTH:
            raise ValueError(f"label {name[:64]!r} is too long (names 64, values {MAX_LABEL_LENGTH} chars)")
        checked[name] = value
    if len(checked) > 16:
        raise ValueError("at most 16 labels per session")
    return checked


def user_digest(user: str) -> str:
    """The hex digest that names a user's index in a store (user ids may hold any character;
    the digest is safe in a Redis key, a file name or a DynamoDB key).

    Example::

        >>> user_digest("ada")[:16]
        'd1ab8cf5fb7051bf'
    """
    return hashlib.sha256(b"websession:user:" + user.encode("utf-8", "surrogatepass")).hexdigest()


__all__ = [
    "USER_KEY",
    "Device",
    "Entry",
    "Taken",
    "UserIndexUnsupportedError",
    "check_labels",
    "check_user_id",
    "generation_of",
    "last_seen",
    "user_digest",
    "user_of",
]
