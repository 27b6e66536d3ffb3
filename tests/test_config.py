"""Settings resolve from arguments first, then the environment, then the defaults;
malformed values raise ConfigurationError; passwords never show in messages.

These tests need no database: ``Settings.resolve`` only parses the DSN."""

from __future__ import annotations

import math

import psycopg.conninfo
import pytest

from conveyor.config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_POOL_SIZE,
    DEFAULT_SCHEMA,
    DEFAULT_STATEMENT_DEADLINE,
    NETWORK_DEFAULTS,
    Settings,
    redact,
)
from conveyor.errors import ConfigurationError, InvalidSchemaName

ARG_URL = "postgresql://from_argument@127.0.0.1:5432/a"
CONVEYOR_URL = "postgresql://from_conveyor_variable@127.0.0.1:5432/c"
PLAIN_URL = "postgresql://from_database_url@127.0.0.1:5432/p"

# (argument name, its variable, argument value, variable text, value the text means)
NUMERIC = [
    ("max_payload_bytes", "CONVEYOR_MAX_PAYLOAD_BYTES", 1000, "2000", 2000),
    ("pool_size", "CONVEYOR_POOL_SIZE", 3, "7", 7),
    ("connect_timeout", "CONVEYOR_CONNECT_TIMEOUT", 1.5, "2.5", 2.5),
    ("statement_deadline", "CONVEYOR_STATEMENT_DEADLINE", 5.0, "0.5", 0.5),
]
NUMERIC_IDS = [row[0] for row in NUMERIC]
NUMERIC_VARIABLES = [row[1] for row in NUMERIC]

# --- where each setting comes from ----------------------------------------------------


def test_dsn_argument_wins_over_every_environment_variable() -> None:
    environ = {"CONVEYOR_DATABASE_URL": CONVEYOR_URL, "DATABASE_URL": PLAIN_URL}
    assert Settings.resolve(ARG_URL, environ=environ).dsn == ARG_URL


def test_conveyor_database_url_wins_over_database_url() -> None:
    environ = {"CONVEYOR_DATABASE_URL": CONVEYOR_URL, "DATABASE_URL": PLAIN_URL}
    assert Settings.resolve(environ=environ).dsn == CONVEYOR_URL


def test_database_url_is_used_when_conveyor_database_url_is_unset() -> None:
    assert Settings.resolve(environ={"DATABASE_URL": PLAIN_URL}).dsn == PLAIN_URL


def test_empty_conveyor_database_url_falls_through_to_database_url() -> None:
    environ = {"CONVEYOR_DATABASE_URL": "", "DATABASE_URL": PLAIN_URL}
    assert Settings.resolve(environ=environ).dsn == PLAIN_URL


def test_schema_argument_wins_over_conveyor_schema() -> None:
    settings = Settings.resolve(ARG_URL, schema="from_arg", environ={"CONVEYOR_SCHEMA": "env"})
    assert settings.schema == "from_arg"


def test_conveyor_schema_is_used_without_a_schema_argument() -> None:
    settings = Settings.resolve(ARG_URL, environ={"CONVEYOR_SCHEMA": "from_env"})
    assert settings.schema == "from_env"


@pytest.mark.parametrize(("argument", "variable", "given", "text", "_meaning"), NUMERIC,
                         ids=NUMERIC_IDS)
def test_numeric_argument_wins_over_its_environment_variable(
    argument: str, variable: str, given: float, text: str, _meaning: float
) -> None:
    settings = Settings.resolve(ARG_URL, environ={variable: text}, **{argument: given})
    assert getattr(settings, argument) == given


@pytest.mark.parametrize(("argument", "variable", "_given", "text", "meaning"), NUMERIC,
                         ids=NUMERIC_IDS)
def test_numeric_setting_is_read_from_its_environment_variable(
    argument: str, variable: str, _given: float, text: str, meaning: float
) -> None:
    settings = Settings.resolve(ARG_URL, environ={variable: text})
    assert getattr(settings, argument) == meaning


def test_defaults_apply_when_neither_argument_nor_environment_sets_a_value() -> None:
    settings = Settings.resolve(ARG_URL, environ={})
    assert settings == Settings(
        dsn=ARG_URL,
        schema=DEFAULT_SCHEMA,
        max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES,
        pool_size=DEFAULT_POOL_SIZE,
        connect_timeout=DEFAULT_CONNECT_TIMEOUT,
        pgbouncer=False,
        statement_deadline=DEFAULT_STATEMENT_DEADLINE,
    )


def test_empty_numeric_environment_variables_count_as_unset() -> None:
    settings = Settings.resolve(ARG_URL, environ=dict.fromkeys(NUMERIC_VARIABLES, ""))
    assert (settings.max_payload_bytes, settings.pool_size, settings.connect_timeout,
            settings.statement_deadline) == (
        DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_POOL_SIZE, DEFAULT_CONNECT_TIMEOUT,
        DEFAULT_STATEMENT_DEADLINE,
    )


def test_process_environment_is_read_when_no_environ_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONVEYOR_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", PLAIN_URL)
    monkeypatch.setenv("CONVEYOR_POOL_SIZE", "4")
    settings = Settings.resolve()
    assert (settings.dsn, settings.pool_size) == (PLAIN_URL, 4)


def test_explicit_environ_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_POOL_SIZE", "4")
    assert Settings.resolve(ARG_URL, environ={}).pool_size == DEFAULT_POOL_SIZE


# --- what is refused ------------------------------------------------------------------


def test_no_database_configured_raises_configuration_error_naming_database_url() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        Settings.resolve(environ={})


def test_invalid_database_url_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="invalid database URL"):
        Settings.resolve("host=localhost junk", environ={})


def test_invalid_database_url_error_does_not_reveal_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.resolve("postgresql://user:s3cret@[::1/db", environ={})
    assert "s3cret" not in str(info.value)


def test_invalid_schema_in_the_environment_raises_invalid_schema_name() -> None:
    with pytest.raises(InvalidSchemaName):
        Settings.resolve(ARG_URL, environ={"CONVEYOR_SCHEMA": "Bad-Name"})


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("CONVEYOR_MAX_PAYLOAD_BYTES", "lots"),
        ("CONVEYOR_MAX_PAYLOAD_BYTES", "1.5"),
        ("CONVEYOR_POOL_SIZE", "ten"),
        ("CONVEYOR_POOL_SIZE", "1e3"),
        ("CONVEYOR_CONNECT_TIMEOUT", "soon"),
        ("CONVEYOR_CONNECT_TIMEOUT", "5s"),
        ("CONVEYOR_CONNECT_TIMEOUT", "nan"),
        ("CONVEYOR_STATEMENT_DEADLINE", "15s"),
        ("CONVEYOR_STATEMENT_DEADLINE", "inf"),
    ],
)
def test_malformed_number_in_the_environment_raises_configuration_error(
    variable: str, text: str
) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.resolve(ARG_URL, environ={variable: text})


def test_a_word_for_a_whole_number_in_the_environment_is_explained_plainly() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.resolve(ARG_URL, environ={"CONVEYOR_POOL_SIZE": "ten"})

    assert str(info.value) == (
        "CONVEYOR_POOL_SIZE='ten' is not a whole number: give a positive whole number, "
        "like 10")


@pytest.mark.parametrize("variable", NUMERIC_VARIABLES)
@pytest.mark.parametrize("text", ["0", "-1"])
def test_non_positive_number_in_the_environment_raises_configuration_error(
    variable: str, text: str
) -> None:
    with pytest.raises(ConfigurationError, match="positive"):
        Settings.resolve(ARG_URL, environ={variable: text})


@pytest.mark.parametrize("argument", NUMERIC_IDS)
@pytest.mark.parametrize("value", [0, -1, -0.5, True, "5"], ids=repr)
def test_non_positive_or_non_numeric_argument_raises_configuration_error(
    argument: str, value: object
) -> None:
    with pytest.raises(ConfigurationError, match="positive"):
        Settings.resolve(ARG_URL, environ={}, **{argument: value})  # type: ignore[arg-type]


def test_nan_connect_timeout_argument_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Settings.resolve(ARG_URL, connect_timeout=math.nan, environ={})


def test_infinite_statement_deadline_argument_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="statement_deadline"):
        Settings.resolve(ARG_URL, statement_deadline=math.inf, environ={})


# --- the connections' network settings -------------------------------------------------


def test_conninfo_adds_keepalives_user_timeout_and_connect_timeout_to_the_dsn() -> None:
    settings = Settings.resolve(ARG_URL, connect_timeout=2.5, environ={})
    params = psycopg.conninfo.conninfo_to_dict(settings.conninfo())
    assert params == {**psycopg.conninfo.conninfo_to_dict(ARG_URL), **NETWORK_DEFAULTS,
                      "connect_timeout": "3"}  # libpq takes whole seconds: rounded up


@pytest.mark.parametrize("dsn", [
    f"{ARG_URL}?keepalives_idle=5&tcp_user_timeout=0&connect_timeout=30",
    "host=127.0.0.1 dbname=a keepalives_idle=5 tcp_user_timeout=0 connect_timeout=30",
], ids=["url", "key-value"])
def test_the_dsns_own_network_settings_win_over_the_defaults(dsn: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(Settings.resolve(dsn, environ={}).conninfo())
    assert (params["keepalives_idle"], params["tcp_user_timeout"], params["connect_timeout"]) \
        == ("5", "0", "30")
    assert params["keepalives_interval"] == NETWORK_DEFAULTS["keepalives_interval"]


# --- redact ---------------------------------------------------------------------------


def test_redact_hides_the_password_of_a_url() -> None:
    redacted = redact("postgresql://alice:s3cret@db.internal:5433/jobs")
    assert "s3cret" not in redacted
    assert psycopg.conninfo.conninfo_to_dict(redacted)["password"] == "***"


def test_redact_hides_the_password_of_a_key_value_dsn() -> None:
    redacted = redact("host=db.internal user=alice password=s3cret dbname=jobs")
    assert "s3cret" not in redacted
    assert psycopg.conninfo.conninfo_to_dict(redacted)["password"] == "***"


def test_redact_hides_a_quoted_password_with_spaces_in_a_key_value_dsn() -> None:
    redacted = redact("host=db.internal user=alice password='s3 cret' dbname=jobs")
    assert "s3" not in redacted
    assert "cret" not in redacted


def test_redact_hides_a_password_given_as_a_url_query_parameter() -> None:
    redacted = redact("postgresql://alice@db.internal/jobs?password=s3cret")
    assert "s3cret" not in redacted


def test_redact_hides_a_percent_encoded_password() -> None:
    redacted = redact("postgresql://alice:s3%40cret@db.internal/jobs")
    assert "s3%40cret" not in redacted
    assert "s3@cret" not in redacted


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://alice:s3cret@db.internal:5433/jobs?sslmode=require",
        "host=db.internal port=5433 user=alice password=s3cret dbname=jobs sslmode=require",
    ],
    ids=["url", "key-value"],
)
def test_redact_keeps_everything_but_the_password(dsn: str) -> None:
    original = psycopg.conninfo.conninfo_to_dict(dsn)
    redacted = psycopg.conninfo.conninfo_to_dict(redact(dsn))
    original.pop("password")
    redacted.pop("password")
    assert redacted == original


def test_redact_of_a_dsn_without_password_adds_none() -> None:
    redacted = redact("postgresql://alice@db.internal/jobs")
    assert "password" not in psycopg.conninfo.conninfo_to_dict(redacted)


def test_redact_does_not_echo_an_unparseable_dsn() -> None:
    assert "s3cret" not in redact("postgresql://alice:s3cret@[::1/jobs")
