"""``health``: a readiness view for load-balancer probes.

    path("healthz", modeld.django.views.health)

GET (or HEAD) answers 200 when every alias's server is ready and so is every model in its
``MODELS``, else 503; the body says what is ready::

    {"ready": false,
     "servers": {"default": true},
     "models": {"default": {"linear": true, "mlp": false}},
     "not_ready": ["default/mlp"]}

``not_ready`` lists ``alias`` for a server that is not ready and ``alias/model`` for a model.
Each call uses the alias's client and its TIMEOUT. Other methods get 405.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
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
        # alias/model -> why it is not ready, as modeld says it
        "reasons": {f"{status.alias}/{name}": reason for status in statuses
                    for name, reason in status.model_errors.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
