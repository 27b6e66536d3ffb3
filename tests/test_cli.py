"""The command line's job and queue commands, run through Typer's test runner on the
test schema; ``--json`` output is parsed and checked against the client."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from click.testing import Result
from typer.testing import CliRunner

from conveyor import Conveyor, JobState
from conveyor._db.plan import Operation
from conveyor.cli import jobs as cli_jobs
from conveyor.cli import shared as cli_shared
from conveyor.cli.main import app, main
from conveyor.errors import InvalidPayload
from conveyor.worker.maintenance import snapshot

QUEUE = "cli.emails"
Cli = Callable[..., Result]


@pytest.fixture
def cli(database_url: str, schema: str) -> Iterator[Cli]:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, [*args, "--dsn", database_url, "--schema", schema],
                             input=input)

    yield invoke


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def json_after_answer(result: Result) -> Any:
    """The JSON printed after a confirmation (the test runner echoes the answer to
    standard output, where a terminal would not)."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def failed_job(cv: Conveyor, data: Any = None) -> str:
    """A job of QUEUE that failed for good, with a traceback in its error."""
    job_id = cv.send(QUEUE, data, retry_limit=0)
    assert job_id is not None
    [job] = cv.fetch(QUEUE)
    try:
        raise ValueError("mailbox [full]")
    except ValueError as exc:
        cv.fail(job, exc)
    return job_id


def state_of(cv: Conveyor, job_id: str) -> JobState | None:
    job = cv.get_job(job_id)
    return None if job is None else job.state


# --- send ----------------------------------------------------------------------------


def test_send_prints_the_new_jobs_id_and_applies_its_options(cv: Conveyor, cli: Cli) -> None:
    result = cli("send", QUEUE, '{"to": "ada@example.com"}', "--priority", "7", "--delay", "60",
                 "--retry-limit", "4", "--singleton-key", "ada", "--group-key", "tenant-1")

    assert result.exit_code == 0, result.output
    job = cv.get_job(result.stdout.strip())
    assert job is not None
    assert (job.data, job.priority, job.retry_limit, job.singleton_key, job.group_key) == (
        {"to": "ada@example.com"}, 7, 4, "ada", "tenant-1")
    assert job.start_after - job.created_at >= timedelta(seconds=59)


def test_send_json_prints_the_queue_and_id(cv: Conveyor, cli: Cli) -> None:
    sent = as_json(cli("send", QUEUE, "--json"))

    assert sent["queue"] == QUEUE
    job = cv.get_job(sent["id"])
    assert job is not None and job.data is None


def test_send_refuses_data_that_is_not_json_as_a_usage_error(cv: Conveyor, cli: Cli) -> None:
    result = cli("send", QUEUE, "{to: ada}")

    assert result.exit_code == 2
    assert "not valid JSON" in result.output
    assert cv.queue_counts(QUEUE)[JobState.CREATED] == 0


def test_send_inserts_a_json_lines_file_in_chunks(
    cv: Conveyor, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_jobs, "_CHUNK", 2)
    lines = [json.dumps({"data": {"n": n}, "priority": n}) for n in range(5)]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n")

    result = as_json(cli("send", QUEUE, "--file", str(path), "--json"))

    assert result == {"queue": QUEUE, "inserted": 5}
    jobs = cv.find_jobs(QUEUE).jobs
    assert sorted((j.data["n"], j.priority) for j in jobs) == [(n, n) for n in range(5)]


def test_send_from_a_file_with_a_line_that_is_not_an_object_sends_nothing(
    cv: Conveyor, cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"data": 1}\n[1, 2]\n')

    result = cli("send", QUEUE, "--file", str(path))

    assert isinstance(result.exception, InvalidPayload)
    assert "line 2" in str(result.exception)
    assert cv.find_jobs(QUEUE).jobs == []


def test_send_refuses_data_or_options_next_to_a_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"data": 1}\n')

    result = cli("send", QUEUE, "--file", str(path), "--priority", "3")

    assert result.exit_code == 2
    assert "--priority" in result.output


# --- jobs and job --------------------------------------------------------------------


def test_jobs_lists_the_jobs_of_a_queue_and_state_as_json_page_by_page(
    cv: Conveyor, cli: Cli
) -> None:
    failed = failed_job(cv)
    waiting = [cv.send(QUEUE, {"n": n}) for n in range(3)]
    cv.send("cli.other", {"n": 9})

    first = as_json(cli("jobs", "--queue", QUEUE, "--state", "created", "--limit", "2",
                        "--json"))
    second = as_json(cli("jobs", "--queue", QUEUE, "--state", "created", "--limit", "2",
                         "--cursor", first["next_cursor"], "--json"))
    only_failed = as_json(cli("jobs", "--state", "failed", "--json"))

    assert [j["id"] for j in first["jobs"] + second["jobs"]] == waiting[::-1]
    assert second["next_cursor"] is None
    assert [(j["id"], j["state"], j["error"]["type"]) for j in only_failed["jobs"]] == [
        (failed, "failed", "builtins.ValueError")]


def test_jobs_filters_by_key_and_search_text(cv: Conveyor, cli: Cli) -> None:
    keyed = cv.send(QUEUE, {"to": "ada"}, group_key="tenant-1")
    found = cv.send(QUEUE, {"to": "grace@example.com"})

    by_key = as_json(cli("jobs", "--key", "tenant-1", "--json"))
    by_text = as_json(cli("jobs", "--search", "GRACE@", "--json"))

    assert [j["id"] for j in by_key["jobs"]] == [keyed]
    assert [j["id"] for j in by_text["jobs"]] == [found]


def test_jobs_table_shows_whole_ids(cv: Conveyor, cli: Cli) -> None:
    job_id = cv.send(QUEUE, {"n": 1})

    result = cli("jobs")

    assert result.exit_code == 0, result.output
    assert job_id is not None and job_id in result.output


def test_an_unknown_state_is_a_usage_error_that_names_the_valid_ones(cli: Cli) -> None:
    result = cli("jobs", "--state", "done")

    assert result.exit_code == 2
    assert all(state.value in result.output for state in JobState)


def test_job_shows_data_output_and_each_attempts_error_with_its_traceback(
    cv: Conveyor, cli: Cli
) -> None:
    job_id = failed_job(cv, {"to": "ada"})

    shown = cli("job", job_id)
    read = as_json(cli("job", job_id, "--json"))

    assert shown.exit_code == 0, shown.output
    assert '"to": "ada"' in shown.output
    assert "builtins.ValueError: mailbox [full]" in shown.output
    assert "Traceback (most recent call last)" in shown.output
    assert (read["id"], read["state"], read["data"], read["progress"]) == (
        job_id, "failed", {"to": "ada"}, {})
    [error] = read["errors"]
    assert error["message"] == "mailbox [full]" and "raise ValueError" in error["traceback"]


def test_job_reports_a_job_that_does_not_exist_with_exit_code_1(cv: Conveyor, cli: Cli) -> None:
    result = cli("job", "01a20000-0000-7000-8000-000000000000")

    assert result.exit_code == 1
    assert "no job with id" in result.output


def pipeline(cv: Conveyor) -> dict[str, str]:
    """fetch, then parse (which ignores a failed fetch) and index; fetch has completed."""
    ids = cv.flow([
        {"ref": "fetch", "queue": "cli.download"},
        {"ref": "parse", "queue": "cli.parse",
         "depends_on": [{"ref": "fetch", "on_failure": "ignore"}]},
        {"ref": "index", "queue": "cli.index", "depends_on": ["parse", "fetch"]},
    ])
    [fetch] = cv.fetch("cli.download")
    cv.complete(fetch, {"pages": 3})
    return ids


@pytest.fixture
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal wide enough for every column of a table whole (the runner's is 80)."""
    monkeypatch.setattr(cli_shared.console, "width", 160)


def table_rows(output: str, after: str) -> list[list[str]]:
    """The cells of the rows of the first table printed after the line ``after``."""
    lines = output[output.index(f"\n{after}\n") + len(after) + 2:].splitlines()
    rows = []
    for line in lines[3:]:  # the top border, the heading, the rule under it
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


@pytest.mark.usefixtures("wide_terminal")
def test_job_lists_its_dependencies_and_dependents_with_ref_queue_state_and_policy(
    cv: Conveyor, cli: Cli
) -> None:
    ids = pipeline(cv)

    shown = cli("job", ids["parse"])

    assert shown.exit_code == 0, shown.output
    assert table_rows(shown.output, "dependencies") == [
        ["fetch", ids["fetch"], "cli.download", "completed", "ignore", "yes"]]
    assert table_rows(shown.output, "dependents") == [
        ["parse", ids["index"], "cli.index", "waiting", "cancel", "no"]]


def test_job_of_a_waiting_step_says_how_many_dependencies_it_still_waits_for(
    cv: Conveyor, cli: Cli
) -> None:
    ids = pipeline(cv)

    shown = cli("job", ids["index"])

    assert shown.exit_code == 0, shown.output
    assert re.search(r"^waits for +1 of 2 dependencies to finish", shown.output, re.M)
    assert "dependents" not in shown.output


def test_job_json_holds_its_dependencies_and_dependents_with_each_edge(
    cv: Conveyor, cli: Cli
) -> None:
    ids = pipeline(cv)

    read = as_json(cli("job", ids["parse"], "--json"))

    assert read["id"] == ids["parse"] and read["state"] == "created"
    [dependency] = read["dependencies"]
    [dependent] = read["dependents"]
    assert (dependency["job"]["id"], dependency["job"]["output"], dependency["ref"],
            dependency["on_failure"], dependency["settled"]) == (
        ids["fetch"], {"pages": 3}, "fetch", "ignore", True)
    assert (dependent["job"]["id"], dependent["job"]["state"], dependent["ref"],
            dependent["settled"]) == (ids["index"], "waiting", "parse", False)


def test_job_outside_any_flow_lists_no_dependencies(cv: Conveyor, cli: Cli) -> None:
    job_id = cv.send(QUEUE, {"to": "ada"})
    assert job_id is not None

    shown = cli("job", job_id)
    read = as_json(cli("job", job_id, "--json"))

    assert "dependencies" not in shown.output and "dependents" not in shown.output
    assert read["dependencies"] == [] and read["dependents"] == []


# --- retry, cancel, delete -----------------------------------------------------------


def test_retry_by_id_sends_a_failed_job_round_again(cv: Conveyor, cli: Cli) -> None:
    job_id = failed_job(cv)

    result = as_json(cli("retry", job_id, "--json"))

    assert result == {"action": "retry", "changed": 1}
    assert state_of(cv, job_id) == JobState.RETRY


def test_a_filter_action_asks_first_and_a_no_changes_nothing(cv: Conveyor, cli: Cli) -> None:
    job_ids = [cv.send(QUEUE, {"n": n}) for n in range(3)]

    result = cli("cancel", "--queue", QUEUE, input="n\n")

    assert result.exit_code == 1
    assert "the 3 jobs matching queue cli.emails" in result.output
    assert {state_of(cv, job_id) for job_id in job_ids if job_id} == {JobState.CREATED}


def test_a_filter_action_confirmed_applies_to_every_matching_job(
    cv: Conveyor, cli: Cli
) -> None:
    job_ids = [cv.send(QUEUE, {"n": n}) for n in range(3)]
    other = cv.send("cli.other", {"n": 9})

    result = cli("cancel", "--queue", QUEUE, "--state", "created", "--json", input="y\n")

    assert json_after_answer(result) == {"action": "cancel", "changed": 3}
    assert {state_of(cv, job_id) for job_id in job_ids if job_id} == {JobState.CANCELLED}
    assert other is not None and state_of(cv, other) == JobState.CREATED


def test_yes_skips_the_confirmation_of_a_filter_action(cv: Conveyor, cli: Cli) -> None:
    failed = failed_job(cv)
    waiting = cv.send(QUEUE)

    result = as_json(cli("delete", "--state", "failed", "--yes", "--json"))

    assert result == {"action": "delete", "changed": 1}
    assert cv.get_job(failed) is None
    assert waiting is not None and cv.get_job(waiting) is not None


def test_an_action_without_ids_or_filter_is_a_usage_error_that_says_what_to_give(
    cli: Cli
) -> None:
    result = cli("retry")

    assert result.exit_code == 2
    assert "--queue" in result.output and "job ids" in result.output


def test_an_action_with_both_ids_and_filter_is_a_usage_error(cv: Conveyor, cli: Cli) -> None:
    job_id = failed_job(cv)

    result = cli("delete", job_id, "--queue", QUEUE)

    assert result.exit_code == 2
    assert cv.get_job(job_id) is not None


# --- queues, stats, purge ------------------------------------------------------------


def test_queues_lists_each_queue_with_its_counts(cv: Conveyor, cli: Cli) -> None:
    failed_job(cv)
    cv.send(QUEUE)
    cv.send(QUEUE, start_after=3600)
    cv.create_queue("cli.other")
    cv.pause_queue("cli.other")

    table = cli("queues")
    listed = {q["name"]: q for q in as_json(cli("queues", "--json"))}

    assert table.exit_code == 0 and QUEUE in table.output
    assert (listed[QUEUE]["created"], listed[QUEUE]["scheduled"], listed[QUEUE]["failed"]) == (
        1, 1, 1)
    assert listed["cli.other"]["paused_until"] is not None


def test_stats_prints_the_recent_snapshots(cv: Conveyor, cli: Cli) -> None:
    cv.send(QUEUE)
    cv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))

    table = cli("stats", "--queue", QUEUE)
    rows = as_json(cli("stats", "--queue", QUEUE, "--since", "600", "--json"))

    assert table.exit_code == 0 and QUEUE in table.output
    assert [(r["queue"], r["created"]) for r in rows] == [(QUEUE, 1)]
    assert isinstance(rows[0]["taken_at"], str)


def test_purge_asks_first_and_a_no_deletes_nothing(cv: Conveyor, cli: Cli) -> None:
    cv.send(QUEUE)

    result = cli("purge", QUEUE, input="n\n")

    assert result.exit_code == 1
    assert "Delete the 1 jobs of queue cli.emails" in result.output
    assert cv.queue_counts(QUEUE)[JobState.CREATED] == 1


def test_purge_deletes_the_jobs_of_the_given_states_and_keeps_the_queue(
    cv: Conveyor, cli: Cli
) -> None:
    cv.create_queue(QUEUE, retry_limit=7)
    failed_job(cv)
    waiting = [cv.send(QUEUE, {"n": n}) for n in range(3)]

    result = cli("purge", QUEUE, "--state", "created", "--json", input="y\n")

    assert json_after_answer(result) == {"queue": QUEUE, "deleted": 3}
    assert all(cv.get_job(job_id) is None for job_id in waiting if job_id)
    counts = cv.queue_counts(QUEUE)
    assert (counts[JobState.CREATED], counts[JobState.FAILED]) == (0, 1)
    queue = cv.get_queue(QUEUE)
    assert queue is not None and queue.retry_limit == 7


def test_drain_waits_until_running_workers_have_handled_every_due_job(
    cv: Conveyor, cli: Cli
) -> None:
    cv.insert(QUEUE, [{"data": n} for n in range(30)])
    later = cv.send(QUEUE, {"n": "later"}, start_after=3600)

    def work_slowly() -> None:
        time.sleep(1.0)  # drain is already watching when the work starts
        for _ in range(30):
            jobs = cv.fetch(QUEUE, batch_size=5)
            for job in jobs:
                cv.complete(job, {"ok": True})
            time.sleep(0.1)

    worker = threading.Thread(target=work_slowly)
    worker.start()
    result = cli("drain", QUEUE, "--timeout", "30", "--json")
    worker.join(30)

    assert as_json(result) == {"queue": QUEUE, "drained": True, "left": 0}
    assert cv.queue_counts(QUEUE)[JobState.COMPLETED] == 30
    job = cv.get_job(later)  # scheduled for later: not waited for
    assert job is not None and job.state is JobState.CREATED


def test_drain_with_no_worker_gives_up_at_its_timeout_with_exit_code_1(
    cv: Conveyor, cli: Cli
) -> None:
    cv.send(QUEUE, {})
    result = cli("drain", QUEUE, "--timeout", "1")
    assert result.exit_code == 1
    assert "1 jobs of cli.emails still due or running after 1 s" in result.output


def test_drain_of_a_queue_that_does_not_exist_fails_with_exit_code_1(
    cv: Conveyor, cli: Cli
) -> None:
    result = cli("drain", "cli.nowhere")
    assert result.exit_code == 1
    assert "no queue named cli.nowhere" in result.output


def test_purge_of_a_queue_that_does_not_exist_fails_with_exit_code_1(
    cv: Conveyor, cli: Cli
) -> None:
    result = cli("purge", "cli.nowhere", "--yes")

    assert result.exit_code == 1
    assert "no queue named cli.nowhere" in result.output


# --- bench ---------------------------------------------------------------------------


def test_bench_runs_its_jobs_reports_the_rates_and_removes_its_queue(
    cv: Conveyor, cli: Cli
) -> None:
    report = as_json(cli("bench", "--jobs", "200", "--concurrency", "20", "--json"))

    assert (report["jobs"], report["completed"], report["concurrency"]) == (200, 200, 20)
    assert report["inserted_per_second"] > 0 and report["completed_per_second"] > 0
    assert [q.name for q in cv.list_queues() if q.name.startswith("bench.")] == []


def test_bench_reports_the_settings_its_figures_depend_on(
    cli: Cli, conn: psycopg.Connection[Any]
) -> None:
    report = as_json(cli("bench", "--jobs", "50", "--concurrency", "10", "--json"))

    expected = {name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers")}
    assert report["postgresql"] == expected


# --- the shell and the entry point ---------------------------------------------------


def test_shell_completion_offers_the_job_states() -> None:
    result = CliRunner().invoke(app, [], prog_name="conveyor", env={
        "_CONVEYOR_COMPLETE": "complete_bash", "COMP_WORDS": "conveyor jobs --state fa",
        "COMP_CWORD": "3"})

    assert result.output.split() == ["failed"]


def test_the_completion_script_for_a_shell_can_be_printed() -> None:
    # What --show-completion prints once it has detected the shell (detection
    # depends on the process tree, so the test names the shell instead).
    result = CliRunner().invoke(app, [], prog_name="conveyor",
                                env={"_CONVEYOR_COMPLETE": "source_bash"})

    assert result.exit_code == 0
    assert "_CONVEYOR_COMPLETE=complete_bash" in result.output


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["conveyor", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


def test_a_typed_error_prints_as_one_line_and_exits_with_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str,
    schema: str,
) -> None:
    code = run_main(monkeypatch, "job", "not-an-id-" + "x" * 100, "--dsn", database_url,
                    "--schema", schema)

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: a job id must be a UUID")


def test_a_database_that_does_not_exist_is_one_line_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str,
) -> None:
    missing = psycopg.conninfo.make_conninfo(database_url, dbname="no_such_database")
    began = time.monotonic()

    code = run_main(monkeypatch, "queues", "--dsn", missing)

    err = capsys.readouterr().err
    assert code == 1
    assert time.monotonic() - began < 5
    assert err.count("\n") == 1 and 'database "no_such_database" does not exist' in err


def test_no_database_configured_says_how_to_set_database_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_DATABASE_URL", raising=False)

    code = run_main(monkeypatch, "queues")

    assert code == 1
    assert "DATABASE_URL" in capsys.readouterr().err


def test_the_schema_can_come_from_conveyor_schema(
    cv: Conveyor, database_url: str, schema: str
) -> None:
    job_id = cv.send(QUEUE)

    result = CliRunner().invoke(app, ["jobs", "--json", "--dsn", database_url],
                                env={"CONVEYOR_SCHEMA": schema})

    assert [j["id"] for j in as_json(result)["jobs"]] == [job_id]
