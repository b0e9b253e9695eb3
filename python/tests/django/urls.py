"""URLs for the modeld.django tests."""

from django.urls import path

from modeld.django.views import health, status

urlpatterns = [
    path("healthz", health, name="health"),
    path("modeld/status", status, name="modeld-status"),
]
