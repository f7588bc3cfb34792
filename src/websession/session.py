"""Session: the data of one visitor, as a dict, plus Remix's has/get/set/flash/unset.

A session remembers what this request changed (keys set, keys removed) so that a commit can
apply exactly those changes to what is stored now. Values must be what the storage's codec can
hold (plain JSON by default, see :mod:`websession.codec`); anything else is refused when it is
set.

Example::

    >>> session = Session({"user": 7, "__flash_notice__": "Saved"})
    >>> session.get("notice"), session.get("notice")
    ('Saved', None)
    >>> session["cart"] = [1]
    >>> sorted(session.changes.set), sorted(session.changes.removed)
    (['cart'], ['__flash_notice__'])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, cast

from . import codec
from .changes import Changes
from .codec import PLAIN_JSON, JSONCodec
from .stores.base import Record
from .users import USER_KEY, check_labels, check_user_id, user_of

if TYPE_CHECKING:
    # PEP 696 defaults: a bare ``Session`` is ``Session[Any, Any]``, so code written before the
    # type parameters existed type-checks unchanged (even under ``disallow_any_generics``).
    # Type checkers read typing_extensions from their own stubs: nothing is imported at run time.
    from typing_extensions import TypeVar

    Data = TypeVar("Data", bound=Mapping[str, object], default=Any)
    Flash = TypeVar("Flash", bound=Mapping[str, object], default=Any)
else:
    from typing import TypeVar

    Data = TypeVar("Data")
    Flash = TypeVar("Flash")

_MISSING: Any = object()


def flash_key(name: str) -> str:
    """The stored key of a flash value, as Remix names it.

    Example::

        >>> flash_key("error")
        '__flash_error__'
    """
    return f"__flash_{name}__"


def _is_flash_key(key: str) -> bool:
    return len(key) >= 10 and key.startswith("__flash_") and key.endswith("__")


class Session(MutableMapping[str, Any], Generic[Data, Flash]):
    """The data of one session. Dict-like, with Remix's has/get/set/flash/unset.

    Storages create sessions; applications read and change them, then commit them.

    ``Session[MyData, MyFlash]`` (two TypedDicts, as Remix's ``createSessionStorage<Data,
    Flash>``) types :attr:`typed` as ``MyData`` and :attr:`flashes` as ``MyFlash``, so a type
    checker catches a wrong key or value type there. The dict-like methods stay untyped
    (``Any``); a bare ``Session`` is ``Session[Any, Any]``.
    """

    __slots__ = (
        "_codec",
        "_data",
        "_destroyed",
        "_id",
        "_lent",
        "_login",
        "_record",
        "_regenerate",
        "_removed",
        "_set",
        "binding",
        "resign",
        "stale_cookie",
    )

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        id: str | None = None,
        *,
        record: Record | None = None,
        codec: JSONCodec | None = None,
    ) -> None:
        self._data: dict[str, Any] = dict(data) if data else {}
        self._codec = PLAIN_JSON if codec is None else codec
        self._id = id
        self._record = record
        self._set: dict[str, Any] = {}
        self._removed: set[str] = set()
        self._lent: dict[str, str] | None = None
        self._destroyed = False
        self._regenerate = False
        self._login: dict[str, str] | None = None
        #: The request carried a session cookie that led to no stored session.
        self.stale_cookie = False
        #: The cookie verified only with a retired secret; the next commit re-signs it.
        self.resign = False
        #: What the cookie's signature is bound to (a client fingerprint), if anything.
        self.binding: str | None = None

    def __repr__(self) -> str:
        short = f"{self._id[:8]}…" if self._id else None
        return f"<Session id={short} keys={sorted(self._data)}>"

    # -- identity and state ----------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The session id, or None for a session that has not been stored yet."""
        return self._id

    @property
    def is_new(self) -> bool:
        """True when no stored record backs this session (yet)."""
        return self._record is None

    @property
    def record(self) -> Record | None:
        """The record as it was read from (or last written to) the store, in its stored form."""
        return self._record

    @property
    def codec(self) -> JSONCodec:
        """The codec that says which values this session can hold (its storage's).

        Example::

            >>> from websession.codec import TaggedJSON
            >>> Session().codec, Session(codec=TaggedJSON()).codec
            (JSONCodec(), TaggedJSON())
        """
        return self._codec

    @property
    def data(self) -> dict[str, Any]:
        """A shallow copy of the data, flash values included."""
        return dict(self._data)

    @property
    def typed(self) -> Data:
        """The data (without flash values) as the ``Data`` type: reads and writes go through the
        session, so they are tracked like ``session[...]``.

        Example::

            >>> session = Session({"user": 7, "__flash_notice__": "Saved"})
            >>> session.typed["user"], list(session.typed)
            (7, ['user'])
            >>> session.typed["theme"] = "dark"
            >>> sorted(session.changes.set)
            ['theme']
        """
        return cast(Data, _DataView(self))

    @property
    def flashes(self) -> Flash:
        """The flash values as the ``Flash`` type: setting one flashes it, reading one returns
        it and removes it (as :meth:`get` does).

        Example::

            >>> session = Session()
            >>> session.flashes["notice"] = "Saved"
            >>> session.data
            {'__flash_notice__': 'Saved'}
            >>> session.flashes.get("notice"), session.flashes.get("notice")
            ('Saved', None)
        """
        return cast(Flash, _FlashView(self))

    @property
    def modified(self) -> bool:
        """True when this request changed the data."""
        return bool(self._set) or bool(self._removed) or self._lent_changed()

    @property
    def changes(self) -> Changes:
        """The keys set and removed during this request, including in-place edits of values
        that were read from the session (``session["cart"].append(...)``)."""
        changed = dict(self._set)
        if self._lent:
            dumps = self._codec.dumps
            for key, before in self._lent.items():
                if key in self._data and key not in changed and dumps(self._data[key]) != before:
                    changed[key] = self._data[key]
        return Changes(changed, frozenset(self._removed))

    @property
    def destroyed(self) -> bool:
        """True once :meth:`destroy` was called (or the store found the session gone)."""
        return self._destroyed

    @property
    def regenerating(self) -> bool:
        """True when the next commit moves the data to a new id."""
        return self._regenerate

    def regenerate(self) -> None:
        """Move this session to a fresh id at the next commit and delete the old record; if
        another request destroyed it meanwhile, nothing is moved and the cookie is expired.

        Call it when privileges change (sign-in) to defeat session fixation.

        Example::

            >>> session = Session()
            >>> session.regenerate()
            >>> session.regenerating
            True
        """
        self._regenerate = True

    @property
    def user(self) -> str | None:
        """The id of the user this session is signed in as (:meth:`login`), or None.

        Example::

            >>> Session({"__user__": {"id": "ada"}}).user, Session().user
            ('ada', None)
        """
        return user_of(self._data)

    @property
    def signing_in(self) -> dict[str, str] | None:
        """The labels of a :meth:`login` that the next commit carries out, or None."""
        return self._login

    def login(self, user_id: str | int, *, labels: Mapping[str, str] | None = None) -> None:
        """Sign this session in as ``user_id``: the next commit moves it to a fresh id (session
        fixation defence), records the user, and adds the session to the user's index with
        ``labels`` (a user agent, an IP prefix, a device name), atomically with the write.

        Example::

            >>> session = Session({"cart": [1]})
            >>> session.login(42, labels={"device": "phone"})
            >>> session.user, session.regenerating, session["cart"]
            ('42', True, [1])
        """
        user = check_user_id(user_id)
        checked = check_labels(labels)
        self.regenerate()  # first: a session that cannot move (a WebSocket's) refuses here
        self._login = checked
        self[USER_KEY] = {"id": user}

    def logout(self) -> None:
        """Sign the user out: the next commit removes this session from the user's index and
        moves its remaining data to a fresh id. Call :meth:`destroy` instead to drop the data too.

        Example::

            >>> session = Session({"__user__": {"id": "ada"}, "theme": "dark"})
            >>> session.logout()
            >>> session.user, dict(session), session.regenerating
            (None, {'theme': 'dark'}, True)
        """
        self.regenerate()  # first: a session that cannot move (a WebSocket's) refuses here
        self._login = None
        if USER_KEY in self._data:
            del self[USER_KEY]

    def destroy(self) -> None:
        """Drop all data; the next commit deletes the record and expires the cookie.

        Example::

            >>> session = Session({"a": 1})
            >>> session.destroy()
            >>> len(session), session.destroyed
            (0, True)
        """
        self.clear()
        self._destroyed = True

    # -- Remix verbs -----------------------------------------------------------------------

    def has(self, name: str) -> bool:
        """True when ``name`` holds a value or an unread flash.

        Example::

            >>> Session({"__flash_x__": 1}).has("x")
            True
        """
        return name in self._data or flash_key(name) in self._data

    def get(self, name: str, default: Any = None) -> Any:
        """Return the value of ``name``; a flash value is returned once and then removed.

        Example::

            >>> Session({"a": 1}).get("a"), Session().get("b", 0)
            (1, 0)
        """
        if name in self._data:
            return self._lend(name)
        key = flash_key(name)
        if key in self._data:
            value = self._data.pop(key)
            self._record_removal(key)
            return value
        return default

    def set(self, name: str, value: Any) -> None:
        """Set ``name`` to a value the codec can hold (same as ``session[name] = value``).

        Example::

            >>> session = Session()
            >>> session.set("user", 7)
            >>> session["user"]
            7
        """
        self[name] = value

    def flash(self, name: str, value: Any) -> None:
        """Set a value that the next :meth:`get` of ``name`` returns and removes.

        Example::

            >>> session = Session()
            >>> session.flash("notice", "Saved")
            >>> session.data
            {'__flash_notice__': 'Saved'}
        """
        self[flash_key(name)] = value

    def unset(self, name: str) -> None:
        """Remove ``name`` if it is there (flash values are not touched).

        Example::

            >>> session = Session({"a": 1})
            >>> session.unset("a"); session.unset("missing")
            >>> session.data
            {}
        """
        if name in self._data:
            del self[name]

    # -- MutableMapping --------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        if name not in self._data:
            raise KeyError(name)
        return self._lend(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self._codec.check_value(name, value)
        if not codec.is_utf8_safe(name):
            raise TypeError("session keys must be encodable as UTF-8")
        self._data[name] = value
        self._set[name] = value
        self._removed.discard(name)
        if self._lent:
            self._lent.pop(name, None)

    def __delitem__(self, name: str) -> None:
        del self._data[name]
        self._record_removal(name)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        for name in list(self._data):
            del self[name]

    # dict's own behaviour, which code written for Starlette's dict-based session relies on.

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the most recently added item, as ``dict.popitem`` does.

        Example::

            >>> session = Session({"a": 1, "b": 2})
            >>> session.popitem(), dict(session)
            (('b', 2), {'a': 1})
        """
        if not self._data:
            raise KeyError("popitem(): session is empty")
        name = next(reversed(self._data))
        value = self[name]
        del self[name]
        return name, value

    def __ior__(self, other: Any) -> Session:
        """``session |= {...}``: an update, tracked like any other.

        Example::

            >>> session = Session({"a": 1})
            >>> session |= {"b": 2}
            >>> dict(session), session.modified
            ({'a': 1, 'b': 2}, True)
        """
        self.update(other)
        return self

    def __or__(self, other: Any) -> dict[str, Any]:
        """``session | {...}``: a new plain dict; the session is unchanged."""
        return {**dict(self), **dict(other)}

    # -- used by storages ------------------------------------------------------------------

    def _lend(self, name: str) -> Any:
        """Return a value; remember the JSON of mutable ones to detect in-place edits."""
        value = self._data[name]
        if isinstance(value, self._codec.mutable) and name not in self._set:
            if self._lent is None:
                self._lent = {}
            if name not in self._lent:
                self._lent[name] = self._codec.dumps(value)
        return value

    def _lent_changed(self) -> bool:
        if not self._lent:
            return False
        dumps = self._codec.dumps
        return any(
            key in self._data and dumps(self._data[key]) != before
            for key, before in self._lent.items()
            if key not in self._set
        )

    def _record_removal(self, name: str) -> None:
        self._set.pop(name, None)
        self._removed.add(name)
        if self._lent:
            self._lent.pop(name, None)

    def _committed(self, id: str | None, record: Record | None, data: dict[str, Any] | None = None) -> None:
        """Reset change tracking after a commit wrote ``record`` under ``id``; ``data`` is the
        record's data as session values, when the codec stores them in another form."""
        self._id = id
        self._record = record
        self._set = {}
        self._removed = set()
        self._lent = None
        self._regenerate = False
        self._login = None
        self.stale_cookie = False
        self.resign = False
        if data is not None:
            self._data = data
        elif record is not None:
            self._data = dict(record.data)

    def _mark_destroyed(self) -> None:
        self._data.clear()
        self._committed(None, None)
        self._destroyed = True


class _DataView(MutableMapping[str, Any]):
    """A session's non-flash values, behind :attr:`Session.typed`."""

    __slots__ = ("_session",)

    def __init__(self, session: Session[Any, Any]) -> None:
        self._session = session

    def __getitem__(self, name: str) -> Any:
        if _is_flash_key(name):
            raise KeyError(name)
        return self._session[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._session[name] = value

    def __delitem__(self, name: str) -> None:
        del self._session[name]

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._session if not _is_flash_key(key))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))


class _FlashView(MutableMapping[str, Any]):
    """A session's flash values by name, behind :attr:`Session.flashes`; a read consumes."""

    __slots__ = ("_session",)

    def __init__(self, session: Session[Any, Any]) -> None:
        self._session = session

    def __getitem__(self, name: str) -> Any:
        session = self._session
        key = flash_key(name)
        if key not in session._data:
            raise KeyError(name)
        value = session._data.pop(key)
        session._record_removal(key)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self._session.flash(name, value)

    def __delitem__(self, name: str) -> None:
        del self._session[flash_key(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and flash_key(name) in self._session._data

    def __iter__(self) -> Iterator[str]:
        return (key[8:-2] for key in self._session if _is_flash_key(key))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<flashes {sorted(self)}>"
