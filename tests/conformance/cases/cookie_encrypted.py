"""Cookie storage sealed with AES-256-GCM (``encryption_keys=``)."""

from __future__ import annotations

import hashlib

import pytest

from websession import create_cookie_session_storage

from ..harness import Options
from . import StoreCase


def make_encrypted(request: pytest.FixtureRequest, options: Options):
    # One key per secret the test asks for, in the same order, so the suite's rotation tests
    # rotate encryption keys the way they rotate signing secrets.
    keys = [hashlib.sha256(secret.encode()).hexdigest() for secret in options.cookie.secrets]
    return create_cookie_session_storage(
        cookie=options.cookie,
        encryption_keys=keys,
        clock=options.clock,
        rolling=options.rolling,
        save_uninitialized=options.save_uninitialized,
    )


CASES = [StoreCase("cookie-encrypted", make_encrypted, server_side=False)]
