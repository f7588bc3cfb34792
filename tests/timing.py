"""Time checks that hold on a loaded machine.

A check against a server's clock (a Redis PTTL, a memcached TTL, an expiry rebuilt from one)
is off by the time that passed between computing the expectation and the server acting on it.
On an idle machine that is microseconds; on a busy 2-core CI box it can be seconds. So these
checks never use a fixed tolerance: they measure the wall time the section took and allow
exactly that, plus the store's rounding.

Example::

    >>> watch = Stopwatch()
    >>> watch.ttl_ok(119.6, 120)
    True
    >>> watch.ttl_ok(121.5, 120)
    False
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta


class Stopwatch:
    """Started when made; ``elapsed`` is the slack a server-clock check may need."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def ttl_ok(self, remaining: float, lifetime: float, rounding: float = 1.0) -> bool:
        """A remaining TTL (seconds) of a record given ``lifetime`` since this watch started:
        never more than the lifetime (plus rounding up), never less than what the time that
        passed can explain."""
        return lifetime - self.elapsed - rounding <= remaining <= lifetime + rounding

    def close(self, found: datetime | None, want: datetime | None, rounding: float = 1.0) -> bool:
        """Two absolute expiries, one rebuilt from a server's TTL, within rounding plus the
        time this section took."""
        if found is None or want is None:
            return found is want
        return abs(found - want) <= timedelta(seconds=rounding + self.elapsed)


#: Restarted at the start of every test (tests/conftest.py), for helpers that compare
#: expiries deep inside a test: the whole test's wall time is then the slack they allow.
current_test_watch = Stopwatch()


def restart_test_watch() -> None:
    current_test_watch.started = time.monotonic()
