"""The catalogue (``conveyor._db.statements``) and the SQL files agree: each statement
file is declared once and each declaration has its file, a declaration's
parameters are the placeholders of its SQL, fragments are only ever included, and
every composed statement renders."""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources

import pytest

from conveyor._db import queries, statements
from conveyor._db.queries import Statement

SQL = resources.files("conveyor._db") / "sql"
STATEMENT_FILES = sorted(entry.name.removesuffix(".sql") for entry in SQL.iterdir()
                         if entry.name.endswith(".sql"))
FRAGMENT_FILES = sorted(entry.name.removesuffix(".sql") for entry in (SQL / "fragments").iterdir()
                        if entry.name.endswith(".sql"))
COMPOSED = [s for s in statements.CATALOGUE if s.parts]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sbt]")


def _declared_as() -> dict[str, list[str]]:
    """Each declaration's identifiers in ``conveyor._db.statements``."""
    names: dict[str, list[str]] = {}
    for identifier, value in vars(statements).items():
        if isinstance(value, Statement):
            names.setdefault(value.name, []).append(identifier)
    return names


def test_every_statement_file_is_declared_exactly_once() -> None:
    declared = Counter(s.name for s in statements.CATALOGUE)
    assert {name: declared[name] for name in STATEMENT_FILES if declared[name] != 1} == {}


def test_every_declaration_has_its_file() -> None:
    missing = [s.name for s in statements.CATALOGUE if s.file not in STATEMENT_FILES]
    assert missing == []


def test_each_statement_is_declared_once_under_its_name_in_capitals() -> None:
    assert {name: identifiers for name, identifiers in _declared_as().items()
            if identifiers != [name.upper()]} == {}


def test_a_declaration_named_apart_from_any_file_is_composed_from_a_body() -> None:
    assert [s.name for s in statements.CATALOGUE
            if (s.name not in STATEMENT_FILES) != (s.body is not None and bool(s.parts))] == []


def test_fragments_are_not_declared_as_statements() -> None:
    assert [s.name for s in statements.CATALOGUE
            if s.name in FRAGMENT_FILES or s.file in FRAGMENT_FILES] == []
    assert set(STATEMENT_FILES) & set(FRAGMENT_FILES) == set()


def test_every_fragment_is_included_by_some_statement() -> None:
    used = set()
    for statement in statements.CATALOGUE:
        text = (SQL / f"{statement.file}.sql").read_text("utf-8")
        used |= {statement.parts.get(name, name) for name in queries.fragments_named(text)}
    assert sorted(set(FRAGMENT_FILES) - used) == []


def test_the_catalogue_declares_statements_not_text() -> None:
    assert [s.name for s in statements.CATALOGUE if s.text is not None] == []


@pytest.mark.parametrize("statement", statements.CATALOGUE, ids=lambda s: s.name)
def test_a_declarations_parameters_are_the_placeholders_of_its_sql(
    statement: Statement,
) -> None:
    rendered = queries.render(statement, "conveyor")
    assert len(set(statement.params)) == len(statement.params), "a parameter declared twice"
    assert sorted(statement.params) == sorted(set(PLACEHOLDER.findall(rendered)))


@pytest.mark.parametrize("statement", COMPOSED, ids=lambda s: s.name)
def test_a_composed_statement_renders_with_the_fragments_it_names(
    statement: Statement,
) -> None:
    body = (SQL / f"{statement.file}.sql").read_text("utf-8")
    assert set(statement.parts) <= queries.fragments_named(body)
    assert set(statement.parts.values()) <= set(FRAGMENT_FILES)
    rendered = queries.render(statement, "conveyor")
    for fragment in statement.parts.values():
        text = queries._compact(queries._fragment(fragment))
        assert text.replace("{schema}", '"conveyor"') in rendered


def test_a_copy_statement_takes_no_parameters_and_returns_no_rows() -> None:
    copies = [s for s in statements.CATALOGUE
              if queries.render(s, "conveyor").startswith("COPY")]
    assert {s.name for s in copies} == {"enqueue_copy", "enqueue_direct", "enqueue_flow",
                                          "flow_edges"}
    assert [(s.params, s.fetch) for s in copies] == [((), "none")] * len(copies)
