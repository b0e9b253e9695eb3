"""Settings of the demo site.

Environment:
    MODELD_URL         where modeld listens (default grpc://127.0.0.1:8001; http:// works too)
    MODELD_TIMEOUT     seconds per call to modeld (default 5)
    DJANGO_DEBUG       "1" for Django's debug mode (default off)
    DJANGO_SECRET_KEY  the secret key (default: a fixed demo-only key)
    DJANGO_ALLOWED_HOSTS  comma-separated (default 127.0.0.1,localhost)
    CELERY_BROKER_URL  the batch page's Celery broker, which modeld consumes
                       (default redis://127.0.0.1:6379/0; amqp:// works too)
    CELERY_RESULT_BACKEND  where modeld stores the results (default redis://127.0.0.1:6379/0)

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

# The batch page (predictor/batch.py) sends modeld.predict tasks through Celery
# (demo_site/celery.py reads the CELERY_* settings); modeld consumes them itself, started with
# --celery-broker and --celery-result-backend naming the same two URLs. The page reads the
# results from any web worker, so the result backend must be Redis, not rpc://.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0")
# A request must not hang on a broker or backend that is down: give up within seconds, and
# tell the user (the page answers 503 with the reason).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
CELERY_REDIS_SOCKET_TIMEOUT = 5
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                     "interval_max": 0.2}}

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
