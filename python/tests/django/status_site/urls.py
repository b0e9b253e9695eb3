"""URLs of the status-page site: the admin (its login page) and modeld's status page."""

from django.contrib import admin
from django.urls import path

from modeld.django.views import status

urlpatterns = [
    path("admin/", admin.site.urls),
    path("modeld/status", status),
]
