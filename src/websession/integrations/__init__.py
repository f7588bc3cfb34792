"""Web framework integrations: one module per framework.

- :mod:`websession.integrations.asgi`: ``SessionMiddleware`` for any ASGI app (Starlette, FastAPI)
- :mod:`websession.integrations.fastapi`: ``SessionDep``, a typed FastAPI dependency
- :mod:`websession.integrations.flask`: ``SessionInterface`` for ``app.session_interface``
- :mod:`websession.integrations.django`: the ``SESSION_ENGINE``
- :mod:`websession.integrations.wsgi`: ``SessionMiddleware`` for any WSGI app

Each module imports its framework, so import only the one you use.
"""
