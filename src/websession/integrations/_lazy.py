"""Lazy sessions: a session whose record is read only when its data is first touched.

A :class:`LazySession` is a real :class:`~websession.Session` (``isinstance`` holds and every
method works) that starts without its data. The first read or write of anything the session
holds loads it through its loader, and the object then becomes an ordinary session in place:
code that kept a reference sees the loaded data, and nothing after the first touch pays for
the laziness. A request that never touches it never reaches the store, and its commit does
nothing.

Example::

    >>> from websession import create_cookie, create_memory_session_storage
    >>> storage = create_memory_session_storage(cookie=create_cookie("s", secrets=["k"]))
    >>> class NewSession:
    ...     def load(self, session):
    ...         fill(session, storage.get_session(None))
    >>> session = LazySession.deferred(NewSession())
    >>> is_loaded(session), isinstance(session, Session)
    (False, True)
    >>> session["n"] = 1
    >>> is_loaded(session), dict(session)
    (True, {'n': 1})
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from ..session import Session

#: Session's own attributes: the data and what tracks it. Touching any of them loads.
SESSION_SLOTS = frozenset(Session.__slots__)


class Loader(Protocol):
    """Loads a deferred session in place, from wherever it is carried (``fill`` does the rest)."""

    def load(self, session: Any) -> None: ...


class Deferred:
    """Mixin: the first touch of an attribute named in ``_triggers`` calls ``_load`` first.

    Session's methods all go through its slots, so catching the slots catches every method,
    including ones added later: an explicit list of wrapped methods would silently miss them
    (and a write to an unloaded session would be lost). The hook runs only until the load
    swaps the class for one without it.
    """

    __slots__ = ()

    _triggers: ClassVar[frozenset[str]] = SESSION_SLOTS

    def _load(self) -> None:
        raise NotImplementedError

    def __getattribute__(self, name: str) -> Any:
        cls = type(self)
        if name in cls._triggers:
            cls._load(self)
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        if name in cls._triggers:
            cls._load(self)
        object.__setattr__(self, name, value)


class LoadedSession(Session):
    """What a :class:`LazySession` becomes once loaded: an ordinary session that keeps its loader."""

    __slots__ = ("_loader",)

    @property
    def loader(self) -> Loader:
        """The loader the session was (lazily) loaded with."""
        loader: Loader = object.__getattribute__(self, "_loader")
        return loader


class LazySession(Deferred, LoadedSession):
    """A session that reads its record on first use. Build one with :meth:`deferred`."""

    __slots__ = ()

    @classmethod
    def deferred(cls, loader: Loader) -> LazySession:
        """A session with no data yet; ``loader.load(session)`` fills it on first use."""
        session = cls.__new__(cls)
        object.__setattr__(session, "_loader", loader)
        return session

    def _load(self) -> None:
        self.loader.load(self)
        if type(self) is LazySession:
            raise AssertionError("the loader did not fill the session")

    def __repr__(self) -> str:
        return "<LazySession (not loaded yet)>"


def fill(session: LazySession, found: Session) -> None:
    """Give a lazy session the state of ``found`` (as the storage returned it) and make it an
    ordinary session. A session already loaded is left as it is (the first load wins)."""
    if type(session) is not LazySession:
        return
    # The state first, past the hooks (object.__setattr__), and the class last: a thread that
    # touches the session meanwhile still loads (and finds it loaded), never a half-copied one.
    for slot in Session.__slots__:
        object.__setattr__(session, slot, getattr(found, slot))
    object.__setattr__(session, "__class__", LoadedSession)


def load_error(session: object) -> Exception | None:
    """The error a deferred session's load met (a store outage), if its loader keeps one.

    Example::

        >>> load_error(Session()) is None
        True
    """
    if not isinstance(session, Deferred):
        return None
    error: Exception | None = getattr(object.__getattribute__(session, "_loader"), "error", None)
    return error


def is_loaded(session: object) -> bool:
    """False for a deferred session whose data has not been read yet; True for any other.

    Example::

        >>> is_loaded(Session()), is_loaded(LazySession.deferred(None))  # type: ignore[arg-type]
        (True, False)
    """
    return not isinstance(session, Deferred)


__all__ = ["Deferred", "LazySession", "LoadedSession", "Loader", "fill", "is_loaded", "load_error"]
