"""The dashboard as the admin's index (/admin/), and / sending people there (or to the login).

Thin: the figures come from backoffice/dashboard.py; the charts' data is embedded in the page
as JSON (integers of cents, percentages as strings), drawn by the bundled Chart.js.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from tuktuk.backoffice import roles
from tuktuk.backoffice.dashboard import dashboard_build
from tuktuk.backoffice.errors import admin_error
from tuktuk.core.dates import day_parse
from tuktuk.core.errors import OperatorError


def root_redirect(request: HttpRequest) -> HttpResponse:
    """/ goes to the dashboard; the admin sends a signed-out visitor to its login."""
    return HttpResponseRedirect(reverse("admin:index"))


def dashboard_index(request: HttpRequest) -> HttpResponse:
    try:
        day = day_parse(request.GET.get("day") or None, name="day")
    except OperatorError as exc:
        admin_error(request, exc)
        day = None
    dashboard = dashboard_build(day=day)
    context = {
        "dashboard": dashboard,
        "figures": {figure.key: figure for figure in dashboard.figures},
        "charts": dashboard.charts.as_dict() if dashboard.charts else {},
        "can_fix": request.user.has_perm(roles.FIX_BALANCE),
        "title": f"Dashboard: business day {dashboard.day}",
    }
    response = admin.site.index(request, extra_context=context)
    if isinstance(response, TemplateResponse):
        response.template_name = "backoffice/dashboard.html"
    return response
