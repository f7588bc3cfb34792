"""Flask's own session tests run against our interface.

The files come from the Flask sdist that constraints.txt pins (tests/peers.py): the session
and flash tests of ``test_basic.py``, ``test_testing.py`` (session_transaction),
``test_reqctx.py``, ``test_session_interface.py``, ``test_signals.py`` and ``test_helpers.py``
(see PEER_FILES). They run unchanged on an app whose ``session_interface`` is websession's,
over a server-side memory store; the fixtures are Flask's own (``tests/conftest.py``), with
that one line added. Tests that assert a Flask-internal detail, or bring an interface of their
own, are excluded by name, with the reason.
"""

from __future__ import annotations

import types
from typing import Any

import flask
import pytest

from tests.peers import patched_module, peer_source
from websession import create_cookie, create_memory_session_storage
from websession.integrations.flask import SessionInterface

_source = peer_source("flask") / "tests"

#: Flask's test files with session tests, and their tests that involve the session: every
#: test whose name mentions sessions or flashes, and the named others that use flask.session.
PEER_FILES: dict[str, tuple[str, ...]] = {
    "test_basic.py": (),
    "test_testing.py": (),  # session_transaction and sessions across redirects
    "test_reqctx.py": ("TestGreenletContextCopying",),  # flask.session in a copied context
    "test_session_interface.py": (),
    "test_signals.py": (),  # message_flashed
    "test_helpers.py": ("TestStreaming.test_stream_keeps_session",),
}


def session_tests(file: str, extra: tuple[str, ...]) -> dict[str, Any]:
    """The session tests of one of Flask's test files, by name; a ``Class.method`` extra
    becomes a class holding that one test."""
    suite = patched_module(f"flask_suite_{file[:-3]}", _source / file, {})
    found = {
        name: test
        for name, test in suite.items()
        if name.startswith("test_") and callable(test) and ("session" in name or "flash" in name)
    }
    for name in extra:
        owner, _, method = name.partition(".")
        test = suite[owner]
        found[owner] = type(owner, (), {method: getattr(test, method)}) if method else test
    return found


SESSION_TESTS: dict[str, Any] = {}
for _file, _extra in PEER_FILES.items():
    for _name, _test in session_tests(_file, _extra).items():
        assert _name not in SESSION_TESTS, f"{_name} is in two of Flask's test files"
        SESSION_TESTS[_name] = _test

EXCLUDED = {
    # Our interface keeps the storage's own cookie (name, secrets, path, domain, SameSite):
    # Flask's SESSION_COOKIE_* settings, APPLICATION_ROOT and secret_key do not configure it
    # (docs/frameworks/flask.md), so these tests' settings change nothing here.
    "test_session_path": "sets the cookie path through Flask's APPLICATION_ROOT",
    "test_session_using_application_root": "sets the cookie path through Flask's APPLICATION_ROOT",
    "test_session_using_session_settings": "configures the cookie through Flask's SESSION_COOKIE_*",
    "test_session_using_samesite_attribute": "configures the cookie through Flask's SESSION_COOKIE_*",
    "test_session_secret_key_fallbacks": "rotates Flask's secret_key; ours rotates the cookie's secrets",
    "test_session_cookie_setting": "configures the cookie through Flask's SESSION_COOKIE_*",
    # Values are plain JSON by default; Flask's tagged types (bytes, tuples, Markup, UUID,
    # datetime) need codec="tagged", and these two run again with it (TAGGED below).
    "test_session_special_types": "stores Flask's tagged-JSON types (bytes, tuple, Markup, UUID)",
    "test_extended_flashing": "flashes Markup, a Flask tagged-JSON type",
    # After the response the test inspects the session object: ours has committed by then and
    # reset its change tracking (what changed is in the store), Flask's still says modified.
    "test_session_accessed": "inspects `modified` on the session object after it was saved",
    # Permanent sessions get Max-Age, written byte for byte as Remix writes it, not Expires.
    "test_session_expiration": "parses an Expires attribute; ours sends Max-Age (as Remix)",
    # Flask's null session when secret_key is None; ours needs no secret_key at all.
    "test_missing_session": "expects Flask's error for a missing secret_key",
    # Tests that build an app of their own with a session interface of their own: nothing of
    # ours runs in them.
    "test_session_transactions_no_null_sessions": "a bare Flask app without secret_key: Flask's null session",
    "test_open_session_with_endpoint": "its own interface replaces open_session and save_session",
    "test_session_error_pops_context": "its own failing interface; Flask's context teardown",
    "test_session_dynamic_cookie_name": "SecureCookieSessionInterface's get_cookie_name hook",
}
assert set(EXCLUDED) <= set(SESSION_TESTS), set(EXCLUDED) - set(SESSION_TESTS)

#: Flask's tests that assert what lazy=True changes on purpose (docs/frameworks/flask.md).
LAZY_EXCLUDED = {
    # A request that never uses the session never reads it, so it does not refresh a
    # permanent session's cookie (nor send the Vary that goes with it).
    "test_session_refresh_vary": "expects a request that never uses the session to refresh its cookie",
}
#: Excluded above for the default codec; run again on a storage with codec="tagged".
TAGGED = ["test_session_special_types", "test_extended_flashing"]
_TAGGED_SUFFIX = "_with_tagged_codec"

for _name, _test in SESSION_TESTS.items():
    if _name in EXCLUDED:
        _test = pytest.mark.skip(reason=f"excluded: {EXCLUDED[_name]}")(_test)
    globals()[_name] = _test
for _name in TAGGED:
    # A copy of the function: the skip mark above is stored on the original.
    _original = SESSION_TESTS[_name]
    globals()[_name + _TAGGED_SUFFIX] = types.FunctionType(
        _original.__code__, _original.__globals__, _name + _TAGGED_SUFFIX, None, _original.__closure__
    )


@pytest.fixture(params=[False, True], ids=["eager", "lazy"])
def app(request: pytest.FixtureRequest) -> flask.Flask:
    """Flask's own ``app`` fixture, with websession's session interface, eager and lazy (the
    lazy session must be indistinguishable to Flask and to the app)."""
    name = request.node.originalname
    if request.param and name in LAZY_EXCLUDED:
        pytest.skip(f"excluded with lazy=True: {LAZY_EXCLUDED[name]}")
    app = flask.Flask("flask_test", root_path=str(_source))
    app.config.update(TESTING=True, SECRET_KEY="test key")
    cookie = create_cookie("session", secrets=["test key"])
    codec = "tagged" if name.endswith(_TAGGED_SUFFIX) else "json"
    storage = create_memory_session_storage(cookie=cookie, codec=codec)
    app.session_interface = SessionInterface(storage, lazy=request.param)
    return app


@pytest.fixture
def app_ctx(app: flask.Flask) -> Any:
    with app.app_context() as ctx:
        yield ctx


@pytest.fixture
def req_ctx(app: flask.Flask) -> Any:
    with app.test_request_context() as ctx:
        yield ctx


@pytest.fixture
def client(app: flask.Flask) -> Any:
    return app.test_client()
