"""Settings for the modeld.django tests (see runtests.py). A database (SQLite, in memory) only
for the users of the status page's tests (test_status_page)."""

SECRET_KEY = "modeld-django-tests"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "modeld.django",
]
MIDDLEWARE: list[str] = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# The status page's template (modeld/status.html, in the app).
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
# Fast hashing: the tests make users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Nothing listens on port 9 (discard) of this machine; tests that need a server override it.
MODELD = {
    "default": {"URL": "grpc://127.0.0.1:9", "TIMEOUT": 2.0, "RETRIES": 0, "MODELS": ["linear"]},
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # The probe warns about unreachable servers; the tests make them unreachable on purpose.
    # So do the status page (its 403s are logged by django.request).
    "loggers": {"modeld.django": {"level": "ERROR"}, "django.request": {"level": "ERROR"}},
}
