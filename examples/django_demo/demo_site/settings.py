"""Settings of the demo site.

Environment:
    MODELD_URL         where modeld listens (default grpc://127.0.0.1:8001; http:// works too)
    MODELD_TIMEOUT     seconds per call to modeld (default 5)
    DJANGO_DEBUG       "1" for Django's debug mode (default off)
    DJANGO_SECRET_KEY  the secret key (default: a fixed demo-only key)
    DJANGO_ALLOWED_HOSTS  comma-separated (default 127.0.0.1,localhost)

No database: the site has no models, sessions or users (CSRF uses its cookie).
"""

import os
import sys

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "modeld.django",
    "predictor",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]
DATABASES: dict = {}
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

# One modeld, shared by every web worker: the model is resident once, in modeld.
MODELD = {
    "default": {
        "URL": os.environ.get("MODELD_URL", "grpc://127.0.0.1:8001"),
        "TIMEOUT": float(os.environ.get("MODELD_TIMEOUT", "5")),
        "MODELS": ["linear", "mlp", "digits"],
    },
}

# `manage.py test` provokes 4xx/5xx answers and unreachable servers on purpose; keep quiet.
TESTING = sys.argv[1:2] == ["test"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"level": "CRITICAL" if TESTING else "WARNING"}
        for name in ("django.request", "django.security.csrf", "modeld.django")
    },
}
