"""URLs of the demo site."""

from django.urls import path

from modeld.django.views import health
from predictor import api, views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/predict/<str:model>", api.predict, name="api-predict"),
    path("api/apredict/<str:model>", api.apredict, name="api-apredict"),
    path("api/digits", api.digits, name="api-digits"),
    path("healthz", health, name="healthz"),
]
