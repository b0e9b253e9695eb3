"""The demo site's Celery app: it only *sends* tasks. modeld consumes them itself.

The usual Django layout (``config_from_object("django.conf:settings", namespace="CELERY")``:
``CELERY_BROKER_URL`` in settings.py is Celery's ``broker_url``, and so on), with
``modeld.celery.TASK_ROUTES`` sending every ``modeld.*`` task to the queue modeld consumes
(``--celery-queue``, default ``modeld``). No Python worker runs for this site: modeld was
started with ``--celery-broker`` and ``--celery-result-backend`` (README.md, "Batch scoring").

Unlike the usual layout, demo_site/__init__.py does not import this module: only the batch
page needs Celery, so the web workers load it when that page is first used, not at start.
The page reads ``demo_site.celery.app`` at each request (the tests swap in an app of their own
with :func:`make_app`).
"""

from __future__ import annotations

import os

from celery import Celery

import modeld.celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")


def make_app() -> Celery:
    """A Celery app configured from the Django settings (read when it is first used)."""
    celery_app = Celery("demo_site")
    celery_app.config_from_object("django.conf:settings", namespace="CELERY")
    celery_app.conf.task_routes = modeld.celery.TASK_ROUTES
    return celery_app


app = make_app()
