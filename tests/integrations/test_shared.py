"""What the ASGI and WSGI middleware and Flask's session interface share (``_shared.Integration``):
their keywords are refused, when misspelt, as Python refuses them, naming the class written."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from websession import SessionStorage
from websession.integrations import asgi, flask, wsgi


def wsgi_app(environ, start_response):  # pragma: no cover - never called
    start_response("200 OK", [])
    return [b""]


BUILDERS = {
    "asgi": lambda storage, **options: asgi.SessionMiddleware(Starlette(), storage, **options),
    "wsgi": lambda storage, **options: wsgi.SessionMiddleware(wsgi_app, storage, **options),
    "flask": lambda storage, **options: flask.SessionInterface(storage, **options),
}
NAMES = {"asgi": "SessionMiddleware", "wsgi": "SessionMiddleware", "flask": "SessionInterface"}


@pytest.mark.parametrize("kind", BUILDERS)
def test_an_unknown_keyword_names_the_integration_not_its_base(storage: SessionStorage, kind: str) -> None:
    expected = rf"^{NAMES[kind]}\.__init__\(\) got an unexpected keyword argument 'unavailble_status'$"
    with pytest.raises(TypeError, match=expected):
        BUILDERS[kind](storage, unavailble_status=500)


@pytest.mark.parametrize("kind", BUILDERS)
def test_the_shared_keywords_are_taken_and_documented(storage: SessionStorage, kind: str) -> None:
    integration = BUILDERS[kind](storage, unavailable_status=500, commit_on_error=True, lazy=True)
    assert (integration.unavailable_status, integration.commit_on_error, integration.lazy) == (
        500,
        True,
        True,
    )
    # help() shows **options for them: the class's docstring is where their names are.
    doc = type(integration).__doc__ or ""
    for name in ("unavailable_status", "commit_on_error", "lazy", "header", "cookie_options"):
        assert f"``{name}``" in doc, name
