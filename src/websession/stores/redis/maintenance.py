r"""The Redis store's maintenance: what the ``websession`` command uses to list, count, copy
and inspect sessions (sync only).

Keys are found with ``SCAN MATCH`` on the escaped prefix, never ``KEYS`` (which blocks the
server while it walks every key); on Redis Cluster redis-py sends ``SCAN`` to every primary.
Values and TTLs travel in pipelines of a few hundred commands, so memory holds one batch.

What Redis guarantees here: ``SCAN`` returns every key that exists for the whole scan; a key
read with its ``PTTL`` in one pipeline answers for one moment (commands run one at a time).
What it does not: a key may come twice when Redis resizes its table during the scan, keys
written or deleted meanwhile may or may not show, and a pipeline is not atomic (a record may
expire between its value and its ``PTTL``; it is then skipped). Expired records need no purge:
Redis removes them itself (native TTL).

Example::

    >>> from websession.stores.redis import RedisStore
    >>> RedisStore(url="redis://localhost:6379/0", prefix="app:*")._key_pattern()
    'app:\\**'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from ... import codec
from ..base import Record
from ..redis_commands import text
from ..redis_records import RedisRecords
from .errors import during

#: Keys asked of SCAN per call, and read (value and PTTL) per pipeline.
SCAN_BATCH = 500
#: Records written per pipeline by ``write_many``.
WRITE_BATCH = 500


class RedisMaintenance(RedisRecords):
    """scan, count, peek, write and write_many of a Redis store: the sync door's client, in
    pipelines. A store gives ``_sync_client()``."""

    def _sync_client(self) -> Any:
        raise NotImplementedError

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Yield every live session under the prefix with its expiry (from ``PTTL``), a batch
        of keys at a time. An id may come twice when Redis resizes its table meanwhile."""
        client = self._sync_client()
        start = len(self.prefix)
        batch: list[bytes | str] = []
        for key in self._keys(client, "scan"):
            if not self.is_storage_key(text(key)[start:]):
                continue  # not a session: a user's index, or someone else's key
            batch.append(key)
            if len(batch) >= SCAN_BATCH:
                yield from self._scan_batch(client, batch)
                batch = []
        if batch:
            yield from self._scan_batch(client, batch)

    def count(self) -> int:
        """Keys under the prefix that name a session, counted with SCAN without reading values.

        SCAN walks the whole database (every key, whatever its prefix), so this is not cheap;
        like :meth:`scan` it may count a key twice if Redis resizes its table meanwhile.
        """
        client = self._sync_client()
        start = len(self.prefix)
        return sum(1 for key in self._keys(client, "count") if self.is_storage_key(text(key)[start:]))

    def peek(self, id: str) -> Record | None:
        """The record and its expiry, untouched: GET (HGETALL) and PTTL in one round trip."""
        found = list(self._scan_batch(self._sync_client(), [self.key(id)]))
        return found[0][1] if found else None

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """Write records under their ids, pipelined ``WRITE_BATCH`` at a time.

        The string layout sends ``SET key value PX <ms> [NX]``; the hash layout one script per
        record that replaces the hash (or leaves a live one alone) and sets its ``PEXPIRE``.
        Lifetimes carry over to the millisecond; records already expired are not sent.
        """
        client = self._sync_client()
        written = 0
        pending = iter(records)
        while batch := list(islice(pending, WRITE_BATCH)):
            pipe = client.pipeline(transaction=False)
            now = self.clock()
            sent = 0
            for id, record in batch:
                if not self.is_expired(record.expires):
                    pipe.execute_command(*self._write_command(id, record, now, replace))
                    sent += 1
            if sent:
                with during("write"):
                    written += sum(1 for reply in pipe.execute() if reply)
        return written

    def _keys(self, client: Any, operation: str) -> Iterator[bytes | str]:
        keys = client.scan_iter(match=self._key_pattern(), count=SCAN_BATCH)
        while True:
            with during(operation):
                key = next(keys, None)
            if key is None:
                return
            yield key

    def _scan_batch(self, client: Any, keys: list[bytes | str]) -> Iterator[tuple[str, Record]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            if self.layout == "hash":
                pipe.hgetall(key)
            else:
                pipe.get(key)
            pipe.pttl(key)
        with during("scan"):
            # A key of another type under the prefix answers WRONGTYPE: skip it, not the scan.
            replies = pipe.execute(raise_on_error=False)
        now = self.clock()
        for key, value, pttl in zip(keys, replies[0::2], replies[1::2], strict=True):
            id = text(key)[len(self.prefix) :]
            if not self.is_storage_key(id) or isinstance(pttl, Exception) or pttl == -2:
                continue
            if isinstance(value, Exception):
                codec.log_corrupt(self.kind, id, value)
                continue
            record = self._scanned(id, value, pttl, now)
            if record is not None:
                yield id, record


__all__ = ["SCAN_BATCH", "WRITE_BATCH", "RedisMaintenance"]
