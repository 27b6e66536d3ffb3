"""Loads the named SQL in ``sql/``: the only place where SQL text is touched.

Every statement lives in ``sql/<name>.sql``; migrations in
``sql/migrations/NNNN_<name>.sql``. A file names the schema as ``{schema}``, which
is replaced by the quoted, validated schema identifier through
:mod:`psycopg.sql`. A few statements share one body and differ in a part taken
from another file (``_ASSEMBLED``). Nothing else is ever substituted, so no SQL is
built from user text. Because of the substitution a literal brace in SQL is
written ``{{`` ``}}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from psycopg import sql

from conveyor import _validate

_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str


@cache
def _source(name: str) -> str:
    return (resources.files("conveyor") / "sql" / f"{name}.sql").read_text("utf-8")


# Parts any statement may name: {job_columns} lists a job's columns in the order of
# the Job dataclass's fields, so rows become Jobs without a mapping per row;
# {notify_moved} wakes the workers of the queues of the rows in a CTE named moved;
# {claim_update} starts the attempts of the jobs in a CTE named chosen (both claims);
# {finished_retentions} walks the delete_after values of finished jobs (maintenance);
# {live_counts} counts each queue's waiting and active jobs (statistics, summaries);
# {job_filter} is the WHERE clause of the job list's filters (find, bulk actions);
# {schedule_columns} lists a schedule's columns in the order of the Schedule
# dataclass's fields, from a schedule s and its last job j.
_SHARED_PARTS = {name: name for name in (
    "job_columns", "notify_moved", "claim_update", "finished_retentions", "live_counts",
    "job_filter", "schedule_columns")}

# name: (body file, {placeholder: file of the part}). Each enqueue statement reads
# one job's parameters (send) or the staging table (insert, the ``_staged`` names).
_ENQUEUE_PARTS = {part: part for part in ("enqueue_rows", "enqueue_options", "enqueue_result")}
_ASSEMBLED: dict[str, tuple[str, dict[str, str]]] = {
    f"{body}{suffix}": (body, {"input": source, **_ENQUEUE_PARTS})
    for body in ("enqueue", "enqueue_next_slot", "enqueue_debounce")
    for suffix, source in (("", "enqueue_input_one"), ("_staged", "enqueue_input_staged"))
} | {
    # A worker's claims return {claimed_columns} in place of the job's columns.
    f"{body}_worker": (body, {"job_columns": "claimed_columns"})
    for body in ("claim", "claim_flow")
}


def _render(text: str, schema: str, **parts: str) -> str:
    quoted = sql.Identifier(_validate.schema_name(schema))
    composed = {name: sql.SQL(_render(part, schema)) for name, part in parts.items()}
    return sql.SQL(text).format(schema=quoted, **composed).as_string()


def _compact(text: str) -> str:
    """A statement without its comment lines and indentation, which are for readers
    of the files. psycopg converts the placeholders of a statement longer than 4096
    bytes again on every execution rather than once (0.15 ms of a 0.55 ms send
    here); compacted, the enqueue statements stay under that."""
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))


def _statement(name: str, schema: str) -> str:
    body, parts = _ASSEMBLED.get(name, (name, {}))
    texts = {key: _source(part).rstrip() for key, part in {**_SHARED_PARTS, **parts}.items()}
    return _compact(_render(_source(body), schema, **texts))


class Queries:
    """The named statements of one schema, rendered once and kept."""

    def __init__(self, schema: str) -> None:
        self.schema = _validate.schema_name(schema)
        self._rendered: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        text = self._rendered.get(name)
        if text is None:
            text = self._rendered[name] = _statement(name, self.schema)
        return text

    def migrations(self) -> list[Migration]:
        """Every migration shipped with this code, oldest first, rendered for the schema."""
        return [
            Migration(m.version, m.name, _render(m.text, self.schema)) for m in _migration_sources()
        ]


@cache
def _migration_sources() -> tuple[Migration, ...]:
    folder = resources.files("conveyor") / "sql" / "migrations"
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
