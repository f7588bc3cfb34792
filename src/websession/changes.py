"""The change set a request made to a session, and how it is applied to stored data.

A commit hands the store *what changed* (keys set, keys removed), never a snapshot, so two
requests that touch different keys of one session never undo each other.

Example::

    >>> changes = Changes({"cart": [1]}, frozenset({"notice"}))
    >>> changes.apply({"notice": "hi", "user": 7})
    {'user': 7, 'cart': [1]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Changes:
    """Keys set (with their new values) and keys removed during one request."""

    set: Mapping[str, Any] = field(default_factory=dict)
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.set) or bool(self.removed)

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return a new dict: ``data`` with the removals and then the sets applied.

        Example::

            >>> Changes({"a": 2}).apply({"a": 1, "b": 1})
            {'a': 2, 'b': 1}
        """
        result = {k: v for k, v in data.items() if k not in self.removed}
        result.update(self.set)
        return result
