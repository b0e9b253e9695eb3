"""URLs of the demo site."""

from django.urls import path

from modeld.django.views import health
from predictor import api, batch, views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/predict/<str:model>", api.predict, name="api-predict"),
    path("api/apredict/<str:model>", api.apredict, name="api-apredict"),
    path("api/digits", api.digits, name="api-digits"),
    path("batch/", batch.batch, name="batch"),
    path("batch/<str:token>/", batch.batch_job, name="batch-job"),
    path("batch/<str:token>/progress", batch.batch_progress, name="batch-progress"),
    path("healthz", health, name="healthz"),
]
