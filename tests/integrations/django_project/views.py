"""Views written the ordinary Django way: nothing here knows about websession."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


def home(request: HttpRequest) -> JsonResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    user = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse(
        {"user": user, "visits": request.session["visits"], "cart": request.session.get("cart", [])}
    )


@csrf_exempt
@require_POST
def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("bad credentials", status=401)
    login(request, user)
    return HttpResponseRedirect("/")


@csrf_exempt
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponseRedirect("/")


@csrf_exempt
@require_POST
def add_to_cart(request: HttpRequest) -> JsonResponse:
    cart = request.session.get("cart", [])
    cart.append(request.POST["item"])
    request.session["cart"] = cart
    return JsonResponse({"cart": cart})


def notify(request: HttpRequest) -> HttpResponse:
    messages.success(request, "Saved!")
    return HttpResponseRedirect("/messages")


def show_messages(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"messages": [str(m) for m in messages.get_messages(request)]})


def expire_at_close(request: HttpRequest) -> JsonResponse:
    request.session.set_expiry(0)
    request.session["temporary"] = True
    return JsonResponse({"ok": True})


def race(request: HttpRequest) -> JsonResponse:
    request.session["late"] = True
    # Meanwhile another request (a logout in another tab) deletes this session.
    import_module(settings.SESSION_ENGINE).SessionStore(request.session.session_key).delete()
    return JsonResponse({"ok": True})


async def async_visits(request: HttpRequest) -> JsonResponse:
    visits = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", visits)
    return JsonResponse({"visits": visits})
