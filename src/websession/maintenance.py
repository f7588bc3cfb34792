"""Operating a store: statistics, and moving sessions between stores without logging anyone out.

These functions stream over :meth:`Store.scan <websession.stores.base.Store.scan>` and hold
at most one batch of records, so they run in the same small memory on a thousand sessions or
on millions. The ``websession`` command (:mod:`websession.admin`) is a thin layer over them;
scripts can call them directly.

Example::

    >>> from datetime import timedelta
    >>> from websession.stores.memory import MemoryStore
    >>> from websession.stores.base import utcnow
    >>> old, new = MemoryStore(), MemoryStore()
    >>> id = old.create({"user_id": 42}, utcnow() + timedelta(hours=1))
    >>> migrate(old, new).copied
    1
    >>> new.read(id, None).data
    {'user_id': 42}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import codec
from .errors import ConfigurationError
from .stores.base import Record, Store

#: Upper bounds (seconds) and labels of the remaining-lifetime histogram.
TTL_BUCKETS: tuple[tuple[float, str], ...] = (
    (60, "< 1 minute"),
    (3600, "< 1 hour"),
    (86400, "< 1 day"),
    (7 * 86400, "< 7 days"),
    (30 * 86400, "< 30 days"),
    (math.inf, ">= 30 days"),
)
NO_EXPIRY = "no expiry"
_TTL_LABELS = [label for _, label in TTL_BUCKETS]

# Sizes below this are counted exactly; above, in buckets 1/64 of a power of two wide.
_EXACT_BELOW = 256
_SUB_BUCKETS = 64


class SizeHistogram:
    """Record sizes in constant memory, with percentiles accurate to within 1.6 %.

    Sizes under 256 bytes are kept exactly. Larger ones fall into buckets 1/64 of a power of
    two wide, so a million records need about as many counters as a hundred (a few thousand
    at most), where keeping every size would grow without bound.

    Example::

        >>> sizes = SizeHistogram()
        >>> for size in range(1, 101):
        ...     sizes.add(size)
        >>> sizes.percentile(50), sizes.percentile(99), sizes.max, sizes.mean
        (50, 99, 100, 50.5)
    """

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.max = 0
        self._buckets: dict[int, int] = {}

    def add(self, size: int) -> None:
        """Count one record of ``size`` bytes."""
        if size < 0:
            raise ValueError("a size cannot be negative")
        self.count += 1
        self.total += size
        self.max = max(self.max, size)
        bucket = _bucket_of(size)
        self._buckets[bucket] = self._buckets.get(bucket, 0) + 1

    @property
    def mean(self) -> float:
        """The mean size, 0 when empty."""
        return self.total / self.count if self.count else 0.0

    def percentile(self, p: float) -> int:
        """The size that ``p`` percent of records do not exceed (an upper bound within 1.6 %).

        Example::

            >>> SizeHistogram().percentile(50)
            0
        """
        if not 0 <= p <= 100:
            raise ValueError("a percentile is between 0 and 100")
        if not self.count:
            return 0
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                return min(_upper_bound(bucket), self.max)
        return self.max  # pragma: no cover - the ranks add up to count


def _bucket_of(size: int) -> int:
    if size < _EXACT_BELOW:
        return size
    exponent = size.bit_length() - 1
    shift = exponent - 6  # 2**6 == _SUB_BUCKETS
    return _EXACT_BELOW + (exponent - 8) * _SUB_BUCKETS + ((size >> shift) & (_SUB_BUCKETS - 1))


def _upper_bound(bucket: int) -> int:
    if bucket < _EXACT_BELOW:
        return bucket
    exponent, sub = divmod(bucket - _EXACT_BELOW, _SUB_BUCKETS)
    shift = exponent + 8 - 6
    return ((_SUB_BUCKETS + sub) << shift) + (1 << shift) - 1


@dataclass
class Stats:
    """What :func:`collect_stats` found: how many sessions, how big, how long they live."""

    store: str
    count: int = 0
    sizes: SizeHistogram = field(default_factory=SizeHistogram)
    ttl: dict[str, int] = field(
        default_factory=lambda: {label: 0 for _, label in TTL_BUCKETS} | {NO_EXPIRY: 0}
    )

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``websession stats --json`` prints)."""
        sizes = self.sizes
        return {
            "store": self.store,
            "count": self.count,
            "bytes": {
                "total": sizes.total,
                "mean": round(sizes.mean, 1),
                "p50": sizes.percentile(50),
                "p90": sizes.percentile(90),
                "p99": sizes.percentile(99),
                "max": sizes.max,
            },
            "ttl": dict(self.ttl),
        }


def record_size(record: Record) -> int:
    """The size of a record's data as stored: its compact JSON in UTF-8 bytes.

    Example::

        >>> record_size(Record({"user": "ü"}))
        13
    """
    return len(codec.encode(record.data))


def remaining(record: Record, now: datetime) -> float | None:
    """Seconds until ``record`` expires (None: no expiry)."""
    if record.expires is None:
        return None
    return (record.expires - now).total_seconds()


def collect_stats(store: Store, *, on_record: Callable[[int], None] | None = None) -> Stats:
    """Scan ``store`` once: count, size percentiles and a histogram of remaining lifetimes.

    ``on_record(n)`` is called with the running count every 500 records (for progress bars).

    Example::

        >>> from websession.stores.memory import MemoryStore
        >>> store = MemoryStore()
        >>> _ = store.create({"a": 1}, None)
        >>> stats = collect_stats(store)
        >>> stats.count, stats.sizes.max, stats.ttl["no expiry"]
        (1, 7, 1)
    """
    stats = Stats(store.kind)
    now = store.clock()
    for _, record in store.scan():
        stats.count += 1
        stats.sizes.add(record_size(record))
        seconds = remaining(record, now)
        if seconds is None:
            stats.ttl[NO_EXPIRY] += 1
        else:
            label = next(label for bound, label in TTL_BUCKETS if seconds < bound)
            stats.ttl[label] += 1
        if on_record is not None and stats.count % 500 == 0:
            on_record(stats.count)
    if on_record is not None:
        on_record(stats.count)
    return stats


@dataclass
class MigrateReport:
    """What :func:`migrate` did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    #: live records read from the source
    scanned: int = 0
    #: records written to the target (with ``dry_run``: that would be written)
    copied: int = 0
    #: records left alone because the target already had a live one (``replace=False``)
    kept: int = 0
    #: records that expired before they could be written
    expired: int = 0
    #: records whose id the target cannot hold (e.g. a custom store's ids)
    invalid_ids: int = 0

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``websession migrate --json`` prints)."""
        return asdict(self)


def supports_write(store: Store) -> bool:
    """Whether ``store`` can import records under given ids (it overrides ``write``)."""
    own: Store = getattr(store, "wrapped", store)  # through a telemetry proxy, the store it wraps
    kind = type(own)
    return kind.write is not Store.write or kind.write_many is not Store.write_many


def migrate(
    source: Store,
    target: Store,
    *,
    dry_run: bool = False,
    replace: bool = True,
    batch_size: int = 500,
    on_progress: Callable[[MigrateReport], None] | None = None,
) -> MigrateReport:
    """Copy every live session from ``source`` to ``target``, keeping ids and expiry times.

    Because the id and the absolute expiry carry over, the cookies browsers hold keep
    working against ``target`` and each session keeps its remaining lifetime. A record with
    no expiry gets the target's ``default_ttl`` (when it has one). Records are read with
    ``scan()`` and written ``batch_size`` at a time with ``write_many()``, so memory holds one
    batch whatever the size of the store.

    ``replace=False`` keeps records the target already has (for a second pass after the
    application already writes to ``target``). ``dry_run`` reads everything and writes
    nothing. ``on_progress(report)`` is called after each batch.

    Example::

        >>> from websession.stores.memory import MemoryStore
        >>> source = MemoryStore()
        >>> _ = source.create({"n": 1}, None)
        >>> migrate(source, MemoryStore(), dry_run=True).as_json()
        {'dry_run': True, 'scanned': 1, 'copied': 1, 'kept': 0, 'expired': 0, 'invalid_ids': 0}
    """
    if batch_size < 1:
        raise ConfigurationError("batch_size must be at least 1")
    if not supports_write(target):
        raise ConfigurationError(
            f"the {target.kind} store cannot import sessions under their ids",
            solution="migrate to a store that implements Store.write",
        )
    report = MigrateReport(dry_run=dry_run)
    for batch in _batches(source, target, report, batch_size):
        if dry_run:
            report.copied += len(batch)
        else:
            written = target.write_many(batch, replace=replace)
            report.copied += written
            # Not written: kept by the target, or (when replacing) expired since it was read.
            if replace:
                report.expired += len(batch) - written
            else:
                report.kept += len(batch) - written
        if on_progress is not None:
            on_progress(report)
    if on_progress is not None:
        on_progress(report)
    return report


def _batches(
    source: Store, target: Store, report: MigrateReport, size: int
) -> Iterator[list[tuple[str, Record]]]:
    batch: list[tuple[str, Record]] = []
    for id, record in source.scan():
        report.scanned += 1
        if not target.is_valid_id(id):
            report.invalid_ids += 1
            continue
        expires = record.expires
        if expires is None and target.default_ttl is not None:
            expires = target.clock() + timedelta(seconds=target.default_ttl)
        if target.is_expired(expires):
            report.expired += 1
            continue
        batch.append((id, Record(record.data, expires)))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
