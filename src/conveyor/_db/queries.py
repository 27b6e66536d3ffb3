"""Renders the statements of the catalogue: the only place where SQL text is touched.

Each statement is declared once, in :mod:`conveyor._db.statements`, as a
:class:`Statement`: its name, its parameters, how its rows come back, and, for a
composed statement, its body and the fragments it takes. Its SQL is in
``sql/<name>.sql`` (a composed one's in its body's file); parts included into
statements are in ``sql/fragments/<name>.sql``; migrations in
``sql/migrations/NNNN_<name>.sql``. A file names the schema as ``{schema}``, which
is replaced by the quoted, validated schema identifier through :mod:`psycopg.sql`,
and a fragment as ``{fragment_name}``, replaced by that fragment's text (or by the
fragment a composed statement names for it). Nothing else is ever substituted, so
no SQL is built from user text. Because of the substitution a literal brace in SQL
is written ``{{`` ``}}``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

from psycopg import sql

from conveyor._ops import validate

_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

Fetch = Literal["none", "one", "all"]
"""What a statement's step returns: its row count, its first row, or all its rows."""


@dataclass(frozen=True, slots=True, eq=False)
class Statement:
    """A statement as declared in :mod:`conveyor._db.statements`; plans run it with
    ``Execute(statement, params)``. Compared and hashed by identity: each
    declaration is one object, and the rendered text is cached under it."""

    name: str
    params: tuple[str, ...] = ()
    """The names of its ``%(name)s`` placeholders (``tests/test_statements.py``
    checks them against the rendered SQL)."""
    fetch: Fetch = "all"
    tuples: bool = False
    """Rows as tuples (cheaper) rather than dicts by column name."""
    body: str | None = None
    """The file of a composed statement's SQL; ``None``: ``sql/<name>.sql``."""
    parts: Mapping[str, str] = field(default_factory=dict)
    """A composed statement's fragments by placeholder, where they differ from the
    fragment the placeholder names (``{"input": "enqueue_input_staged"}``)."""
    text: str | None = None
    """SQL given as text rather than declared in the catalogue: a migration's,
    rendered by :meth:`Queries.migrations`."""

    @property
    def file(self) -> str:
        """The name of the file that holds its SQL, ``sql/<file>.sql``."""
        return self.body or self.name


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str


@cache
def _source(name: str) -> str:
    return (resources.files("conveyor._db") / "sql" / f"{name}.sql").read_text("utf-8")


@cache
def _fragment(name: str) -> str:
    return _source(f"fragments/{name}").rstrip()


def fragments_named(text: str) -> set[str]:
    """The fragments a statement's text names: its ``{placeholders}`` but the schema."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name} - {"schema"}


def _render(text: str, schema: str, **parts: str) -> str:
    quoted = sql.Identifier(validate.schema_name(schema))
    composed = {name: sql.SQL(_render(part, schema)) for name, part in parts.items()}
    return sql.SQL(text).format(schema=quoted, **composed).as_string()


def _compact(text: str) -> str:
    """A statement without its comment lines and indentation, which are for readers
    of the files. psycopg converts the placeholders of a statement longer than 4096
    bytes again on every execution rather than once (0.15 ms of a 0.55 ms send
    here); compacted, the enqueue statements stay under that."""
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))


def render(statement: Statement, schema: str) -> str:
    """The text of ``statement`` for ``schema``, with its fragments in place."""
    text = _source(statement.file)
    parts = {name: _fragment(statement.parts.get(name, name)) for name in fragments_named(text)}
    return _compact(_render(text, schema, **parts))


class Queries:
    """The statements of one schema, each rendered once and kept."""

    def __init__(self, schema: str) -> None:
        self.schema = validate.schema_name(schema)
        self._rendered: dict[Statement, str] = {}

    def __getitem__(self, statement: Statement) -> str:
        text = self._rendered.get(statement)
        if text is None:
            text = self._rendered[statement] = render(statement, self.schema)
        return text

    def migrations(self) -> list[Migration]:
        """Every migration shipped with this code, oldest first, rendered for the schema."""
        return [
            Migration(m.version, m.name, _render(m.text, self.schema)) for m in _migration_sources()
        ]


@cache
def _migration_sources() -> tuple[Migration, ...]:
    folder = resources.files("conveyor._db") / "sql" / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return tuple(found)


def latest_version() -> int:
    """The schema version this code expects."""
    return len(_migration_sources())
