"""A minimal Django project whose sessions live in websession: the Django tests' settings."""

from __future__ import annotations

import os
import tempfile

_HERE = tempfile.mkdtemp(prefix="websession-django-")

SECRET_KEY = "django-insecure-websession-tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.integrations.django_project.urls"
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]
MIDDLEWARE = [
    "websession.integrations.django.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(_HERE, "db.sqlite3")}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, for tests only
TEMPLATES: list[dict[str, object]] = []
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

SESSION_ENGINE = "websession.integrations.django"
WEBSESSION_STORAGE = f"sqlite:///{_HERE}/sessions.db"
