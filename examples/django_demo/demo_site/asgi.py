"""ASGI entry point (for an ASGI server; /api/apredict then shares one loop per process)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
application = get_asgi_application()
