"""The app config of ``modeld.django`` (label ``modeld``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.signals import setting_changed


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Re-reads ``MODELD`` when a test changes it (override_settings)."""
    if setting == "MODELD":
        from . import aclients, clients

        clients.reset()
        aclients.reset()


class ModeldConfig(AppConfig):
    name = "modeld.django"
    label = "modeld"
    verbose_name = "modeld"
    default = True

    def ready(self) -> None:
        from .checks import check_servers, check_settings

        checks.register(check_settings, "modeld")
        checks.register(check_servers, "modeld", deploy=True)
        setting_changed.connect(_setting_changed, dispatch_uid="modeld.django.setting_changed")
