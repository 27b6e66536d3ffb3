"""Conveyor in a Django project.

Add the app and, if needed, settings::

    INSTALLED_APPS += ["conveyor.contrib.django"]
    CONVEYOR = {
        "schema": "conveyor",          # default: CONVEYOR_SCHEMA, else "conveyor"
        "tasks": ["shop.tasks"],       # modules that register handlers
    }

Without ``"dsn"``, Conveyor uses the database of ``"database"`` (Django's
``"default"``), which must be PostgreSQL on psycopg 3. :func:`get_client` is the
project's client; :func:`psycopg_connection` is Django's own connection, so a job
sent with ``conn=psycopg_connection()`` inside ``transaction.atomic()`` commits or
rolls back with it; ``python manage.py conveyor_worker`` runs the handlers.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg.conninfo import make_conninfo

from conveyor.client import Conveyor
from conveyor.errors import ConfigurationError

DEFAULT_DATABASE = "default"
_KEYS = ("dsn", "schema", "database", "tasks")

_lock = threading.Lock()
_client: Conveyor | None = None


def conveyor_settings() -> Mapping[str, Any]:
    """The ``CONVEYOR`` setting, checked (empty when it is not set)."""
    value = getattr(settings, "CONVEYOR", {})
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"settings.CONVEYOR must be a dict, not {type(value).__name__}")
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise ConfigurationError(
            f"settings.CONVEYOR has unknown keys {', '.join(unknown)}; "
            f"it takes {', '.join(_KEYS)}"
        )
    return value


def psycopg_connection(using: str | None = None) -> psycopg.Connection[Any]:
    """Django's psycopg connection for the database ``using`` (the one in
    ``CONVEYOR["database"]``, else ``"default"``), to pass as ``conn=``: inside
    ``transaction.atomic()`` the job commits or rolls back with Django's transaction::

        with transaction.atomic():
            order.save()
            get_client().send("fulfil-order", {"order_id": order.pk},
                              conn=psycopg_connection())
    """
    alias = using or conveyor_settings().get("database", DEFAULT_DATABASE)
    wrapper = connections[alias]
    wrapper.ensure_connection()
    connection = wrapper.connection
    if not isinstance(connection, psycopg.Connection):
        raise ConfigurationError(
            f"Django's database {alias!r} is {wrapper.vendor} on "
            f"{type(connection).__module__}; Conveyor joins its transactions on "
            "PostgreSQL with psycopg 3 (pip install 'psycopg[binary]', Django 4.2 or later)"
        )
    return connection


def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults())


def database_dsn(alias: str) -> str:
    """A connection string for Django's database ``alias`` (PostgreSQL only)."""
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ConfigurationError(
            f"Django's database {alias!r} is {wrapper.vendor}, not PostgreSQL; set "
            "CONVEYOR['dsn'] to a PostgreSQL connection string"
        )
    keywords = _libpq_keywords()
    params = {key: value for key, value in wrapper.get_connection_params().items()
              if key in keywords and value not in (None, "")}
    return make_conninfo(**params)


def get_client() -> Conveyor:
    """The project's :class:`~conveyor.Conveyor`, started on first use (which opens
    its connection pool and migrates its schema) and shared by every thread::

        from conveyor.contrib.django import get_client

        @get_client().task("send-welcome-email")
        def send_welcome_email(job: Job) -> None: ...
    """
    global _client
    with _lock:
        if _client is None:
            options = conveyor_settings()
            dsn = options.get("dsn") or database_dsn(options.get("database", DEFAULT_DATABASE))
            _client = Conveyor(dsn, schema=options.get("schema")).start()
        return _client


def reset_client() -> None:
    """Stop the project's client; the next :func:`get_client` starts one from the
    settings as they are then (the app calls this when ``CONVEYOR`` changes)."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.stop()


def import_tasks() -> None:
    """Import the modules in ``CONVEYOR["tasks"]``, which register handlers."""
    modules = conveyor_settings().get("tasks", [])
    if isinstance(modules, str):
        raise ConfigurationError("CONVEYOR['tasks'] must be a list of module paths, not a str")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"CONVEYOR['tasks'] names {module!r}, which cannot be imported: {exc}"
            ) from exc
