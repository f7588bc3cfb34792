from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("login", views.login_view),
    path("logout", views.logout_view),
    path("cart", views.add_to_cart),
    path("notify", views.notify),
    path("messages", views.show_messages),
    path("expire-at-close", views.expire_at_close),
    path("race", views.race),
    path("async", views.async_visits),
]
