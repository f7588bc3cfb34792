"""How botocore's errors become websession's: :data:`RULES`, for
:class:`~websession.stores.base.translate_errors`, and the store's own signals.

What DynamoDB guarantees: a conditional write either happens or fails with
ConditionalCheckFailedException, and a TransactWriteItems (up to 100 actions) happens whole or
is cancelled with one reason per action, in order. What it does not: queue a request behind a
transaction in flight on the same item (the request fails at once with
TransactionConflictException), or serve every request when throttled or busy (throughput
exceeded, internal errors: worth sending again later). An item over 400 KB and a path into a
map that is missing both come back as a ValidationException, told apart only by its text. A
strongly consistent read (when asked for) never answers stale, so no error stands for
staleness; an item past its TTL (deleted within about 48 hours) is no error either, so expiry
is the store's to check; and a failure says nothing of other items, since outside a transaction
no two items change together.

The store reacts to four of these itself, so they become exceptions it catches:

- :class:`_Conflict`, a condition failed: a plain ``Exception``, not a SessionStoreError, so
  that nothing above the store could mistake it for a failure worth reporting; every caller
  catches it (translate_errors lets it pass through a nested block untouched).
- :class:`_Cancelled`, a transaction was cancelled: its ``reasons`` say which action failed.
- :class:`_Busy`, a transaction is in flight on the item: a StoreUnavailableError, so that
  one that stays busy answers 503.
- :class:`_NoIndex`, an update named a path inside a user item's index that is not there.

Example::

    >>> from botocore.exceptions import ClientError
    >>> from websession.stores.base import translate_errors
    >>> try:
    ...     with translate_errors(RULES, "DynamoDB table 't'"):
    ...         raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "GetItem")
    ... except StoreUnavailableError as error:
    ...     print(type(error).__name__, error.__cause__.__class__.__name__)
    StoreUnavailableError ClientError
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from ...errors import RecordTooLargeError, SessionStoreError, StoreUnavailableError
from ..base import ErrorRules


class _Conflict(Exception):
    """A condition failed: the item exists (create) or is gone (update)."""


class _Cancelled(SessionStoreError):
    """A transaction was cancelled; ``reasons`` has one entry per action, in order."""

    def __init__(self, message: str, reasons: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.reasons = reasons


class _Busy(StoreUnavailableError):
    """The item is part of a transaction in flight (TransactionConflictException)."""


class _NoIndex(SessionStoreError):
    """An update named a path inside a user item's index, and the item has no index yet."""


def code_of(error: Any) -> str:
    """The error code of a botocore ClientError (``ConditionalCheckFailedException``...)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def table_name(table: str) -> str:
    """How errors name the table: the ``where`` of every message."""
    return f"DynamoDB table {table!r}"


def session_too_large(where: str) -> RecordTooLargeError:
    return RecordTooLargeError(f"{where}: the session is larger than DynamoDB's 400 KB item limit")


#: A ClientError (and the table it came from) as the exception to raise instead.
_Translate = Callable[[Any, str], BaseException]


def _with_text(kind: type[SessionStoreError]) -> _Translate:
    """The error as ``kind``, with botocore's own text after the table."""
    return lambda error, where: kind(f"{where}: {error}")


def _message(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def _cancelled(error: Any, where: str) -> BaseException:
    return _Cancelled(f"{where}: {_message(error)}", list(error.response.get("CancellationReasons") or []))


def _invalid(error: Any, where: str) -> BaseException:
    message = _message(error)
    if "document path" in message:
        return _NoIndex(f"{where}: {message}")
    if "size" in message and "exceeded" in message:
        return session_too_large(where)
    return SessionStoreError(f"{where}: {error}")


def _no_table(error: Any, where: str) -> BaseException:
    return SessionStoreError(
        f"{where} does not exist", solution="create it with create_dynamodb_table() or store.setup()"
    )


_UNAVAILABLE_CODES = (
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
)

_BY_CODE: dict[str, _Translate] = {
    "ConditionalCheckFailedException": lambda error, where: _Conflict(),
    "TransactionCanceledException": _cancelled,
    "TransactionConflictException": _with_text(_Busy),
    "ValidationException": _invalid,
    "ResourceNotFoundException": _no_table,
    **dict.fromkeys(_UNAVAILABLE_CODES, _with_text(StoreUnavailableError)),
}
_OTHER = _with_text(SessionStoreError)


def _client_error(error: BaseException, where: str) -> BaseException:
    return _BY_CODE.get(code_of(error), _OTHER)(error, where)


#: botocore's errors, for translate_errors: ClientError by its code, connection failures as
#: unavailable, anything else botocore raises as a store error.
RULES: ErrorRules = (
    (ClientError, _client_error),
    ((ConnectionError, HTTPClientError), StoreUnavailableError),
    (BotoCoreError, SessionStoreError),
)

__all__ = ["RULES", "code_of", "session_too_large", "table_name"]
