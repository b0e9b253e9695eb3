"""Settings for the modeld.django tests (see runtests.py). No database."""

SECRET_KEY = "modeld-django-tests"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["modeld.django"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "urls"
DATABASES: dict = {}
# Nothing listens on port 9 (discard) of this machine; tests that need a server override it.
MODELD = {
    "default": {"URL": "grpc://127.0.0.1:9", "TIMEOUT": 2.0, "RETRIES": 0, "MODELS": ["linear"]},
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # The probe warns about unreachable servers; the tests make them unreachable on purpose.
    "loggers": {"modeld.django": {"level": "ERROR"}},
}
