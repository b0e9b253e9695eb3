"""``health``: a readiness view for load-balancer probes; ``status``: a page for staff.

    path("healthz", modeld.django.views.health),
    path("modeld/status", modeld.django.views.status),

**health.** GET (or HEAD) answers 200 when every alias's server is ready and so is every model
in its ``MODELS``, else 503; the body says what is ready::

    {"ready": false,
     "servers": {"default": true},
     "models": {"default": {"linear": true, "mlp": false}},
     "not_ready": ["default/mlp"],
     "reasons": {"default/mlp": "cannot load /models/mlp/1/model.pt: ..."}}

``not_ready`` lists ``alias`` for a server that is not ready and ``alias/model`` for a model.
``reasons`` says why, in modeld's words: ``reasons["alias/model"]`` for a model that is not
ready (its load error, "unknown model 'x'"), and ``reasons["alias"]`` for a server that could
not be asked (the error: "Unavailable: cannot reach modeld at ..."). Each call uses the alias's
client and its TIMEOUT. Other methods get 405.

**status.** An HTML page for staff users (``is_staff`` and ``is_active``): for each alias its
server's URL (without the password), whether it is live and ready, every model and version the
server knows with its state and reason, which of them are in ``MODELS``, and each version's
requests, errors and latency since modeld started, read from modeld's ``/metrics``
(``METRICS_URL``). Anonymous users are redirected to the login page (the admin's when the admin
is installed, else ``settings.LOGIN_URL``); users who are logged in but not staff get 403. It
needs ``django.contrib.auth`` and its middleware, and the template engine with ``APP_DIRS``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .probe import AliasStatus, probe


def readiness() -> list[AliasStatus]:
    """The status of every configured alias, asked through ``modeld.django.clients``."""
    from . import clients

    return [probe(client, client.alias, client.url, client.models) for client in clients.all()]


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """200 when every server and every expected model is ready, else 503."""
    statuses = readiness()
    ready = all(status.ok for status in statuses)
    body = {
        "ready": ready,
        "servers": {status.alias: status.ready for status in statuses},
        "models": {status.alias: status.models for status in statuses},
        "not_ready": [name for status in statuses for name in status.not_ready()],
        "reasons": reasons(statuses),
    }
    return JsonResponse(body, status=200 if ready else 503)


def reasons(statuses: list[AliasStatus]) -> dict[str, str]:
    """``alias`` -> why its server could not be asked (unreachable, timed out), and
    ``alias/model`` -> why the model is not ready, as modeld says it."""
    found: dict[str, str] = {}
    for status in statuses:
        if status.error is not None:
            found[status.alias] = status.error
        for name, reason in status.model_errors.items():
            found[f"{status.alias}/{name}"] = reason
    return found


def _login_url() -> str:
    try:
        return reverse("admin:login")
    except NoReverseMatch:
        return settings.LOGIN_URL


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Lets active staff users through; redirects anonymous ones to the login page (the
    admin's, or ``settings.LOGIN_URL`` without the admin) and answers 403 to the others (and
    to every request where no ``request.user`` is set: no authentication middleware)."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_active and user.is_staff:
            return view(request, *args, **kwargs)
        if user is not None and not user.is_authenticated:
            from django.contrib.auth.views import redirect_to_login

            return redirect_to_login(request.get_full_path(), _login_url())
        raise PermissionDenied("the modeld status page is for staff users")

    return checked


@never_cache
@staff_only
@require_safe
def status(request: HttpRequest) -> HttpResponse:
    """The status page of every alias (see the module's docstring)."""
    from . import clients
    from .overview import overview

    aliases = [overview(client) for client in clients.all()]
    return render(request, "modeld/status.html", {"aliases": aliases})
