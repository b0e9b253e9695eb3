"""URLs for the modeld.django tests."""

from django.urls import path

from modeld.django.views import health

urlpatterns = [path("healthz", health, name="health")]
