"""Who may use the web app: sign-in by token or basic auth, read-only mode, CSRF
protection, and the command's refusal to listen beyond this machine without
sign-in."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from typer.testing import CliRunner
from web_server import free_port

from conveyor import AsyncConveyor
from conveyor.cli.main import app as cli
from conveyor.errors import ConfigurationError
from conveyor.web import WebSettings, create_app
from conveyor.web.security import CSRF_COOKIE, SESSION_COOKIE, is_loopback

MakeApi = Callable[[WebSettings], httpx.AsyncClient]

TOKEN = "s3cret-s3cret-s3cret"


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
    api = make_api(WebSettings(token=TOKEN))
    assert (await api.get("/api/queues")).status_code == 401
    assert (await api.get("/api/queues", headers={"Authorization": "Bearer nope"})).status_code \
        == 401
    assert (await api.get("/api/queues", headers={"Authorization": f"Bearer {TOKEN}"})) \
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
    api = make_api(WebSettings(token=TOKEN))
    assert (await api.get("/api/health")).status_code == 200


async def test_a_dashboard_page_sends_a_visitor_without_sign_in_to_the_login_page(
    make_api: MakeApi,
) -> None:
    api = make_api(WebSettings(token=TOKEN))
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
    signed = make_api(WebSettings(token=TOKEN))
    assert (await open_api.post("/api/jobs", json={"queue": "mail"})).status_code == 201
    by_token = await signed.post("/api/jobs", json={"queue": "mail"}, headers={
        "Authorization": f"Bearer {TOKEN}", "Origin": "http://elsewhere.example"})
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
        [sys.executable, "-c", "from conveyor.cli.main import main; main()", "dashboard",
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


# --- sessions ---------------------------------------------------------------------------


async def _signed_in(api: httpx.AsyncClient) -> str:
    answer = await api.post("/login", data={"token": TOKEN})
    assert answer.status_code == 303
    return answer.cookies[SESSION_COOKIE]


async def test_a_change_signed_in_by_the_session_cookie_needs_the_csrf_token(
    make_api: MakeApi, acv: AsyncConveyor,
) -> None:
    api = make_api(WebSettings(token=TOKEN))
    session = await _signed_in(api)
    api.cookies.clear()
    job_id = await acv.send("mail", {})

    # Neither Origin nor Sec-Fetch-Site: only a Referer from another site.
    answer = await api.post(f"/api/jobs/{job_id}/cancel", headers={
        "Cookie": f"{SESSION_COOKIE}={session}", "Referer": "https://evil.example/page"})

    assert answer.status_code == 403 and "X-CSRF-Token" in answer.text
    job = await acv.get_job(job_id)
    assert job is not None and job.state.value == "created"


async def test_a_browser_change_by_basic_auth_with_only_a_referer_needs_the_csrf_token(
    make_api: MakeApi, acv: AsyncConveyor,
) -> None:
    api = make_api(WebSettings(basic_auth="ops:long-password"))
    job_id = await acv.send("mail", {})

    answer = await api.post(f"/api/jobs/{job_id}/cancel", headers={
        **_basic("ops", "long-password"), "Referer": "https://evil.example/page"})

    assert answer.status_code == 403


async def test_a_session_ends_after_its_time(make_api: MakeApi) -> None:
    settings = WebSettings(token=TOKEN, session_seconds=3600)
    api = make_api(settings)
    ended = settings.credentials.session_value(now=time.time() - 3601)

    answer = await api.get("/", headers={"Cookie": f"{SESSION_COOKIE}={ended}"})

    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


async def test_a_session_whose_end_was_moved_is_refused(make_api: MakeApi) -> None:
    settings = WebSettings(token=TOKEN)
    api = make_api(settings)
    ends, _, signature = settings.credentials.session_value().partition(".")
    moved = f"{int(ends) + 86400 * 365}.{signature}"

    answer = await api.get("/", headers={"Cookie": f"{SESSION_COOKIE}={moved}"})

    assert answer.status_code == 303


async def test_sign_out_ends_the_session_in_the_browser(make_api: MakeApi) -> None:
    api = make_api(WebSettings(token=TOKEN))
    await _signed_in(api)
    overview = await api.get("/")

    answer = await api.post("/logout")

    assert 'action="/logout"' in overview.text and "Sign out" in overview.text
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert f'{SESSION_COOKIE}=""' in answer.headers["set-cookie"]
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert (await api.get("/")).status_code == 303


async def test_the_api_explorer_sends_a_person_without_a_session_to_sign_in(
    make_api: MakeApi,
) -> None:
    api = make_api(WebSettings(token=TOKEN))

    answer = await api.get("/api/docs")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fapi%2Fdocs"


async def test_the_api_explorer_runs_without_inline_script(make_api: MakeApi) -> None:
    page = await make_api(WebSettings()).get("/api/docs")

    assert page.status_code == 200
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all('src="' in attributes and not body.strip()
                           for attributes, body in scripts)
    assert 'src="/static/api-docs.js"' in page.text
    assert (await make_api(WebSettings()).get("/static/api-docs.js")).status_code == 200


# --- failed sign-ins --------------------------------------------------------------------


async def test_repeated_failed_sign_ins_are_slowed_down_per_address() -> None:
    app = create_app(dsn="postgresql://127.0.0.1:1/unused", settings=WebSettings(token=TOKEN))
    guesser, other = (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                          base_url="http://127.0.0.1")
        for address in ("192.0.2.1", "192.0.2.2"))
    async with guesser, other:
        failures = [(await guesser.post("/login", data={"token": f"guess-{n}"})).status_code
                    for n in range(5)]
        throttled = await guesser.post("/login", data={"token": "guess-6"})
        right_but_throttled = await guesser.post("/login", data={"token": TOKEN})
        elsewhere = await other.post("/login", data={"token": TOKEN})

    assert failures == [401] * 5
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert right_but_throttled.status_code == 429
    assert elsewhere.status_code == 303


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {"token": ""}, {"token": "a"}, {"token": "x" * 15}, {"basic_auth": ":"},
    {"basic_auth": "ops:"}, {"basic_auth": ":password"}, {"basic_auth": "no-colon"},
    {"frame_ancestors": "'none'; script-src *"}, {"frame_ancestors": "a\nb"},
    {"max_body_bytes": 0}, {"session_seconds": 0},
])
def test_weak_or_malformed_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        WebSettings(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [
    ["--token", "short"], ["--basic-auth", ":"], ["--basic-auth", "ops:"],
])
def test_the_dashboard_command_refuses_weak_credentials(options: list[str]) -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0", *options,
                                      "--dsn", "postgresql://127.0.0.1:1/unused"])
    assert result.exit_code == 2
    assert "error:" in result.output


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.7", False),
    ("127.attacker.example", False), ("127.0.0.1.nip.invalid", False),
])
def test_only_addresses_that_resolve_to_loopback_count_as_this_machine(
    host: str, loopback: bool,
) -> None:
    assert is_loopback(host) is loopback


def test_the_dashboard_refuses_a_name_that_only_looks_like_loopback() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--host", "127.attacker.example",
                                      "--dsn", "postgresql://127.0.0.1:1/unused"])
    assert result.exit_code == 2
    assert "refusing to serve" in result.output


# --- what every answer carries -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/jobs", "/login", "/api/queues", "/api/docs",
                                  "/static/app.css", "/metrics", "/no-such-page"])
async def test_every_answer_forbids_framing_and_sniffing_and_inline_code(
    make_api: MakeApi, path: str,
) -> None:
    answer = await make_api(WebSettings()).get(path)

    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"


async def test_framing_can_be_allowed_for_an_admin_that_embeds_the_dashboard(
    make_api: MakeApi,
) -> None:
    settings = WebSettings(frame_ancestors="'self' https://admin.example.com")

    answer = await make_api(settings).get("/")

    policy = answer.headers["content-security-policy"]
    assert policy.endswith("frame-ancestors 'self' https://admin.example.com")
    assert "x-frame-options" not in answer.headers


# --- request bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/api/jobs"])
async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    make_api: MakeApi, acv: AsyncConveyor, path: str,
) -> None:
    api = make_api(WebSettings(token=TOKEN, max_body_bytes=4096))
    body = b'{"queue": "mail", "data": "' + b"x" * 8000 + b'"}'

    declared = await api.post(path, content=body, headers={
        "Authorization": f"Bearer {TOKEN}", "content-type": "application/json"})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 1000

    streamed = await api.post(path, content=chunks(), headers={
        "Authorization": f"Bearer {TOKEN}", "content-type": "application/json"})

    assert declared.status_code == 413 and "4,096 bytes" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert not (await acv.find_jobs())


async def test_a_body_within_the_limit_is_taken(make_api: MakeApi) -> None:
    api = make_api(WebSettings(max_body_bytes=4096))

    answer = await api.post("/api/jobs", json={"queue": "mail", "data": "x" * 3000})

    assert answer.status_code == 201
