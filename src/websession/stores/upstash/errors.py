"""How Upstash's failures become websession's errors, whichever transport carried the command.

What Upstash guarantees: an HTTP request either reaches the database and gets a JSON answer
(``{"result": ...}`` or ``{"error": "..."}`` per command), or it fails as HTTP does: refused
(401/403 for a wrong token), throttled (429 over the plan's request rate), a gateway error
(5xx, sometimes an HTML page rather than JSON), a timeout, or no connection at all. A command
error (``WRONGTYPE``, ``NOSCRIPT``) means the command ran and did nothing.

What it does not: a timed-out or dropped request says nothing about whether the command ran,
so a write may have landed even though the store raised :class:`StoreUnavailableError`.

Failures are never silent: network errors, timeouts, 429 and 5xx raise
:class:`~websession.errors.StoreUnavailableError`; a refused token or a command error raises
:class:`~websession.errors.SessionStoreError` carrying the server's message.

Example::

    >>> import httpx
    >>> from websession.stores.base import translate_errors
    >>> try:
    ...     with translate_errors(transport_rules("in time"), "Upstash"):
    ...         raise httpx.ConnectError("refused")
    ... except StoreUnavailableError as error:
    ...     print(error)
    cannot reach Upstash: ConnectError: refused
"""

from __future__ import annotations

import httpx

from ...errors import SessionStoreError, StoreUnavailableError
from ..base import ErrorRules, Translation


class UpstashCommandError(SessionStoreError):
    """Upstash ran the command and answered with an error (``{"error": "..."}``).

    ``reply`` is the server's message, e.g. ``"WRONGTYPE Operation against a key holding the
    wrong kind of value"``.

    Example::

        >>> UpstashCommandError("NOSCRIPT No matching script").reply.startswith("NOSCRIPT")
        True
    """

    def __init__(self, reply: str, *, solution: str | None = None) -> None:
        super().__init__(f"Upstash: {reply}", solution=solution)
        self.reply = reply


#: What to check when Upstash refuses the token, whichever transport saw the refusal.
REFUSED_SOLUTION = "check the REST token (UPSTASH_REDIS_REST_TOKEN) for this database"


def transport_rules(within: str) -> ErrorRules:
    """The :data:`~websession.stores.base.ErrorRules` of httpx failures: a timeout and an
    unreachable server are both :class:`StoreUnavailableError`. ``within`` says how long the
    request had (``"within 5s"``), in the message about a timeout.

    Example::

        >>> [kinds.__name__ for kinds, _ in transport_rules("within 5s")]
        ['TimeoutException', 'TransportError']
    """
    return ((httpx.TimeoutException, _timed_out(within)), (httpx.TransportError, _unreachable))


def _timed_out(within: str) -> Translation:
    def translate(error: BaseException, where: str) -> BaseException:
        return StoreUnavailableError(f"{where} did not answer {within} ({type(error).__name__})")

    return translate


def _unreachable(error: BaseException, where: str) -> BaseException:
    return StoreUnavailableError(f"cannot reach {where}: {type(error).__name__}: {error}")


__all__ = ["REFUSED_SOLUTION", "UpstashCommandError", "transport_rules"]
