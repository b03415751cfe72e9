"""A driver sees their own data only: every URL of the project, found by enumeration (the
portal's pages, the JSON API, the legacy calls, the admin, the callbacks), is called by a
logged-in driver with the other driver's ids in every place an id can go; no answer shows
anything of the other driver. A new URL is tried the moment it exists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import NoReverseMatch, URLResolver, get_resolver, reverse

from tests.backoffice.portal.conftest import PortalDriver
from tuktuk.backoffice.portal.models import ProblemReport

pytestmark = pytest.mark.django_db(transaction=True)


def named_urls(
    resolver: URLResolver | None = None, namespace: str = ""
) -> Iterator[tuple[str, list[str]]]:
    """(name, its parameters) for every named URL, namespaces included."""
    resolver = resolver or get_resolver()
    for key in resolver.reverse_dict:
        if not isinstance(key, str):
            continue
        for possibilities, *_ in resolver.reverse_dict.getlist(key):
            for _, params in possibilities:
                yield f"{namespace}{key}", list(params)
    for name, (_, sub) in resolver.namespace_dict.items():
        yield from named_urls(sub, f"{namespace}{name}:")


def values_for(param: str, other: PortalDriver) -> list[Any]:
    """Every value of the other driver's that could fill `param`."""
    driver = other.driver
    by_name: dict[str, list[Any]] = {
        "trans_id": [*other.fares],
        "report_id": [other.report.pk],
        "driver_id": [driver.driver_id, driver.driver_id.lower()],
    }
    return by_name.get(
        param,
        [driver.driver_id, driver.pk, other.report.pk, *other.fares, driver.mpesa_number],
    )


def urls_with_the_others_ids(other: PortalDriver) -> list[str]:
    urls: set[str] = set()
    for name, params in named_urls():
        if not params:
            try:
                urls.add(reverse(name))
            except NoReverseMatch:
                pass
            continue
        for param in params:
            for value in values_for(param, other):
                kwargs = {p: value if p == param else values_for(p, other)[0] for p in params}
                try:
                    urls.add(reverse(name, kwargs=kwargs))
                except NoReverseMatch:
                    continue
    return sorted(urls)


def secrets_of(other: PortalDriver) -> list[str]:
    return [
        other.driver.name,
        other.driver.driver_id,
        other.driver.mpesa_number,
        other.report.note,
        *other.fares,
    ]


def test_every_url_with_the_other_drivers_ids_shows_nothing_of_theirs(
    two_drivers: tuple[PortalDriver, PortalDriver],
) -> None:
    mine, other = two_drivers
    client = Client()
    assert client.post("/portal/login", {"phone": mine.phone, "pin": mine.pin}).status_code == 302
    # The control: my own pages do show my own data, so the checks below can fail.
    home = client.get("/portal/").content.decode()
    assert mine.fares[0] in home and mine.driver.name in home
    assert mine.report.note in client.get(f"/portal/problems/{mine.report.pk}").content.decode()

    urls = urls_with_the_others_ids(other)
    portal = [url for url in urls if url.startswith("/portal/")]
    assert f"/portal/fares/{other.fares[0]}" in urls
    assert f"/portal/problems/{other.report.pk}" in urls
    assert any(url.startswith("/api/v1/drivers/DRV-112002") for url in urls)
    assert any(url.startswith("/admin/fleet/driver/") for url in urls)
    assert len(urls) > 50, urls

    secrets = secrets_of(other)
    for url in urls:
        if "logout" in url:
            continue  # would end the session the checks run in
        for method in ("get", "post"):
            response = getattr(client, method)(url, follow=False)
            body = response.content.decode("utf-8", errors="replace")
            assert response.status_code < 500, (method, url, response.status_code)
            # (An id the URL itself carries may be echoed, e.g. "no such method X".)
            leaked = [s for s in secrets if s in body and s not in url]
            assert not leaked, (method, url, response.status_code, leaked)
        if url.startswith(("/portal/fares/", "/portal/problems/")) and url[-1].isalnum():
            if url != "/portal/problems/new":
                assert client.get(url).status_code == 404, url
    assert portal  # the portal's own URLs were among them

    # Query strings and forms take ids too: the other driver's fare to report a problem on.
    for fare in other.fares:
        assert client.get(f"/portal/problems/new?fare={fare}").status_code == 404
        answer = client.post("/portal/problems/new", {"note": "mine?", "trans_id": fare})
        assert answer.status_code == 404
    assert not ProblemReport.objects.filter(trans_id__in=other.fares).exists()
    # The operators' JSON API does not take a driver's session for a token.
    for path in (
        "drivers",
        f"drivers/{other.driver.driver_id}",
        f"drivers/{other.driver.driver_id}/statement",
    ):
        assert client.get(f"/api/v1/{path}").status_code == 401
