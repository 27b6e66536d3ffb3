"""The Django app: resets the project's client when ``CONVEYOR`` changes."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting in ("CONVEYOR", "DATABASES"):
        from conveyor.contrib.django import reset_client

        reset_client()


class ConveyorConfig(AppConfig):
    name = "conveyor.contrib.django"
    label = "conveyor"
    verbose_name = "Conveyor"

    def ready(self) -> None:
        setting_changed.connect(_on_setting_changed, dispatch_uid="conveyor-settings")
