"""Cookie sign + verify, websession against itsdangerous, on the same values.

"data" signs the session dict that a cookie store carries; "id" signs fresh 40-character ids
(more ids than websession's signed-id cache holds, so every one is signed from scratch).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from .contenders import SECRET
from .drive import INITIAL

_IDS = [secrets.token_hex(20) for _ in range(10_000)]


def _values(workload: str) -> list[Any]:
    if workload == "data":
        return [dict(INITIAL, n=i) for i in range(64)]
    return _IDS


class _Signer:
    is_async = False
    redis = False

    def prime(self) -> None:
        for workload in ("data", "id"):
            for value in _values(workload)[:10]:
                assert self.verify(self.sign(value)) == value

    def close(self) -> None:
        pass

    def sign(self, value: Any) -> str:
        raise NotImplementedError

    def verify(self, signed: str) -> Any:
        raise NotImplementedError

    def run(self, n: int, workload: str) -> None:
        values = _values(workload)
        count = len(values)
        sign, verify = self.sign, self.verify
        for i in range(n):
            verify(sign(values[i % count]))


class WebsessionSigner(_Signer):
    def __init__(self) -> None:
        from websession import create_cookie

        self.cookie = create_cookie("__session", secrets=[SECRET])

    def sign(self, value: Any) -> str:
        return self.cookie.sign(value)

    def verify(self, signed: str) -> Any:
        verified = self.cookie.unsign(signed)
        return None if verified is None else verified.value


class StarletteSigner(_Signer):
    """How Starlette's SessionMiddleware signs: base64 JSON under a TimestampSigner."""

    def __init__(self) -> None:
        from itsdangerous import TimestampSigner

        self.signer = TimestampSigner(SECRET)

    def sign(self, value: Any) -> str:
        data = base64.b64encode(json.dumps(value).encode("utf-8"))
        return self.signer.sign(data).decode("utf-8")

    def verify(self, signed: str) -> Any:
        data = self.signer.unsign(signed.encode("utf-8"), max_age=3600)
        return json.loads(base64.b64decode(data))


class FlaskSigner(_Signer):
    """How Flask signs its cookie session: URLSafeTimedSerializer, HMAC-SHA1, key derivation."""

    def __init__(self) -> None:
        from itsdangerous import URLSafeTimedSerializer

        self.serializer = URLSafeTimedSerializer(
            SECRET,
            salt="cookie-session",
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        )

    def sign(self, value: Any) -> str:
        return str(self.serializer.dumps(value))

    def verify(self, signed: str) -> Any:
        return self.serializer.loads(signed, max_age=3600)


SIGNERS = {
    "websession Cookie sign+unsign": WebsessionSigner,
    "itsdangerous TimestampSigner (Starlette)": StarletteSigner,
    "itsdangerous URLSafeTimedSerializer (Flask)": FlaskSigner,
}
ANCHOR = "itsdangerous TimestampSigner (Starlette)"
