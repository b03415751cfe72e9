"""HTTP responses shared by the admin and the JSON API."""

from __future__ import annotations

from django.http import HttpResponse

from tuktuk.backoffice.deposit_report import (
    DEPOSIT_REPORT_CSV_FILENAME,
    DepositReport,
    deposit_report_csv,
)
from tuktuk.ledger.statement import Statement
from tuktuk.ledger.statement_csv import statement_csv, statement_csv_filename


def statement_csv_response(statement: Statement) -> HttpResponse:
    response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{statement_csv_filename(statement)}"'
    return response


def deposit_report_csv_response(report: DepositReport) -> HttpResponse:
    response = HttpResponse(deposit_report_csv(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{DEPOSIT_REPORT_CSV_FILENAME}"'
    return response
