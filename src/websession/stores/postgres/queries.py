"""The PostgreSQL store's SQL: every statement, composed once per store with its table names.

What PostgreSQL guarantees, and these statements rely on:

- One statement is atomic, and sees the rows committed when it starts (READ COMMITTED, the
  default; the pools the store opens run in autocommit): a change set, a take, a sign-in or
  a revocation is one statement, so a concurrent request never sees half of it.
- ``UPDATE`` and ``DELETE`` lock the rows they change until the statement's transaction
  ends; a concurrent writer of the same row waits, then re-checks its ``WHERE`` against the
  committed row. So an update never brings back a session that a take or a delete removed.
- ``INSERT ... ON CONFLICT DO UPDATE`` locks the conflicting row and reads its committed
  value, which is how the user generation orders sign-ins against revocations.
- ``FOR UPDATE SKIP LOCKED`` lets purges run beside requests (and beside each other) without
  waiting on the rows those hold.

What it does not do: expire rows. An expired row stays until :meth:`purge_expired` deletes it;
every statement here treats it as absent (``expires IS NULL OR expires > now``). Nor does it
keep identifiers longer than 63 characters: :func:`sibling_table` cuts them itself.
"""

from __future__ import annotations

import hashlib
import re

from psycopg import sql

from ...errors import ConfigurationError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: PostgreSQL cuts longer identifiers silently (NAMEDATALEN - 1).
_MAX_IDENTIFIER = 63

#: Bump the user's generation (taking the lock on its row); first as a CTE of ``revoke``, then
#: alone as ``bump``, so the two can never disagree on how a generation moves.
_BUMP = (
    "INSERT INTO {g} (user_id, generation) VALUES (%(user)s, 1) "
    "ON CONFLICT (user_id) DO UPDATE SET generation = {g}.generation + 1 RETURNING generation"
)
#: Live rows only: an expired row stays in the table until it is purged.
_LIVE = "(expires IS NULL OR expires > %(now)s)"


def _table_identifier(table: str) -> sql.Identifier:
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise ConfigurationError(
            f"table name {table!r} is not a plain SQL identifier",
            solution="use letters, digits and underscores, optionally as schema.table",
        )
    return sql.Identifier(*parts)


def sibling_table(table: str, suffix: str) -> str:
    """The name of a table kept beside ``table`` (in its schema): ``table`` + ``suffix``, cut
    to PostgreSQL's 63 characters with a digest of the name, so that it can never be cut back
    to ``table`` itself or to another store's table.

    Example::

        >>> sibling_table("app.sessions", "_users")
        'app.sessions_users'
        >>> name = sibling_table("s" * 60, "_users"); len(name), name.endswith("_users")
        (63, True)
    """
    schema, _, name = table.rpartition(".")
    derived = name + suffix
    if len(derived) > _MAX_IDENTIFIER:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        derived = f"{name[: _MAX_IDENTIFIER - len(suffix) - 9]}_{digest}{suffix}"
    return f"{schema}.{derived}" if schema else derived


class _Queries:
    """The statements, composed once per store with its table name."""

    def __init__(self, name: str) -> None:
        table = _table_identifier(name)
        index = sql.Identifier(name.split(".")[-1] + "_expires_idx")
        lock_key = f"websession:{name}"
        users = _table_identifier(sibling_table(name, "_users"))
        generations = _table_identifier(sibling_table(name, "_user_generations"))
        self.setup = [
            # Two processes creating the table at once would collide in pg_type; serialise them.
            sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(sql.Literal(lock_key)),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} "
                "(id text PRIMARY KEY, data jsonb NOT NULL, expires timestamptz)"
            ).format(table),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (expires) WHERE expires IS NOT NULL").format(
                index, table
            ),
            # seq: the order of sign-ins, which breaks ties between equal sign-in times.
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (user_id text NOT NULL, key text NOT NULL, "
                "entry text NOT NULL, seq bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (user_id, key))"
            ).format(users),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (user_id text PRIMARY KEY, generation bigint NOT NULL)"
            ).format(generations),
        ]
        self.insert = sql.SQL("INSERT INTO {} (id, data, expires) VALUES (%s, %s::jsonb, %s)").format(table)
        self.read = sql.SQL("SELECT data::text, expires FROM {} WHERE id = %(id)s AND " + _LIVE).format(table)
        # Rolling: one round trip that reads the row and moves its expiry only when it moves by
        # more than the threshold, so a busy session is not rewritten on every request.
        self.read_touch = sql.SQL(
            "WITH cur AS (SELECT id, data, expires FROM {t} WHERE id = %(id)s AND " + _LIVE + "), "
            "moved AS (UPDATE {t} SET expires = %(touch)s FROM cur WHERE {t}.id = cur.id AND "
            "(cur.expires IS NULL OR abs(extract(epoch FROM %(touch)s - cur.expires)) > %(threshold)s) "
            "RETURNING {t}.expires) "
            "SELECT cur.data::text, coalesce((SELECT expires FROM moved), cur.expires) FROM cur"
        ).format(t=table)
        self.update = sql.SQL(
            "UPDATE {} SET data = (data - %(removed)s::text[]) || %(set)s::jsonb, expires = %(expires)s "
            "WHERE id = %(id)s AND " + _LIVE + " RETURNING data::text"
        ).format(table)
        self.delete = sql.SQL("DELETE FROM {} WHERE id = %s").format(table)
        self.take = sql.SQL("DELETE FROM {} WHERE id = %s RETURNING data::text, expires").format(table)
        self.scan = sql.SQL(
            "SELECT id, data::text, expires FROM {} WHERE id > %s AND (expires IS NULL OR expires > %s) "
            "ORDER BY id LIMIT %s"
        ).format(table)
        self.count = sql.SQL("SELECT count(*) FROM {} WHERE expires IS NULL OR expires > %s").format(table)
        upsert = (
            "INSERT INTO {t} (id, data, expires) VALUES (%s, %s::jsonb, %s) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires"
        )
        self.upsert = sql.SQL(upsert).format(t=table)
        # Only a row that has expired is taken over; a live one is left as it is.
        self.insert_or_revive = sql.SQL(
            upsert + " WHERE {t}.expires IS NOT NULL AND {t}.expires <= %s"
        ).format(t=table)
        self.purge = sql.SQL(
            "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE expires <= %s "
            "LIMIT %s FOR UPDATE SKIP LOCKED)"
        ).format(t=table)
        self._user_index(table, users, generations)

    def _user_index(self, t: sql.Identifier, u: sql.Identifier, g: sql.Identifier) -> None:
        """The user index statements (websession.users): one round trip each.

        Why no revocation is outrun, in READ COMMITTED (each statement sees the rows committed
        when it starts):

        - ``create_for_user`` with a generation (a bound session moving to a new id) locks the
          user's generation row (``ON CONFLICT DO UPDATE``, which waits for a concurrent
          revocation and then reads its committed value) and writes nothing if it moved.
        - ``revoke_user`` first bumps the generation (taking that lock), and only then, in a
          second statement with a snapshot of its own, deletes index rows and sessions: a
          move that held the lock first has committed by then, so its new rows are seen and
          deleted. One statement could not do this: its snapshot would predate the lock. The
          two are pipelined: one round trip, one implicit transaction.
        - ``revoke`` and ``take_for_user`` both delete one existing key, so the row locks on
          it order them; the generation bump stops the move that follows a take.
        - Row locks are taken generation first, then index entry, then session row (the CTEs
          are chained to force that order), so these statements cannot deadlock one another.
        """
        formats = {"t": t, "u": u, "g": g}
        self.create_for_user = sql.SQL(
            "WITH gen AS (INSERT INTO {g} (user_id, generation) "
            "SELECT %(user)s::text, 0 WHERE %(generation)s::bigint IS NOT NULL "
            "ON CONFLICT (user_id) DO UPDATE SET generation = {g}.generation RETURNING generation), "
            "created AS (INSERT INTO {t} (id, data, expires) "
            "SELECT %(key)s::text, %(data)s::jsonb, %(expires)s::timestamptz "
            "WHERE %(generation)s::bigint IS NULL OR %(generation)s::bigint = (SELECT generation FROM gen) "
            "RETURNING id) "
            "INSERT INTO {u} (user_id, key, entry) SELECT %(user)s::text, id, %(entry)s::text FROM created "
            "RETURNING key"
        ).format(**formats)
        # Always one row: the entry (or NULL), the generation, the taken record (or NULLs).
        self.take_for_user = sql.SQL(
            "WITH entry AS (DELETE FROM {u} WHERE user_id = %(user)s AND key = %(key)s RETURNING entry), "
            "taken AS (DELETE FROM {t} WHERE id = %(key)s AND (SELECT count(*) FROM entry) >= 0 "
            "RETURNING data::text AS data, expires) "
            "SELECT (SELECT entry FROM entry), "
            "coalesce((SELECT generation FROM {g} WHERE user_id = %(user)s), 0), "
            "(SELECT data FROM taken), (SELECT expires FROM taken)"
        ).format(**formats)
        # The live entries, and (the lazy half of index expiry) the others deleted on the way.
        self.sessions_of = sql.SQL(
            "WITH listed AS (SELECT e.seq, e.key, e.entry, s.expires, "
            "s.id IS NOT NULL AND (s.expires IS NULL OR s.expires > %(now)s) AS live "
            "FROM {u} e LEFT JOIN {t} s ON s.id = e.key WHERE e.user_id = %(user)s), "
            "pruned AS (DELETE FROM {u} WHERE user_id = %(user)s "
            "AND key IN (SELECT key FROM listed WHERE NOT live)) "
            "SELECT seq, key, entry, expires FROM listed WHERE live"
        ).format(**formats)
        # Unreadable entries go with their sessions: a bound session without an entry counts
        # as revoked, and none may live outside the index, out of revoke_user's reach.
        self.drop_entries = sql.SQL(
            "WITH entries AS (DELETE FROM {u} WHERE user_id = %(user)s AND key = ANY(%(keys)s) "
            "RETURNING key) DELETE FROM {t} WHERE id IN (SELECT key FROM entries)"
        ).format(**formats)
        # Both revocations return how many of the sessions they deleted were still live.
        live_gone = "RETURNING expires) SELECT count(*) FROM gone WHERE expires IS NULL OR expires > %(now)s"
        self.revoke = sql.SQL(
            "WITH gen AS (" + _BUMP + "), "
            "entry AS (DELETE FROM {u} WHERE user_id = %(user)s AND key = %(key)s "
            "AND (SELECT generation FROM gen) > 0 RETURNING key), "
            "gone AS (DELETE FROM {t} WHERE id = %(key)s AND (SELECT count(*) FROM entry) >= 0 " + live_gone
        ).format(**formats)
        self.bump = sql.SQL(_BUMP).format(**formats)
        self.generation = sql.SQL(
            "SELECT coalesce((SELECT generation FROM {g} WHERE user_id = %(user)s), 0)"
        ).format(**formats)
        # Sent right after `bump`, in the same pipeline: see the docstring.
        self.revoke_user = sql.SQL(
            "WITH entries AS (DELETE FROM {u} WHERE user_id = %(user)s "
            "AND key IS DISTINCT FROM %(keep)s::text RETURNING key), "
            "gone AS (DELETE FROM {t} WHERE id IN (SELECT key FROM entries) " + live_gone
        ).format(**formats)
        # One page of the index in key order: its dead entries deleted, its last key and size
        # returned (no row: the walk is over).
        self.purge_index = sql.SQL(
            "WITH page AS (SELECT user_id, key FROM {u} "
            "WHERE (user_id, key) > (%(user)s::text, %(key)s::text) ORDER BY user_id, key LIMIT %(limit)s), "
            "dead AS (DELETE FROM {u} e USING page WHERE e.user_id = page.user_id AND e.key = page.key "
            "AND NOT EXISTS (SELECT 1 FROM {t} s WHERE s.id = e.key "
            "AND (s.expires IS NULL OR s.expires > %(now)s))) "
            "SELECT user_id, key, (SELECT count(*) FROM page) FROM page "
            "ORDER BY user_id DESC, key DESC LIMIT 1"
        ).format(**formats)
