"""GET /metrics: credit latency, the C2B backlog and the payout and SMS outboxes, in the
Prometheus text exposition format (prometheus_client: a collector of our own, read at each
scrape from the database, on a registry of its own).

Every figure comes from the database, not from counters kept in a process: the web server runs
several processes (and machines), and any one of them answers the scrape with the same numbers.
The latency figures cover the last METRICS_WINDOW (gauges: a windowed count is no Prometheus
counter, so no histogram); see mpesa.selectors.credit_latency for how they are computed.

Only with TUKTUK_METRICS_TOKEN set, and only for `Authorization: Bearer <token>`: anything else
gets the same 404 as an unknown URL (the endpoint does not admit it exists).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tuktuk.backoffice.sms.models import SmsMessage, SmsState
from tuktuk.mpesa.models import CallbackState
from tuktuk.mpesa.selectors import credit_latency
from tuktuk.payouts.models import Payout, PayoutState

METRICS_WINDOW = dt.timedelta(minutes=5)
# Outbox rows not settled yet: still to send, in flight, or waiting for an outcome or an
# operator (completed and failed payouts, delivered/failed/skipped/sent SMS are settled).
PAYOUT_OUTSTANDING = [
    PayoutState.HELD,
    PayoutState.PENDING,
    PayoutState.SENDING,
    PayoutState.SUBMITTED,
    PayoutState.UNKNOWN,
]
SMS_OUTSTANDING = [SmsState.QUEUED, SmsState.SENDING, SmsState.UNKNOWN]


def payout_outbox_backlog() -> dict[str, int]:
    """Outstanding payouts by state (every state of PAYOUT_OUTSTANDING, 0 included)."""
    counts = dict(
        Payout.objects.filter(state__in=PAYOUT_OUTSTANDING)
        .order_by()
        .values("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    return {str(state): counts.get(str(state), 0) for state in PAYOUT_OUTSTANDING}


def sms_outbox_backlog() -> dict[str, int]:
    """Outstanding driver SMS by state (every state of SMS_OUTSTANDING, 0 included)."""
    counts = dict(
        SmsMessage.objects.filter(state__in=SMS_OUTSTANDING)
        .order_by()
        .values("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    return {str(state): counts.get(str(state), 0) for state in SMS_OUTSTANDING}


class LedgerCollector(Collector):
    """The figures, read from the database when the registry collects (at each scrape)."""

    def __init__(self, *, now: dt.datetime, window: dt.timedelta = METRICS_WINDOW) -> None:
        self.now = now
        self.window = window

    def collect(self) -> Iterator[Metric]:
        latency = credit_latency(since=self.now - self.window, until=self.now, now=self.now)
        window = self.window.total_seconds()
        quantiles = GaugeMetricFamily(
            "tuktuk_credit_latency_seconds",
            f"C2B confirmations credited in the last {window:g} s: latency from the webhook's "
            "arrival to the balance including it. quantile 0.5 and 0.99 are the upper bound of "
            "their bucket, 1 is the exact maximum; absent when none was credited.",
            labels=["quantile"],
        )
        for quantile, seconds in (
            ("0.5", latency.p50_seconds),
            ("0.99", latency.p99_seconds),
            ("1", latency.max_seconds),
        ):
            if seconds is not None:
                quantiles.add_metric([quantile], seconds)
        yield quantiles
        yield GaugeMetricFamily(
            "tuktuk_credit_latency_window_seconds",
            "The window the credit latency and credited figures cover.",
            value=window,
        )
        yield GaugeMetricFamily(
            "tuktuk_credited_confirmations",
            f"C2B confirmations posted (processed, duplicate, unmatched) in the last {window:g} s.",
            value=latency.credited,
        )
        unposted = GaugeMetricFamily(
            "tuktuk_unposted_confirmations",
            "C2B confirmations stored and not yet posted: received (waiting for the posting "
            "engine) or failed (to be retried).",
            labels=["state"],
        )
        unposted.add_metric([CallbackState.RECEIVED], latency.backlog - latency.backlog_failed)
        unposted.add_metric([CallbackState.FAILED], latency.backlog_failed)
        yield unposted
        yield GaugeMetricFamily(
            "tuktuk_oldest_unposted_confirmation_age_seconds",
            "Age of the oldest C2B confirmation not yet posted (0 when none is waiting).",
            value=latency.oldest_unposted_age_seconds or 0.0,
        )
        payouts = GaugeMetricFamily(
            "tuktuk_payout_outbox",
            "Payouts (B2C) not settled yet, by state.",
            labels=["state"],
        )
        for state, n in payout_outbox_backlog().items():
            payouts.add_metric([state], n)
        yield payouts
        sms = GaugeMetricFamily(
            "tuktuk_sms_outbox",
            "Driver SMS not sent yet (queued, sending) or of unknown outcome, by state.",
            labels=["state"],
        )
        for state, n in sms_outbox_backlog().items():
            sms.add_metric([state], n)
        yield sms


def metrics_exposition(*, now: dt.datetime | None = None) -> bytes:
    """The metrics in the Prometheus text format, from a registry of their own (not the
    library's global one: no per-process figures that would differ between workers)."""
    registry = CollectorRegistry()
    registry.register(LedgerCollector(now=now or timezone.now()))
    return generate_latest(registry)


def _authorized(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    if not token:
        return False
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and constant_time_compare(credentials.strip(), token)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


# Included by tuktuk/urls.py.
urlpatterns = [path("metrics", metrics_view, name="metrics")]
