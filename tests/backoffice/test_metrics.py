"""GET /metrics: Prometheus text (parsed back with prometheus_client's own parser), the figures
equal to the database, and only for `Authorization: Bearer <TUKTUK_METRICS_TOKEN>`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clock import nairobi
from tests.support.factories import make_fleet, pay
from tuktuk.backoffice.metrics import PAYOUT_OUTSTANDING, SMS_OUTSTANDING
from tuktuk.backoffice.sms.models import SmsKind, SmsMessage, SmsState
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.payouts.models import Payout, PayoutState

pytestmark = pytest.mark.django_db

NOW = nairobi(2026, 3, 10, 10)
TOKEN = "metrics-token-for-tests"


@pytest.fixture
def pinned() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client, token: str | None = TOKEN, **headers: str) -> tuple[int, str]:
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    answer = client.get("/metrics", headers=headers)
    return answer.status_code, answer.content.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(name, sorted labels): value} of every sample, as Prometheus would read them."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def confirmation(*, state: str, received_at: dt.datetime, latency: float | None) -> Callback:
    return Callback.objects.create(
        kind=CallbackKind.C2B_CONFIRMATION,
        state=state,
        received_at=received_at,
        processed_at=None if latency is None else received_at + dt.timedelta(seconds=latency),
    )


def known_inbox_and_outboxes() -> None:
    """Posted in the last 5 minutes: 0.3 s, 0.3 s, 0.8 s, 4 s; posted 6 minutes ago (out of
    the window): 100 s. Waiting: received 90 s ago, failed 10 minutes ago. Payouts and SMS in
    known states."""
    for seconds_ago, latency in [(10, 0.3), (60, 0.3), (120, 0.8), (290, 4.0)]:
        posted = NOW - dt.timedelta(seconds=seconds_ago)
        confirmation(
            state=CallbackState.PROCESSED,
            received_at=posted - dt.timedelta(seconds=latency),
            latency=latency,
        )
    confirmation(
        state=CallbackState.PROCESSED, received_at=NOW - dt.timedelta(minutes=8), latency=100
    )
    confirmation(
        state=CallbackState.RECEIVED, received_at=NOW - dt.timedelta(seconds=90), latency=None
    )
    confirmation(
        state=CallbackState.FAILED, received_at=NOW - dt.timedelta(minutes=10), latency=1.0
    )
    make_fleet(3)
    for n in range(5):
        pay(f"METRIC{n:04d}", 300, f"TUK00{n % 3 + 1}")
    payouts = list(Payout.objects.order_by("pk").values_list("pk", flat=True))
    assert len(payouts) == 5  # held: instant payouts are off
    for pk, state in zip(
        payouts, [PayoutState.PENDING, PayoutState.UNKNOWN, PayoutState.COMPLETED], strict=False
    ):
        Payout.objects.filter(pk=pk).update(state=state)
    SmsMessage.objects.all().delete()
    for n, state in enumerate([SmsState.QUEUED, SmsState.QUEUED, SmsState.DELIVERED]):
        SmsMessage.objects.create(
            kind=SmsKind.DIRECT,
            phone="254700000001",
            body="hello",
            key=f"test:{n}",
            state=state,
            expires_at=NOW + dt.timedelta(hours=1),
        )


def test_the_figures_equal_the_database(client: Client, token: str, pinned: None) -> None:
    known_inbox_and_outboxes()
    status, text = scrape(client)
    assert status == 200
    got = samples(text)
    assert got[("tuktuk_credit_latency_window_seconds", ())] == 300
    assert got[("tuktuk_credited_confirmations", ())] == 4
    # p50: the 2nd of 4 (0.3 s, bucket 0.5 s); p99: the 4th (4 s, bucket 5 s, capped at 4).
    assert got[("tuktuk_credit_latency_seconds", (("quantile", "0.5"),))] == 0.5
    assert got[("tuktuk_credit_latency_seconds", (("quantile", "0.99"),))] == 4.0
    assert got[("tuktuk_credit_latency_seconds", (("quantile", "1"),))] == 4.0
    assert got[("tuktuk_unposted_confirmations", (("state", "received"),))] == 1
    assert got[("tuktuk_unposted_confirmations", (("state", "failed"),))] == 1
    assert got[("tuktuk_oldest_unposted_confirmation_age_seconds", ())] == 600
    payouts = {state: Payout.objects.filter(state=state).count() for state in PAYOUT_OUTSTANDING}
    assert payouts == {"held": 2, "pending": 1, "sending": 0, "submitted": 0, "unknown": 1}
    for state, n in payouts.items():
        assert got[("tuktuk_payout_outbox", (("state", state),))] == n
    for state in SMS_OUTSTANDING:
        expected = SmsMessage.objects.filter(state=state).count()
        assert got[("tuktuk_sms_outbox", (("state", state),))] == expected
    assert got[("tuktuk_sms_outbox", (("state", "queued"),))] == 2


def test_an_empty_window_has_no_latency_samples(client: Client, token: str, pinned: None) -> None:
    status, text = scrape(client)
    assert status == 200
    got = samples(text)
    assert not [key for key in got if key[0] == "tuktuk_credit_latency_seconds"]
    assert "# TYPE tuktuk_credit_latency_seconds gauge" in text  # described all the same
    assert got[("tuktuk_credited_confirmations", ())] == 0
    assert got[("tuktuk_oldest_unposted_confirmation_age_seconds", ())] == 0
    assert got[("tuktuk_unposted_confirmations", (("state", "received"),))] == 0


def test_the_answer_is_prometheus_text_uncached_and_sets_no_cookie(
    client: Client, token: str
) -> None:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    assert "no-cache" in answer["Cache-Control"]
    assert not answer.cookies
    head = client.head("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert head.status_code == 200


def test_without_a_configured_token_metrics_do_not_exist(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert scrape(client, token=None)[0] == 404
    assert scrape(client, token="")[0] == 404
    assert scrape(client, token="anything")[0] == 404


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        f"Token {TOKEN}",
    ],
)
def test_a_wrong_or_missing_token_gets_404(
    client: Client, token: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert client.get("/metrics", headers=headers).status_code == 404


def test_the_scheme_is_case_insensitive_and_only_reads_are_allowed(
    client: Client, token: str
) -> None:
    assert scrape(client, Authorization=f"bearer {TOKEN}")[0] == 200
    assert scrape(client, Authorization=f"BEARER {TOKEN}")[0] == 200
    post = client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert post.status_code == 405
    # ...and a POST without the token does not learn the endpoint exists.
    assert client.post("/metrics").status_code == 404
