"""Integrations with frameworks: :mod:`conveyor.contrib.sqlalchemy` and
:mod:`conveyor.contrib.django` (see docs/integrations.md)."""
