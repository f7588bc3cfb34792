"""Django: a session engine that keeps ``request.session`` in any websession storage.

Settings::

    SESSION_ENGINE = "websession.integrations.django"
    WEBSESSION_STORAGE = "sqlite:///var/lib/myapp/sessions.db"   # or redis://..., file://...
    MIDDLEWARE = [
        ...,
        "websession.integrations.django.SessionMiddleware",  # instead of Django's, for 503s
        ...,
    ]

``WEBSESSION_STORAGE`` is a store URL (see :func:`websession.open_store`), a dotted path to a
storage object (or to a function returning one), or the storage object itself. A URL without
``secrets`` signs cookies with a key derived from ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS``
still verify, so rotating Django's key rotates the cookie's).

On a store with a user index, ``login()`` also adds the session to the user's index (so
``get_storage().sessions_of(user.pk)`` lists the user's devices and ``revoke_user`` signs them
out), with the labels ``WEBSESSION_DEVICE_LABELS`` (a callable: request -> dict) returns;
``logout()`` removes it (docs/users.md).

``request.session``, ``login()`` (which calls ``cycle_key``), ``logout()`` (``flush``),
``set_expiry``, the test client's ``login``/``session`` and ``manage.py clearsessions`` work
unchanged. Django's cookie settings (``SESSION_COOKIE_NAME``, ``SESSION_COOKIE_AGE``, ...)
still govern the cookie; its value is the session id signed the websession (Remix) way, so a
Remix app with the same secret can read it. A save writes only the keys this request changed,
so concurrent requests never undo each other, and a session that another request deleted is
never brought back (Django answers that request with ``SessionInterrupted``).

When the store cannot be reached, :class:`SessionMiddleware` (a drop-in subclass of Django's)
answers 503 (``WEBSESSION_UNAVAILABLE_STATUS``) instead of a 500 with a traceback.

Example (a minimal project, as in ``tests/integrations/django_project``)::

    # settings.py
    INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
    SESSION_ENGINE = "websession.integrations.django"
    WEBSESSION_STORAGE = "sqlite:///tmp/sessions.db"
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from asgiref.sync import sync_to_async
from django import conf
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import salted_hmac
from django.utils.module_loading import import_string

from .. import codec
from ..changes import Changes
from ..errors import StoreUnavailableError
from ..storage import SessionStorage
from ..stores.base import Record
from ..urls import open_store
from ..users import USER_KEY, Entry, Taken, check_labels, check_user_id, user_of
from ._shared import RETRY_AFTER, UNAVAILABLE_BODY, log_unavailable

#: What encodeURIComponent leaves alone: the session key is the cookie value Remix would send.
_URI_COMPONENT_SAFE = "-_.!~*'()"
_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9%._~!*'()\-]{8,1024}")
_SETTINGS = ("WEBSESSION_STORAGE", "SECRET_KEY", "SECRET_KEY_FALLBACKS")

_storages: dict[tuple[Any, ...], SessionStorage] = {}
_storages_lock = threading.Lock()


def derived_secret(secret_key: str) -> str:
    """The cookie-signing secret derived from a Django ``SECRET_KEY``; the key itself is never
    used for anything but Django's own signing.

    Example::

        >>> len(derived_secret("django-insecure-example"))
        64
    """
    digest = salted_hmac(
        "websession.integrations.django", "cookie-secret", secret=secret_key, algorithm="sha256"
    )
    return str(digest.hexdigest())


def get_storage() -> SessionStorage:
    """The storage named by ``settings.WEBSESSION_STORAGE`` (opened once, reopened when the
    setting changes)."""
    value = getattr(conf.settings, "WEBSESSION_STORAGE", None)
    key = (
        value if isinstance(value, str) else id(value),
        conf.settings.SECRET_KEY,
        tuple(getattr(conf.settings, "SECRET_KEY_FALLBACKS", ())),
    )
    storage = _storages.get(key)
    if storage is None:
        with _storages_lock:
            storage = _storages.get(key)
            if storage is None:
                storage = _storages[key] = _open(value)
    return storage


def _open(value: Any) -> SessionStorage:
    solution = 'set WEBSESSION_STORAGE = "sqlite:///path/to/sessions.db" (or another store URL)'
    if value is None:
        raise ImproperlyConfigured(f"websession needs settings.WEBSESSION_STORAGE: {solution}")
    storage: Any = value
    if isinstance(value, str) and "://" in value:
        options: dict[str, Any] = {}
        if "secrets" not in dict(parse_qsl(urlsplit(value).query)):
            keys = [conf.settings.SECRET_KEY, *getattr(conf.settings, "SECRET_KEY_FALLBACKS", ())]
            options["secrets"] = [derived_secret(k) for k in keys if k]
        storage = open_store(value, **options)
    elif isinstance(value, str):
        storage = import_string(value)
    if callable(storage) and not isinstance(storage, SessionStorage):
        storage = storage()
    if not isinstance(storage, SessionStorage):
        raise ImproperlyConfigured(
            f"WEBSESSION_STORAGE gave {type(storage).__name__}; Django sessions need a store-backed "
            f"SessionStorage (the cookie store keeps no records): {solution}"
        )
    return storage


def _forget_storages(*, setting: str, **kwargs: Any) -> None:
    if setting in _SETTINGS:
        with _storages_lock:
            _storages.clear()


setting_changed.connect(_forget_storages, dispatch_uid="websession.integrations.django")


class SessionStore(SessionBase):  # type: ignore[misc]
    """Django's session API over a websession storage. Django creates it; you never need to."""

    def __init__(self, session_key: str | None = None) -> None:
        self.storage = get_storage()
        self._record: Record | None = None
        self._seen: dict[str, str] = {}
        self._signing_in: tuple[str, dict[str, str]] | None = None
        super().__init__(session_key)

    # -- keys: the signed id, as the browser holds it --------------------------------------

    def _validate_session_key(self, key: object) -> bool:
        return self._find(key) is not None

    def _find(self, key: object) -> tuple[str, bool] | None:
        """The id inside a session key and whether a retired secret signed it; None if invalid
        or past the storage's absolute timeout."""
        if not isinstance(key, str) or not _KEY_CHARACTERS.fullmatch(key):
            return None
        verified = self.storage.cookie.unsign(unquote(key))
        if verified is None or not self.storage.usable_id(verified.value, self.storage.clock()):
            return None
        return verified.value, verified.stale

    def _key_for(self, session_id: str) -> str:
        return quote(self.storage.cookie.sign(session_id), safe=_URI_COMPONENT_SAFE)

    @property
    def session_id(self) -> str | None:
        """The store's id for this session (the session key is its signed form)."""
        found = self._find(self.session_key)
        return None if found is None else found[0]

    # -- the five methods Django asks for --------------------------------------------------

    def load(self) -> dict[str, Any]:
        found = self._find(self.session_key)
        record = None if found is None else self._read(found[0])
        if found is None or record is None:
            self._session_key = None
            self._remember(None)
            return {}
        self._remember(record)
        if found[1]:
            # Signed with a retired secret: re-sign, and make the middleware send the new cookie.
            self._session_key = self._key_for(found[0])
            self.modified = True
        return dict(record.data)

    def exists(self, session_key: str) -> bool:
        found = self._find(session_key)
        return found is not None and self._read(found[0]) is not None

    def create(self) -> None:
        data = self._get_session(no_load=True)
        expires = self._expires(None)
        if expires is not None and expires <= self.storage.clock():
            # A lifetime that is already over (set_expiry(-10)): nothing to store, as in
            # SessionStorage; the key names no record, so it loads as an empty session.
            self._session_key = self._key_for(self.storage.store.new_id())
            self._remember(None)
            self.modified = True
            return
        new_id = self.storage.store.create(data, expires)
        self._session_key = self._key_for(new_id)
        self._remember(Record(dict(data), expires))
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        if self._signing_in is not None:
            self._save_signed_in(*self._signing_in)
            return
        if self.session_key is None or must_create:
            self.create()
            return
        data = self._get_session()
        found = self._find(self.session_key)
        if found is None:  # load() found nothing and dropped the key
            self.create()
            return
        session_id = found[0]
        expires = self._expires(session_id)
        if expires is not None and expires <= self.storage.clock():
            # Already over: delete rather than write a record that lives on (a Redis TTL of at
            # least one second, a row that clearsessions would have to find).
            self.storage.store.delete(session_id)
            self._remember(None)
            return
        seen = self._record
        if seen is None:
            # The data was replaced (clear()) without being loaded: diff against what is stored.
            seen = self._read(session_id)
            if seen is None:
                raise UpdateError
            self._seen = {}
            removed = frozenset(seen.data) - frozenset(data)
        else:
            removed = frozenset(self._seen) - frozenset(data)
        record = self.storage.store.update(session_id, self._changes(data, removed), expires, seen)
        if record is None:
            raise UpdateError
        self._remember(record)

    def cycle_key(self) -> None:
        """A new key for the session (``login()`` calls it): the old record is *taken* (removed
        and returned atomically) and recreated under a new id with this request's changes, so
        a logout racing the login never brings the old session's data back."""
        data = self._get_session()
        found = self._find(self.session_key)
        if found is None:
            self.create()
            return
        user = self._bound_user()
        if user is not None:
            # A signed-in session (a password change's update_session_auth_hash): it moves
            # with its index entry, and only if no revocation of its user landed meanwhile.
            self._move_bound(user, None)
            return
        taken = self.storage.store.take(found[0])
        base = {} if taken is None else taken.data
        removed = frozenset(self._seen) - frozenset(data)
        self._session_cache = self._changes(data, removed).apply(base)
        self._session_key = None
        self.create()

    def delete(self, session_key: str | None = None) -> None:
        key = self.session_key if session_key is None else session_key
        found = self._find(key)
        if found is None:
            return
        user = self._bound_user() if key == self.session_key else None
        if user is None:
            self.storage.store.delete(found[0])
        else:
            self.storage.store.take_for_user(found[0], user)  # logout: the device leaves the index
        if key == self.session_key:
            self._remember(None)

    # -- users and their devices -----------------------------------------------------------

    def sign_in(self, user_id: str | int, labels: dict[str, str] | None = None) -> None:
        """Add this session to ``user_id``'s index at its next save, under a new key; the
        ``user_logged_in`` signal calls it when the store keeps a user index."""
        self._signing_in = (check_user_id(user_id), check_labels(labels))
        self.modified = True

    def _bound_user(self) -> str | None:
        record = self._record
        if record is None or not self.storage.store.user_index:
            return None
        return user_of(record.data)

    def _save_signed_in(self, user: str, labels: dict[str, str]) -> None:
        """Move the session to a new id that is bound to ``user`` (a sign-in)."""
        self._signing_in = None
        self._move_bound(user, labels)

    def _move_bound(self, user: str, labels: dict[str, str] | None) -> None:
        """Move the session to a new id bound to ``user``: the stored record is taken (with its
        index entry, if it had one) and recreated with this request's changes, so a sign-out
        racing the move never brings the old data back. ``labels`` is a sign-in's (a new
        entry, whatever revocations came before); None is the same signed-in session moving,
        which keeps its entry and moves only if its user was not revoked meanwhile."""
        store = self.storage.store
        data = dict(self._get_session())
        data[USER_KEY] = {"id": user}
        found = self._find(self.session_key)
        now = store.clock()
        created, kept_labels, generation = now, labels or {}, None
        if found is not None:
            old_user = self._bound_user()
            taken = (
                store.take_for_user(found[0], old_user) if old_user else Taken(store.take(found[0]), None, 0)
            )
            if labels is None:
                if taken.record is None:
                    self._signed_out()  # revoked (or destroyed) meanwhile
                    return
                generation = taken.generation
                if taken.entry is not None:
                    created, kept_labels = taken.entry.created, dict(taken.entry.labels)
            base = {} if taken.record is None else taken.record.data
            data = self._changes(data, frozenset(self._seen) - frozenset(data)).apply(base)
        expires = self._expires(None)
        lifetime = None if expires is None else (expires - now).total_seconds()
        new_id = store.create_for_user(data, expires, user, Entry(created, kept_labels, lifetime), generation)
        if new_id is None:
            self._signed_out()  # its user was revoked while it moved: it must not live on
            return
        self._session_key = self._key_for(new_id)
        self._session_cache = data
        self._remember(Record(dict(data), expires))
        self.modified = True

    def _signed_out(self) -> None:
        """The session was revoked: this request goes on with a fresh, empty one."""
        self._session_cache = {}
        self._session_key = None
        self._remember(None)
        self.modified = True

    async def acycle_key(self) -> None:
        """Async twin of :meth:`cycle_key` (Django's own would create and delete, unindexed)."""
        await sync_to_async(self.cycle_key)()

    @classmethod
    def clear_expired(cls) -> None:
        get_storage().store.purge_expired()

    # -- plumbing --------------------------------------------------------------------------

    def _read(self, session_id: str) -> Record | None:
        record = self.storage.store.read(session_id, None)
        if record is None or self.storage.store.is_expired(record.expires):
            return None
        return record

    def _changes(self, data: dict[str, Any], removed: frozenset[str]) -> Changes:
        """What this request changed: keys whose JSON differs from when they were read."""
        return Changes({k: v for k, v in data.items() if self._seen.get(k) != codec.dumps(v)}, removed)

    def _remember(self, record: Record | None) -> None:
        """Keep the record as read or written, with each value's JSON to tell what changed."""
        self._record = record
        self._seen = {} if record is None else {k: codec.dumps(v) for k, v in record.data.items()}

    def _expires(self, session_id: str | None) -> datetime | None:
        """When the record expires: an explicit store ``ttl``, else Django's expiry age, capped
        by the storage's ``absolute_timeout`` (the same rules as ``SessionStorage``)."""
        store = self.storage.store
        now = store.clock()
        if store.explicit_ttl and store.default_ttl is not None:
            expires = now + timedelta(seconds=store.default_ttl)
        else:
            expires = now + timedelta(seconds=self.get_expiry_age())
        return self.storage.capped(expires, now, session_id)


def _index_sign_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """``user_logged_in``: index the session under the user, where the store keeps an index."""
    session = getattr(request, "session", None)
    if isinstance(session, SessionStore) and session.storage.store.user_index:
        labels = getattr(conf.settings, "WEBSESSION_DEVICE_LABELS", None)
        session.sign_in(user.pk, labels(request) if callable(labels) else None)


user_logged_in.connect(_index_sign_in, dispatch_uid="websession.integrations.django.sign_in")


class SessionMiddleware(DjangoSessionMiddleware):  # type: ignore[misc]
    """Django's ``SessionMiddleware``, answering 503 when the session store cannot be reached
    (while loading in a view, or while saving) instead of a 500 with a traceback."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if getattr(request, "_websession_unavailable", False):
            return response
        try:
            result: HttpResponse = super().process_response(request, response)
        except StoreUnavailableError as exc:
            return self._unavailable(request, exc)
        return result

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, StoreUnavailableError):
            return self._unavailable(request, exception)
        return None

    def _unavailable(self, request: HttpRequest, exc: StoreUnavailableError) -> HttpResponse:
        status = int(getattr(conf.settings, "WEBSESSION_UNAVAILABLE_STATUS", 503))
        log_unavailable(exc, status)
        request._websession_unavailable = True
        return HttpResponse(
            UNAVAILABLE_BODY,
            status=status,
            content_type="text/plain; charset=utf-8",
            headers={"Retry-After": RETRY_AFTER, "Cache-Control": "no-store"},
        )


__all__ = ["SessionMiddleware", "SessionStore", "derived_secret", "get_storage"]
