"""Who may use the web app: sign-in by token or basic auth, read-only mode, CSRF
protection, and the command's refusal to listen beyond this machine without
sign-in."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from typer.testing import CliRunner
from web_server import free_port

from conveyor import AsyncConveyor
from conveyor.cli import app as cli
from conveyor.web import WebSettings, create_app
from conveyor.web.security import CSRF_COOKIE

MakeApi = Callable[[WebSettings], httpx.AsyncClient]


@pytest.fixture
async def make_api(acv: AsyncConveyor) -> AsyncIterator[MakeApi]:
    clients: list[httpx.AsyncClient] = []

    def make(settings: WebSettings) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=create_app(acv, settings=settings))
        client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def _basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def test_a_token_is_required_as_a_bearer_token(make_api: MakeApi) -> None:
    api = make_api(WebSettings(token="s3cret"))
    assert (await api.get("/api/queues")).status_code == 401
    assert (await api.get("/api/queues", headers={"Authorization": "Bearer nope"})).status_code \
        == 401
    assert (await api.get("/api/queues", headers={"Authorization": "Bearer s3cret"})) \
        .status_code == 200
    assert (await api.get("/metrics")).status_code == 401


async def test_basic_auth_is_required_and_asked_for(make_api: MakeApi) -> None:
    api = make_api(WebSettings(basic_auth="ops:pa:ss"))
    refused = await api.get("/api/queues", headers=_basic("ops", "wrong"))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert (await api.get("/api/queues", headers=_basic("ops", "pa:ss"))).status_code == 200
    garbled = await api.get("/api/queues", headers={"Authorization": "Basic %%%"})
    assert garbled.status_code == 401


async def test_health_answers_without_sign_in(make_api: MakeApi) -> None:
    api = make_api(WebSettings(token="s3cret"))
    assert (await api.get("/api/health")).status_code == 200


async def test_a_dashboard_page_sends_a_visitor_without_sign_in_to_the_login_page(
    make_api: MakeApi,
) -> None:
    api = make_api(WebSettings(token="s3cret"))
    answer = await api.get("/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"


async def test_read_only_mode_refuses_every_change_and_changes_nothing(
    make_api: MakeApi, acv: AsyncConveyor
) -> None:
    api = make_api(WebSettings(read_only=True))
    job_id = await acv.send("mail", {})

    refused = [
        await api.post("/api/jobs", json={"queue": "mail"}),
        await api.post(f"/api/jobs/{job_id}/cancel"),
        await api.delete(f"/api/jobs/{job_id}"),
        await api.post("/api/jobs/bulk/delete", json={"queue": "mail"}),
        await api.post("/api/queues/mail/pause"),
    ]

    assert {answer.status_code for answer in refused} == {403}
    assert "read-only" in refused[0].json()["detail"]
    assert [job.id for job in (await acv.find_jobs()).jobs] == [job_id]
    assert (await api.get(f"/api/jobs/{job_id}")).status_code == 200


async def test_a_change_sent_by_a_browser_without_the_csrf_token_is_refused(
    make_api: MakeApi, acv: AsyncConveyor
) -> None:
    api = make_api(WebSettings())
    job_id = await acv.send("mail", {})

    cross_site = await api.post(f"/api/jobs/{job_id}/cancel",
                                headers={"Origin": "http://evil.example"})
    with_cookie_only = await api.post(f"/api/jobs/{job_id}/cancel",
                                      headers={"Cookie": f"{CSRF_COOKIE}=abc"})
    wrong_token = await api.post(f"/api/jobs/{job_id}/cancel",
                                 headers={"Cookie": f"{CSRF_COOKIE}=abc", "X-CSRF-Token": "abd"})

    assert {a.status_code for a in (cross_site, with_cookie_only, wrong_token)} == {403}
    assert "X-CSRF-Token" in cross_site.json()["detail"]
    job = await acv.get_job(job_id)
    assert job is not None and job.state.value == "created"


async def test_a_change_with_the_csrf_token_of_its_cookie_is_accepted(
    make_api: MakeApi, acv: AsyncConveyor
) -> None:
    api = make_api(WebSettings())
    job_id = await acv.send("mail", {})
    answer = await api.post(f"/api/jobs/{job_id}/cancel", headers={
        "Origin": "http://127.0.0.1", "Cookie": f"{CSRF_COOKIE}=abc", "X-CSRF-Token": "abc"})
    assert answer.status_code == 200


async def test_a_script_without_cookies_and_a_bearer_token_needs_no_csrf_token(
    make_api: MakeApi, acv: AsyncConveyor
) -> None:
    open_api = make_api(WebSettings())
    signed = make_api(WebSettings(token="s3cret"))
    assert (await open_api.post("/api/jobs", json={"queue": "mail"})).status_code == 201
    by_token = await signed.post("/api/jobs", json={"queue": "mail"}, headers={
        "Authorization": "Bearer s3cret", "Origin": "http://elsewhere.example"})
    assert by_token.status_code == 201


async def test_api_answers_set_no_csrf_cookie(make_api: MakeApi) -> None:
    api = make_api(WebSettings())
    assert CSRF_COOKIE not in (await api.get("/api/queues")).cookies


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])
def test_the_dashboard_refuses_to_listen_beyond_this_machine_without_sign_in(host: str) -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--host", host,
                                      "--dsn", "postgresql://127.0.0.1:1/unused"])
    assert result.exit_code == 2
    assert "refusing to serve" in result.output


def test_the_dashboard_listens_on_127_0_0_1_by_default(database_url: str, schema: str) -> None:
    port = free_port()
    env = {**os.environ, "CONVEYOR_SCHEMA": schema, "DATABASE_URL": database_url}
    env.pop("CONVEYOR_DASHBOARD_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from conveyor.cli import main; main()", "dashboard",
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        assert answer.status_code == 200
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                                   text=True, check=False).stdout
        if listening:  # ss is there: every socket is on the loopback address
            local = [line.split()[3] for line in listening.splitlines()]
            assert local == [f"127.0.0.1:{port}"]
    finally:
        process.terminate()
        process.wait(10)
