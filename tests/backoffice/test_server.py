"""The web server and the WSGI application it runs (issue 15).

The webhooks (M-Pesa callbacks, SMS delivery reports, /health) take a short middleware lane:
no sessions, auth, messages or CSRF; their answers are the ones the full chain gives. Every
other path keeps the whole MIDDLEWARE. Granian serves the same application as gunicorn.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve

from tests.support.c2b import confirmation_payload
from tests.support.db_sessions import session_id, session_kill
from tests.support.factories import make_driver
from tests.support.live_server import CALLBACK_TOKEN, live_server_process
from tuktuk.backoffice.server import (
    WEB_SERVERS,
    default_engines,
    default_web_workers,
    granian_command,
    web_command,
)
from tuktuk.backoffice.webhook_wsgi import (
    WebhookDispatcher,
    WebhookWSGIHandler,
    webhook_middleware,
    webhook_url_names,
)
from tuktuk.ledger.models import Transaction
from tuktuk.mpesa.models import Callback, CallbackState
from tuktuk.wsgi import application

assert isinstance(application, WebhookDispatcher)
APP: WebhookDispatcher = application


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@pytest.fixture
def wsgi_in_this_process() -> Iterator[None]:
    """Requests served in the test's own database transaction: like Django's test Client,
    keep close_old_connections from closing the test's connection between requests."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    content_type: str = "application/json",
    **environ: str,
) -> Answer:
    """One request through a WSGI application, as a server makes it (the response closed)."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "HTTP_HOST": "testserver",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **environ,
    }
    setup_testing_defaults(env)
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.update(status=int(status.split()[0]), headers=headers)

    response = app(env, start_response)
    try:
        content = b"".join(response)
    finally:
        if hasattr(response, "close"):  # WSGI: a server calls it when the iterable has one
            response.close()  # Django's responses send request_finished then
    return Answer(started["status"], started["headers"], content)


def token_path(name: str, token: str | None = None) -> str:
    token = token or settings.CALLBACK_TOKEN
    return {
        "c2b-validation": f"/c2b/{token}/validation",
        "c2b-confirmation": f"/c2b/{token}/confirmation",
        "b2c-result": f"/b2c/{token}/result",
        "b2c-timeout": f"/b2c/{token}/timeout",
        "b2c-status-result": f"/b2c/{token}/status-result",
        "b2c-status-timeout": f"/b2c/{token}/status-timeout",
        "sms-delivery-report": f"/sms/{token}/delivery-report",
    }[name]


# -- which path takes which lane ------------------------------------------------------------


def test_the_webhook_lane_has_no_session_auth_messages_or_csrf_middleware() -> None:
    assert webhook_middleware() == [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]
    assert set(webhook_middleware()) < set(settings.MIDDLEWARE)
    assert type(APP.webhooks) is WebhookWSGIHandler and type(APP.full) is WSGIHandler
    assert APP.webhooks._view_middleware == []  # CsrfViewMiddleware's process_view, gone
    assert len(APP.full._view_middleware) >= 1


def test_every_webhook_url_takes_the_lane_and_is_csrf_exempt() -> None:
    assert sorted(webhook_url_names()) == sorted(
        [
            "c2b-validation",
            "c2b-confirmation",
            "b2c-result",
            "b2c-timeout",
            "b2c-status-result",
            "b2c-status-timeout",
            "sms-delivery-report",
        ]
    )
    for name in webhook_url_names():
        path = token_path(name)
        # The confirmations: their own lane first, which hands the rest to the webhook lane.
        lane = APP.confirmations if name == "c2b-confirmation" else APP.webhooks
        assert APP.handler_for(path) is lane, path
        assert APP.handler_for(token_path(name, "any-other-token")) is lane, path
        # The lane has no CsrfViewMiddleware: only views that are exempt anyway may be in it.
        assert getattr(resolve(path).func, "csrf_exempt", False), path
    assert APP.handler_for("/health") is APP.webhooks


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/admin/",
        "/admin/login/",
        "/api/v1/drivers",
        "/api/method/tuktuk_management.api.tuktuk.get_driver_balance",
        "/portal/",
        "/static/admin/css/base.css",
        "/health/",
        f"/c2b/{CALLBACK_TOKEN}/confirmation/",  # a trailing slash: not a callback URL
        f"/c2b/{CALLBACK_TOKEN}/extra/confirmation",
        "/c2b//confirmation",
        f"/sms/{CALLBACK_TOKEN}/outbox",
    ],
)
def test_every_other_path_keeps_the_whole_middleware(path: str) -> None:
    assert APP.handler_for(path) is APP.full


# -- in this process: the same answers, no session, CSRF kept elsewhere ---------------------


@pytest.mark.django_db
def test_webhooks_answer_as_through_the_whole_middleware(wsgi_in_this_process: None) -> None:
    """Each webhook request, through the lane and through the full chain: the same status,
    body and headers, but for X-Frame-Options (a header for pages in a browser frame)."""
    make_driver(1)
    confirmation = confirmation_payload(trans_id="LANE1", amount="100", account="TUK001")
    too_big = b"{" + b" " * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b"}"
    report = urlencode({"id": "ATXid_1", "status": "Success"}).encode()
    form = "application/x-www-form-urlencoded"
    cases: list[tuple[str, str, bytes, dict[str, str], int]] = [
        ("POST", token_path("c2b-confirmation"), json.dumps(confirmation).encode(), {}, 200),
        ("POST", token_path("c2b-validation"), json.dumps(confirmation).encode(), {}, 200),
        ("POST", token_path("c2b-confirmation"), b"junk", {}, 400),
        ("POST", token_path("c2b-confirmation"), too_big, {}, 413),
        ("GET", token_path("c2b-confirmation"), b"", {}, 405),
        ("POST", token_path("c2b-confirmation", "wrong-token"), b"{}", {}, 404),
        ("POST", token_path("b2c-result"), b"{}", {}, 400),
        ("POST", token_path("sms-delivery-report"), report, {"CONTENT_TYPE": form}, 200),
        ("GET", token_path("sms-delivery-report"), b"", {}, 405),
        ("GET", "/health", b"", {}, 200),
        # CommonMiddleware stays: a host outside ALLOWED_HOSTS is still refused.
        ("POST", token_path("c2b-confirmation"), b"{}", {"HTTP_HOST": "evil.example"}, 400),
    ]
    for method, path, body, environ, status in cases:
        assert APP.handler_for(path) in (APP.webhooks, APP.confirmations)
        lane = call(APP, method, path, body, **environ)
        full = call(APP.full, method, path, body, **environ)
        case = f"{method} {path[:60]} {environ}"
        assert lane.status == status, case
        assert (lane.status, lane.body) == (full.status, full.body), case
        full_headers = [h for h in full.headers if h[0].lower() != "x-frame-options"]
        assert sorted(lane.headers) == sorted(full_headers), case
        assert not lane.header("Set-Cookie"), case
    assert Transaction.objects.filter(trans_id="LANE1").count() == 1  # the second: a duplicate


@pytest.mark.django_db
def test_the_confirmation_lane_answers_as_django_and_hands_on_the_rest(
    wsgi_in_this_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the posting engine, a confirmation the view would accept is stored and answered by
    the confirmation lane itself, with the bytes and headers Django's lanes answer; every
    other request goes on to Django, whose answer (and what it stores) is as before."""
    monkeypatch.setattr(settings, "POSTING_MODE", "engine")
    handed_on: list[str] = []
    fallback = APP.confirmations.fallback

    def webhook_lane(environ: dict[str, Any], start_response: Any) -> Any:
        handed_on.append(environ["PATH_INFO"])
        return fallback(environ, start_response)

    monkeypatch.setattr(APP.confirmations, "fallback", webhook_lane)
    path = token_path("c2b-confirmation")
    good = json.dumps(confirmation_payload(trans_id="FAST1", amount="100", account="TUK001"))
    form = urlencode({"TransID": "FAST2", "TransAmount": "100", "BillRefNumber": "TUK001"})
    too_big = b"{" + b" " * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b"}"
    # (body, environ, status, answered by the lane itself, callbacks stored)
    cases: list[tuple[bytes, dict[str, str], int, bool, int]] = [
        (good.encode(), {}, 200, True, 1),
        (form.encode(), {"CONTENT_TYPE": "application/x-www-form-urlencoded"}, 200, True, 1),
        (b"junk", {}, 400, False, 1),  # stored, refused with its reason
        (b'{"TransID": "A", "TransID": "B"}', {}, 400, False, 1),
        (b"", {}, 400, False, 1),
        (too_big, {}, 413, False, 1),
        (good.encode(), {"REQUEST_METHOD": "GET"}, 405, False, 0),
        (good.encode(), {"PATH_INFO": token_path("c2b-confirmation", "wrong")}, 404, False, 0),
        (good.encode(), {"HTTP_HOST": "evil.example"}, 400, False, 0),
        # Django's own answer to a Content-Length that is no number (an HTTP server refuses
        # that header before the application sees it).
        (good.encode(), {"CONTENT_LENGTH": "12x"}, 503, False, 0),
    ]
    for body, environ, status, by_the_lane, stores in cases:
        environ = dict(environ)
        method = environ.pop("REQUEST_METHOD", "POST")
        where = environ.pop("PATH_INFO", path)
        case = f"{body[:30]!r} {method} {environ}"
        stored_before = Callback.objects.count()
        handed_on.clear()
        lane = call(APP, method, where, body, **environ)
        assert lane.status == status, case
        assert bool(handed_on) is not by_the_lane, case
        assert Callback.objects.count() - stored_before == stores, case
        full = call(APP.full, method, where, body, **environ)
        assert (lane.status, lane.body) == (full.status, full.body), case
        full_headers = [h for h in full.headers if h[0].lower() != "x-frame-options"]
        assert sorted(lane.headers) == sorted(full_headers), case
    assert Callback.objects.filter(body__contains="FAST1", state=CallbackState.RECEIVED).count()
    rejected = Callback.objects.filter(state=CallbackState.REJECTED, body="junk").first()
    assert rejected is not None and "not JSON" in rejected.error
    # A caller outside TUKTUK_CALLBACK_ALLOWED_IPS: Django's lane stores it refused.
    monkeypatch.setattr(settings, "CALLBACK_ALLOWED_IPS", ["10.9.8.0/24"])
    handed_on.clear()
    refused = call(APP, "POST", path, good.encode())
    assert refused.status == 400 and handed_on == [path]
    # Inline posting (the request credits before it answers): always Django's lane.
    monkeypatch.setattr(settings, "CALLBACK_ALLOWED_IPS", [])
    monkeypatch.setattr(settings, "POSTING_MODE", "inline")
    handed_on.clear()
    assert call(APP, "POST", path, good.encode()).status == 200 and handed_on == [path]


@pytest.mark.django_db
def test_a_webhook_sets_no_cookie_and_never_touches_the_session_table(
    wsgi_in_this_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = make_driver(1)
    # A caller that carries a signed-in operator's cookies (the worst case: a browser).
    operator = User.objects.create_superuser("ops", password="pw-for-tests")
    session = SessionStore()
    session["_auth_user_id"] = str(operator.pk)
    session.create()
    cookies = f"sessionid={session.session_key}; csrftoken=x" + "y" * 31
    seen: list[Any] = []
    chain = APP.webhooks._middleware_chain

    def watching(request: Any) -> Any:
        seen.append(request)
        return chain(request)

    monkeypatch.setattr(APP.webhooks, "_middleware_chain", watching)
    body = json.dumps(confirmation_payload(trans_id="NOSESS1", amount="100", account="TUK001"))
    with CaptureQueriesContext(connection) as queries:
        answer = call(
            APP, "POST", token_path("c2b-confirmation"), body.encode(), HTTP_COOKIE=cookies
        )
        health = call(APP, "GET", "/health", HTTP_COOKIE=cookies)
    assert answer.status == 200 and json.loads(answer.body)["ResultCode"] == 0
    assert health.status == 200
    for response in (answer, health):
        assert not response.header("Set-Cookie")
        assert not any("Cookie" in vary for vary in response.header("Vary"))
    sql = " ".join(q["sql"].lower() for q in queries.captured_queries)
    for table in ("django_session", "auth_user", "axes_"):
        assert table not in sql
    assert Transaction.objects.get(trans_id="NOSESS1").driver == driver
    assert len(seen) == 2
    for request in seen:
        assert not hasattr(request, "session")
        assert not hasattr(request, "user")
        assert not hasattr(request, "_messages")
        assert "CSRF_COOKIE" not in request.META


@pytest.mark.django_db
def test_the_admin_keeps_csrf_sessions_and_auth(wsgi_in_this_process: None) -> None:
    User.objects.create_superuser("ops", password="pw-for-tests")
    login = call(APP, "GET", "/admin/login/")
    assert login.status == 200
    assert any(c.strip().startswith("csrftoken=") for c in login.header("Set-Cookie"))
    form = urlencode({"username": "ops", "password": "pw-for-tests"}).encode()
    refused = call(
        APP, "POST", "/admin/login/", form, content_type="application/x-www-form-urlencoded"
    )
    assert refused.status == 403  # no CSRF token: CsrfViewMiddleware refuses it
    assert b"CSRF" in refused.body
    signed_out = call(APP, "GET", "/admin/")
    assert signed_out.status == 302 and "/admin/login/" in signed_out.header("Location")[0]


@pytest.mark.django_db
def test_both_lanes_send_request_started_and_finished(wsgi_in_this_process: None) -> None:
    """Django's database connection handling (close_old_connections) hangs on these."""
    started: list[type] = []
    finished: list[type] = []

    def on_started(sender: type, **kwargs: Any) -> None:
        started.append(sender)

    def on_finished(sender: type, **kwargs: Any) -> None:
        finished.append(sender)

    request_started.connect(on_started)
    request_finished.connect(on_finished)
    try:
        call(APP, "GET", "/health")
        call(APP, "GET", "/admin/login/")
    finally:
        request_started.disconnect(on_started)
        request_finished.disconnect(on_finished)
    assert started == [WebhookWSGIHandler, WSGIHandler]
    assert finished == [WebhookWSGIHandler, WSGIHandler]


def test_the_health_check_is_skipped_only_where_the_store_comes_first() -> None:
    lane = APP.webhooks
    assert isinstance(lane, WebhookWSGIHandler)
    stored_first = {
        name for name in webhook_url_names() if lane.stored_first.match(token_path(name))
    }
    assert stored_first == {
        "c2b-confirmation",
        "b2c-result",
        "b2c-timeout",
        "b2c-status-result",
        "b2c-status-timeout",
    }
    # The validation reads the fleet before it stores; /health reads the database.
    assert not lane.stored_first.match("/health")
    assert lane.stored_first.match(token_path("c2b-confirmation", "any-token"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("posting", ["inline", "engine"])  # the webhook lane; the confirmations'
def test_a_dead_connection_is_replaced_by_the_store_without_a_health_check(
    vendor: str,
    posting: str,
    connection_closed_after: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lane skips CONN_HEALTH_CHECKS' "SELECT 1" for the stored-first callbacks: a
    persistent connection the database dropped is found by the store itself, which reconnects
    and stores, and the confirmation is answered 200, not 503. Both halves are needed: with
    the health check still done, the store never meets the dead connection (no warning); with
    no retry, the request fails."""
    if vendor == "sqlite":
        pytest.skip("SQLite keeps no persistent connection (CONN_MAX_AGE 0) and has no server")
    make_driver(1)
    monkeypatch.setattr(settings, "POSTING_MODE", posting)  # read per request
    body = json.dumps(confirmation_payload(trans_id="DEAD1", amount="100", account="TUK001"))
    assert call(APP, "POST", token_path("c2b-confirmation"), body.encode()).status == 200
    assert connection.connection is not None  # kept between requests (CONN_MAX_AGE)
    session_kill(killed := session_id())
    body = json.dumps(confirmation_payload(trans_id="DEAD2", amount="100", account="TUK001"))
    with caplog.at_level("WARNING"):
        answer = call(APP, "POST", token_path("c2b-confirmation"), body.encode())
    assert answer.status == 200 and json.loads(answer.body)["ResultCode"] == 0
    assert "a persistent database connection was dead" in caplog.text
    assert "could not store" not in caplog.text  # the confirmation lane stored it itself
    assert session_id() != killed
    stored = Callback.objects.filter(body__contains="DEAD2")
    assert stored.count() == 1
    if posting == "inline":
        assert stored.get().state == CallbackState.PROCESSED
        assert Transaction.objects.filter(trans_id="DEAD2").count() == 1
    else:
        assert stored.get().state == CallbackState.RECEIVED  # for the posting engine


# -- the servers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cpus", "workers"), [(None, 1), (1, 1), (2, 1), (3, 1), (8, 4)])
def test_serve_runs_a_web_worker_per_two_cpus(
    cpus: int | None, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert default_web_workers() == workers


@pytest.mark.parametrize(("cpus", "engines"), [(None, 1), (1, 1), (2, 1), (3, 1), (8, 4)])
def test_serve_runs_a_posting_engine_per_two_cpus_but_one_on_sqlite(
    cpus: int | None, engines: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert default_engines("django.db.backends.postgresql") == engines
    assert default_engines("django.db.backends.mysql") == engines
    assert default_engines("django.db.backends.sqlite3") == 1


def test_web_command_chooses_the_server() -> None:
    assert WEB_SERVERS == ("gunicorn", "granian")
    common: dict[str, Any] = {"host": "127.0.0.1", "port": 8000, "workers": 2, "threads": 8}
    gunicorn = web_command(server="gunicorn", **common)
    assert gunicorn[1:4] == ["-m", "gunicorn", "tuktuk.wsgi:application"]
    granian = web_command(server="granian", **common)
    assert granian == granian_command(**common)
    assert granian[1:4] == ["-m", "granian", "tuktuk.wsgi:application"]
    assert granian[granian.index("--interface") + 1] == "wsgi"
    # One database connection per request thread: the threads are bounded as gunicorn's are.
    assert granian[granian.index("--blocking-threads") + 1] == "8"
    assert "--access-log" in granian
    assert "--no-access-log" in web_command(server="granian", access_log=False, **common)
    with pytest.raises(ValueError, match="unknown web server"):
        web_command(server="uwsgi", **common)


def server_connections() -> int:
    """The connections to the test database (PostgreSQL, MariaDB) but this process's."""
    queries = {
        "postgresql": "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        "mysql": "SELECT count(*) FROM information_schema.processlist"
        " WHERE db = database() AND id <> connection_id()",
    }
    with connection.cursor() as cursor:
        cursor.execute(queries[connection.vendor])
        return int(cursor.fetchone()[0])


@pytest.mark.live_server_process
@pytest.mark.django_db(transaction=True)
def test_granian_serves_a_confirmation_and_health(tmp_path: Path) -> None:
    driver = make_driver(1)
    log = tmp_path / "granian.log"
    payload = confirmation_payload(trans_id="GRAN1", amount="100", account="TUK001")
    # Other servers of the session (the shared live server keeps persistent connections) may
    # be connected to the test database: granian's must come and go on top of those.
    before = server_connections() if connection.vendor != "sqlite" else 0
    with (
        live_server_process(
            server="granian",
            workers=2,
            threads=4,
            access_log=True,
            log_file=log,
            # No persistent connections: each request's must be closed by request_finished,
            # which Django sends when the server closes the response.
            extra_env={"TUKTUK_DB_CONN_MAX_AGE": "0"},
        ) as server,
        httpx.Client(timeout=30) as http,
    ):
        health = http.get(f"{server.url}/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": connection.vendor}
        answer = http.post(server.c2b_url("confirmation"), json=payload)
        assert answer.status_code == 200
        assert answer.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
        assert not answer.headers.get("set-cookie")
        # A page of the back office, through the whole middleware: its CSRF cookie is set.
        assert "csrftoken" in http.get(f"{server.url}/admin/login/").headers["set-cookie"]
        wrong = http.post(f"{server.url}/c2b/wrong-token/confirmation", json=payload)
        assert wrong.status_code == 404
        if connection.vendor != "sqlite":
            deadline = time.monotonic() + 10
            while server_connections() > before and time.monotonic() < deadline:
                time.sleep(0.1)  # the response is closed just after its last byte is sent
            assert server_connections() == before
    assert Callback.objects.get(trans_id="GRAN1").state == CallbackState.PROCESSED
    assert Transaction.objects.get(trans_id="GRAN1").driver == driver
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("50.00")
    text = log.read_text()
    assert "/c2b/***/confirmation" in text  # granian's access log has the request...
    assert CALLBACK_TOKEN not in text  # ...but never the token
    assert "wrong-token" not in text


@pytest.mark.live_server_process
@pytest.mark.django_db(transaction=True)
def test_grouped_stores_acknowledge_every_confirmation_once_under_concurrent_senders() -> None:
    """TUKTUK_STORE_GROUPING through granian, as `tuktuk serve --threads 16` would run it: 16
    senders at once, every confirmation answered 200 and stored exactly once; on PostgreSQL
    several rows share a transaction (their xmin), which is the grouping at work."""
    senders, each = 16, 4
    with live_server_process(
        server="granian",
        workers=1,
        threads=16,
        # Stored and acknowledged by the confirmation lane; no engine runs, so the rows stay
        # as the stores wrote them.
        extra_env={"TUKTUK_POSTING": "engine", "TUKTUK_STORE_GROUPING": "true"},
    ) as server:

        def send(sender: int) -> list[int]:
            with httpx.Client(timeout=30) as http:
                return [
                    http.post(
                        server.c2b_url("confirmation"),
                        json=confirmation_payload(
                            trans_id=f"GRP{sender:02d}{n}", amount="100", account="TUK001"
                        ),
                    ).status_code
                    for n in range(each)
                ]

        with ThreadPoolExecutor(max_workers=senders) as pool:
            statuses = [s for answers in pool.map(send, range(senders)) for s in answers]
    assert statuses == [200] * (senders * each)
    stored = Callback.objects.filter(kind="c2b_confirmation")
    bodies = [json.loads(body)["TransID"] for body in stored.values_list("body", flat=True)]
    assert sorted(bodies) == sorted(f"GRP{s:02d}{n}" for s in range(senders) for n in range(each))
    assert set(stored.values_list("state", flat=True)) == {CallbackState.RECEIVED}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(DISTINCT xmin::text) FROM mpesa_callback WHERE kind = %s",
                ["c2b_confirmation"],
            )
            transactions = cursor.fetchone()[0]
        assert transactions < senders * each
