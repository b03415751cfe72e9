"""The stored reports in the admin: read-only, viewable, downloadable as CSV."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from tuktuk.backoffice.admin_utils import ReadOnlyAdmin
from tuktuk.backoffice.reports.models import StoredReport
from tuktuk.backoffice.reports.services import report_csv, report_filename, report_text


@admin.register(StoredReport)
class StoredReportAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "kind",
        "period_start",
        "period_end",
        "created_at",
        "emailed_at",
        "csv_link",
    ]
    list_filter = ["kind"]
    readonly_fields = [
        "kind",
        "period_start",
        "period_end",
        "created_at",
        "created_by",
        "emailed_at",
        "emailed_to",
        "summary",
    ]
    exclude = ["data"]

    @admin.display(description="CSV")
    def csv_link(self, report: StoredReport) -> str:
        url = reverse("admin:reports_storedreport_csv", args=[report.pk])
        return format_html('<a href="{}">Download CSV</a>', url)

    @admin.display(description="report")
    def summary(self, report: StoredReport) -> str:
        return format_html(
            '<pre class="ttl-report">{}</pre><p>{}</p>', report_text(report), self.csv_link(report)
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.csv_view)
        return [path("<int:pk>/csv/", view, name="reports_storedreport_csv"), *super().get_urls()]

    def csv_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = get_object_or_404(StoredReport, pk=pk)
        response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{report_filename(report)}"'
        return response

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Reports are figures: every back-office role reads them (roles grant view_* of our
        # apps; this app came later than the roles' migration).
        return bool(request.user.is_active and request.user.is_staff)
