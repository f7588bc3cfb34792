"""The DynamoDB storage factory and its URL, ``dynamodb://TABLE?region=...``.

What the storage can promise rests on what DynamoDB guarantees: conditional writes (a commit
never overwrites a newer session nor revives a destroyed one), TransactWriteItems of up to 100
actions (a sign-in adds the session and its index entry together), strongly consistent reads
(``consistent_read``, on by default), and items of up to 400 KB. What DynamoDB does not do:
delete expired items on time (TTL deletes within about 48 hours; the store checks expiry
itself), or change several items together outside a transaction.

A lifetime (``ttl=`` seconds, or its older spelling ``default_ttl=``) wins over the cookie's,
as in every factory. ``ttl_attribute`` names the expiry attribute; before the shared options,
this factory's ``ttl=`` named it, and a string ``ttl=`` still does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from ...cookie import CookieLike
from ...errors import ConfigurationError
from ...options import StorageOptions, assemble, store_arguments, url_options
from ...storage import SessionStorage
from ...urls import cookie_from_options, reject_unknown
from .store import DynamoDBStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

_FACTORY = "create_dynamodb_session_storage"


def create_dynamodb_session_storage(
    *,
    cookie: CookieLike = None,
    table: str,
    idx: str = "_idx",
    ttl_attribute: str | None = None,
    client: Any = None,
    async_client: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    client_options: Mapping[str, Any] | None = None,
    consistent_read: bool = True,
    touch_interval: float = 60.0,
    **options: Unpack[StorageOptions],
) -> SessionStorage:
    """Sessions in a DynamoDB table laid out as Remix's ``createArcTableSessionStorage``.

    ``idx`` and ``ttl_attribute`` name the partition-key and expiry attributes (default
    ``_idx`` and ``_ttl``; a string ``ttl=`` is the older spelling of ``ttl_attribute``). Pass
    boto3 ``client=`` and/or aiobotocore ``async_client=``, or let the store open its own from
    ``region``, ``endpoint_url`` and ``client_options`` (any ``create_client`` keyword, e.g.
    credentials). Create the table once with ``storage.store.setup()`` or
    :func:`~websession.stores.dynamodb.create_dynamodb_table`.

    The shared options (``ttl`` seconds, ``rolling``, ``absolute_timeout``,
    ``storage_key_secret``, ...) are :class:`~websession.options.StorageOptions`; a lifetime
    given as ``ttl`` or ``default_ttl`` wins over the cookie's.

    Example (needs DynamoDB)::

        from websession import create_cookie, create_dynamodb_session_storage

        storage = create_dynamodb_session_storage(
            cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
            table="sessions", region="eu-west-1",
        )
        session = storage.get_session(None)
        session["user"] = 42
        header = storage.commit_session(session)   # PutItem, then Set-Cookie
    """
    store = DynamoDBStore(
        table=table,
        idx=idx,
        ttl=_expiry_attribute(options, ttl_attribute),
        client=client,
        async_client=async_client,
        region=region,
        endpoint_url=endpoint_url,
        client_options=client_options,
        consistent_read=consistent_read,
        touch_interval=touch_interval,
        **store_arguments(options),
    )
    return assemble(_FACTORY, store, cookie, options)


def _expiry_attribute(options: StorageOptions, ttl_attribute: str | None) -> str:
    """The expiry attribute's name: ``ttl_attribute``, or ``ttl`` given as a string (then
    taken out of ``options``, where ``ttl`` is a lifetime)."""
    legacy: object = options.get("ttl")
    if not isinstance(legacy, str):
        return "_ttl" if ttl_attribute is None else ttl_attribute
    if ttl_attribute is not None:
        raise TypeError(f"{_FACTORY}() takes ttl_attribute= or its older spelling ttl='<name>', not both")
    del options["ttl"]
    return legacy


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``dynamodb://sessions?region=eu-west-1&endpoint=http://localhost:8000``.

    Other options: ``idx_attribute``, ``ttl_attribute`` (attribute names, default ``_idx`` and
    ``_ttl``), ``consistent_read``, ``touch_interval``, ``ttl`` (default lifetime in seconds, as
    in every store URL). Credentials come from the usual AWS environment and config files.
    """
    if not url.netloc:
        raise ConfigurationError("a dynamodb:// URL names the table: dynamodb://TABLE?region=...")
    cookie = cookie_from_options(options)
    shared = url_options(options)
    region = options.pop("region", None)
    endpoint = options.pop("endpoint", None)
    idx = options.pop("idx_attribute", "_idx")
    ttl_attribute = options.pop("ttl_attribute", "_ttl")
    consistent = str(options.pop("consistent_read", "true")).lower() in ("1", "true", "yes")
    touch_interval = float(options.pop("touch_interval", 60.0))
    reject_unknown("dynamodb", options)
    return create_dynamodb_session_storage(
        cookie=cookie,
        table=url.netloc,
        idx=idx,
        ttl_attribute=ttl_attribute,
        region=region,
        endpoint_url=endpoint,
        consistent_read=consistent,
        touch_interval=touch_interval,
        **shared,
    )


__all__ = ["create_dynamodb_session_storage", "open_url"]
