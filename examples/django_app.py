"""A one-file Django project with sessions in websession: `python examples/django_app.py`.

It runs Django's development server on http://127.0.0.1:8000. In a real project the same two
settings go in settings.py: SESSION_ENGINE and WEBSESSION_STORAGE (and websession's
SessionMiddleware in place of Django's, to answer 503 when the store is down).

    curl -c jar -b jar http://127.0.0.1:8000/
    curl -c jar -b jar -d username=ada http://127.0.0.1:8000/login -L
    curl -c jar -b jar -d '' http://127.0.0.1:8000/logout -L
"""

from __future__ import annotations

import os
import sys

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "dev-only-secret-change-me"),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    # This example has no forms page, so no CSRF middleware; a real project keeps it.
    MIDDLEWARE=["websession.integrations.django.SessionMiddleware"],
    SESSION_ENGINE="websession.integrations.django",
    WEBSESSION_STORAGE=os.environ.get("WEBSESSION_STORE", "sqlite://./sessions.db"),
)

from django.http import HttpRequest, HttpResponseRedirect, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402


def home(request: HttpRequest) -> JsonResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"user": request.session.get("user"), "visits": request.session["visits"]})


@require_POST
def login(request: HttpRequest) -> HttpResponseRedirect:
    request.session.cycle_key()  # what django.contrib.auth.login() does: a new id at sign-in
    request.session["user"] = request.POST["username"]
    return HttpResponseRedirect("/")


@require_POST
def logout(request: HttpRequest) -> HttpResponseRedirect:
    request.session.flush()  # what django.contrib.auth.logout() does: delete the record
    return HttpResponseRedirect("/")


urlpatterns = [path("", home), path("login", login), path("logout", logout)]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    port = os.environ.get("PORT", "8000")
    execute_from_command_line([sys.argv[0], "runserver", "--noreload", f"127.0.0.1:{port}"])
