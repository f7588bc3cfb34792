"""The DynamoDB store: Remix's arc table layout, with boto3 (sync) and aiobotocore (async).

An item is one session: the partition key attribute ``idx`` (conventionally ``_idx``) holds
the id, every session key is a top-level attribute, and the ``ttl`` attribute (conventionally
``_ttl``) holds the expiry in epoch seconds, as Remix's ``createArcTableSessionStorage`` writes
it. A Remix app and a Python service can share the table.

- Values are stored as native DynamoDB types (S, N, BOOL, NULL, L, M), as the JavaScript
  document client writes them. Numbers are sent and read back as decimal text, never through
  a binary float, so ``2**63-1``, ``2**64+1`` and ``0.1 + 0.2`` survive exactly. DynamoDB
  numbers have no int/float distinction (neither does JavaScript): a float with an integral
  value (``1.0``, ``1e20``) comes back as an int. Numbers DynamoDB cannot hold (more than 38
  significant digits, magnitude from 1e126 up or below 1e-130) are refused at commit with
  :class:`~websession.errors.SessionStoreError` naming the key.
- A session key equal to the ``idx`` or ``ttl`` attribute name, or empty, is refused: it would
  overwrite the item's key or expiry (Remix allows it and corrupts the item).
- DynamoDB deletes expired items late (hours to days), so expiry is checked on every read and
  in every update's condition.
- ``create`` is a PutItem with ``attribute_not_exists``; a change set is one UpdateItem
  (``SET`` the keys set, ``REMOVE`` the keys removed) conditioned on the item existing and
  being unexpired, so concurrent requests never undo each other and a destroyed session is
  never brought back.
- Items over DynamoDB's 400 KB limit raise :class:`~websession.errors.RecordTooLargeError`.
- Users and their devices (websession.users): each signed-in user has one more item in the
  table, keyed ``"user#" + user_digest(user)`` (no session id can take that key), holding a map
  ``entries`` (storage key -> entry) and a number ``generation``. A sign-in is one
  TransactWriteItems (the session's Put and the entry's Update, conditioned on the generation),
  so it is atomic. Unbinding (take_for_user) deletes the session, then its entry. Revoking
  moves the entries into a tombstone attribute (``revoked#<random>``) while it bumps the
  generation, deletes the sessions, then drops the tombstone: neither a race nor a failure
  between two requests leaves a live session outside the index, and a revocation that failed
  halfway raises and is finished by a retry or the user's next listing. Scans, counts and
  purges skip user items; a purge also drops entries of dead sessions.

What DynamoDB guarantees, and the store relies on: conditional writes (PutItem, UpdateItem,
DeleteItem) atomic on their item; TransactWriteItems of up to 100 actions, all or none;
strongly consistent reads when asked (``consistent_read``, the default); items of up to 400 KB.
What it does not: delete expired items on time (TTL deletes within about 48 hours), or change
several items together outside a transaction (so multi-request operations are ordered to be
safe when interrupted).

The modules, one per concept: ``store`` (:class:`DynamoDBStore` and its records' doors),
``items`` (the table, its clients and a session's item), ``attributes`` (values as attribute
values), ``errors`` (botocore's errors as websession's), ``plans`` (multi-request operations
written once for both doors), ``users``, ``user_items`` and ``cleanup`` (the user index),
``maintenance`` (scan, count, write, purge, table creation) and ``factory``.

:func:`create_dynamodb_table` creates the table and enables TTL on the ``ttl`` attribute.

Example (needs DynamoDB or an emulator, so not run as a doctest)::

    from websession import create_cookie, create_dynamodb_session_storage

    storage = create_dynamodb_session_storage(
        cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
        table="sessions", region="eu-west-1",
    )
    storage.store.setup()      # create_dynamodb_table(...) with the store's client
"""

from __future__ import annotations

from .attributes import MAX_ITEM_BYTES, marshal, unmarshal
from .factory import create_dynamodb_session_storage
from .factory import open_url as open_url
from .items import DEFAULT_CONFIG as DEFAULT_CONFIG
from .items import ENTRIES_ATTRIBUTE as ENTRIES_ATTRIBUTE
from .items import GENERATION_ATTRIBUTE as GENERATION_ATTRIBUTE
from .items import TOMBSTONE_PREFIX as TOMBSTONE_PREFIX
from .items import USER_ITEM_PREFIX as USER_ITEM_PREFIX
from .maintenance import acreate_dynamodb_table, create_dynamodb_table
from .plans import BATCH_GET_ITEMS as BATCH_GET_ITEMS
from .plans import BATCH_WRITE_ATTEMPTS as BATCH_WRITE_ATTEMPTS
from .plans import BATCH_WRITE_ITEMS as BATCH_WRITE_ITEMS
from .store import DynamoDBStore
from .user_items import MAX_USER_SESSIONS as MAX_USER_SESSIONS
from .user_items import USER_ATTEMPTS as USER_ATTEMPTS

__all__ = [
    "MAX_ITEM_BYTES",
    "DynamoDBStore",
    "acreate_dynamodb_table",
    "create_dynamodb_session_storage",
    "create_dynamodb_table",
    "marshal",
    "unmarshal",
]
