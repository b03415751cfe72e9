"""The JSON API (/api/v1/): thin endpoints over the services (reconciliation, deposits, driver
exits, refunds, who drives today) and the selectors.

Money leaves as exact JSON numbers (2500.00), never strings or binary floats, so a client that
sums amounts gets the ledger's answer. Every endpoint but /health needs a bearer token
(`tuktuk create-api-token USERNAME`).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Path, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.renderers import BaseRenderer
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)

import tuktuk
from tuktuk.backoffice import roles, selectors
from tuktuk.backoffice.api_auth import BearerTokenAuth
from tuktuk.backoffice.api_docs import OfflineSwagger
from tuktuk.backoffice.deposit_report import deposit_report
from tuktuk.backoffice.duty_edges import (
    DAY_OFF_REASON_MAX_LENGTH,
    NAME_MAX_LENGTH,
    daily_target_arg,
    fare_percentage_arg,
    moment_arg,
    substitute_name_arg,
)
from tuktuk.backoffice.errors import error_shape
from tuktuk.backoffice.legacy import (
    fix_driver_balance,
    reconcile_all_drivers_balances,
    reconcile_driver_balance,
)
from tuktuk.backoffice.responses import deposit_report_csv_response, statement_csv_response
from tuktuk.core import jsonutil
from tuktuk.core.dates import DAY_MAX, DAY_MIN, DAY_PATTERN, day_parse
from tuktuk.core.errors import InvalidInput, OperatorError
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger.deposits import (
    deduction_decide,
    deposit_add,
    deposit_deduct,
    deposit_settings_set,
)
from tuktuk.ledger.duty import (
    day_off_set_by,
    roster_generate_by,
    substitute_assign_by,
    substitute_create,
    vehicle_assign_by,
    vehicle_status_change,
)
from tuktuk.ledger.exits import (
    driver_archive,
    driver_misses_reset,
    driver_restore,
    driver_terminate,
    refund_reject,
    refunds_approve,
)
from tuktuk.ledger.statement import driver_statement
from tuktuk.mpesa.selectors import duplicates_report

FIX_PERMISSION = "ledger.add_balancecorrection"


class ExactJSONRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> str:
        return jsonutil.dumps(data)


# Pydantic documents Decimal as a string (its own JSON mode writes strings); ours are numbers.
Money = Annotated[
    Decimal, WithJsonSchema({"type": "number", "description": "KSH, exact to the cent"})
]


def _iso_day(value: object) -> object:
    # Pydantic's lax date parsing would read "1733529600" as a Unix time and "20251207" as
    # something else again; a business day is only ever written YYYY-MM-DD (core.dates), and
    # lies within DAY_MIN .. DAY_MAX (the day arithmetic around 0001-01-01 or 9999-12-31
    # overflows).
    if value is None:
        return value
    if not isinstance(value, str | dt.date):
        raise ValueError(f"date must be a day written YYYY-MM-DD, not {value!r}")
    return day_parse(value)


BusinessDay = Annotated[
    dt.date,
    BeforeValidator(_iso_day),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "pattern": DAY_PATTERN,
            "description": f"YYYY-MM-DD, {DAY_MIN} .. {DAY_MAX}",
            "example": "2025-12-07",
        }
    ),
]

MAX_LIMIT = 1000
# Far beyond any real page, and far inside every database's LIMIT/OFFSET integer (bigint on
# PostgreSQL, signed 64-bit on SQLite): 9223372036854775808 used to reach the database.
MAX_OFFSET = 2_147_483_647

Limit = Annotated[int, Query(100, ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(0, ge=0, le=MAX_OFFSET)]

# Control characters have no place in an id, a search or a reason, and PostgreSQL refuses NUL
# in text outright (a 500 before this check). Free text may still hold tabs and line breaks.
# The patterns tell clients the rule; the validators enforce it with a readable message (and
# also refuse lone surrogates, which no database encoding accepts).
_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
_TEXT_ALLOWED_CONTROLS = frozenset("\t\n\r")


def _no_control_characters(allowed: frozenset[str]) -> Any:
    def check(value: str) -> str:
        for char in value:
            if char not in allowed and unicodedata.category(char) in ("Cc", "Cs"):
                raise ValueError(f"must not contain control characters (found {char!r})")
        return value

    return AfterValidator(check)


SEARCH_MAX_LENGTH = 100
REASON_MAX_LENGTH = 2000

SearchText = Annotated[
    str,
    Field(max_length=SEARCH_MAX_LENGTH),
    _no_control_characters(frozenset()),
    WithJsonSchema({"type": "string", "maxLength": SEARCH_MAX_LENGTH, "pattern": _LINE_PATTERN}),
]
ReasonText = Annotated[
    str,
    Field(max_length=REASON_MAX_LENGTH),
    _no_control_characters(_TEXT_ALLOWED_CONTROLS),
    WithJsonSchema({"type": "string", "maxLength": REASON_MAX_LENGTH, "pattern": _TEXT_PATTERN}),
]

_DRIVER_ID = re.compile(r"[Dd][Rr][Vv]-[0-9]{6}")  # not \d: it matches any script's digits


def _driver_id_format(value: str) -> str:
    if not _DRIVER_ID.fullmatch(value):
        raise ValueError(f"a driver id looks like DRV-112001, not {value[:40]!r}")
    return value


DriverId = Annotated[
    str,
    AfterValidator(_driver_id_format),
    WithJsonSchema(
        {"type": "string", "pattern": f"^{_DRIVER_ID.pattern}$", "example": "DRV-112001"}
    ),
]
DriverPath = Annotated[DriverId, Path(..., description="DRV-112001 (any case)")]

# Row ids (proposals, refunds): within a bigint, so no database sees an integer it cannot hold.
MAX_ID = 9_223_372_036_854_775_807
RowId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
ProposalPath = Annotated[int, Path(..., ge=1, le=MAX_ID, description="a deduction proposal's id")]
RefundPath = Annotated[int, Path(..., ge=1, le=MAX_ID, description="a refund's id")]

# Amounts come in as decimal strings ("150.00"), never binary floats; what is not a positive
# amount with at most two decimals is the service's 400 (core.money.operator_amount).
AMOUNT_MAX_LENGTH = 32
AmountText = Annotated[
    str,
    Field(max_length=AMOUNT_MAX_LENGTH),
    _no_control_characters(frozenset()),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": AMOUNT_MAX_LENGTH,
            "pattern": _LINE_PATTERN,
            "description": "KSH as a decimal string: positive, at most two decimals",
            "example": "150.00",
        }
    ),
]
DecisionState = Literal["proposed", "approved", "rejected", "all"]

# `from` is a Python keyword: the parameters are named date_from/date_to, spelt from/to in URLs.
FromDay = Annotated[BusinessDay | None, Query(None, alias="from")]
ToDay = Annotated[BusinessDay | None, Query(None, alias="to")]


# --- schemas -------------------------------------------------------------------------------


class ErrorOut(Schema):
    """Every refusal but a validation error: one line an operator can act on."""

    detail: str


class ValidationIssueOut(Schema):
    loc: list[str | int] = Field(description='where: ["query", "offset"], ["body", "reason"]')
    msg: str
    type: str | None


class ValidationErrorOut(Schema):
    """422: the request does not fit the schema; one item per offending parameter."""

    detail: list[ValidationIssueOut]


# What each endpoint can answer besides its 200, declared so the OpenAPI document is the whole
# contract (the schemathesis run in tests/backoffice/test_api_fuzz.py holds us to it): 400 bad
# input the services refuse (or a request Django refuses to read), 401 no valid token, 422 a
# parameter outside its schema; then per endpoint 403, 404, 413 (body too large).
def _errors(*extra: int) -> dict[Any, type[Schema]]:
    return {frozenset({400, 401, *extra}): ErrorOut, 422: ValidationErrorOut}


class HealthOut(Schema):
    status: str
    database: str
    version: str


class HealthErrorOut(Schema):
    status: str
    error: str
    version: str


class DriverOut(Schema):
    driver_id: str
    name: str
    mpesa_number: str
    vehicle_id: str | None
    mpesa_account: str | None
    current_balance: Money
    left_to_target: Money
    balance_day: dt.date | None
    consecutive_misses: int
    flagged_for_review: bool
    is_active: bool
    status: str = Field(description="active, inactive, terminated or archived")
    deposit_balance: Money


class DriverPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[DriverOut]


class EventOut(Schema):
    id: int
    created_at: dt.datetime
    level: str
    title: str
    message: str
    driver: str | None
    data: Any
    actor: str


class EventPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[EventOut]


class _ServiceResult(BaseModel):
    # The services' dicts pass through whole: keys not declared here are kept, not dropped.
    # A plain pydantic model: ninja's Schema reads its input as attributes and would lose them.
    model_config = ConfigDict(extra="allow")


class ProblemOut(_ServiceResult):
    type: str
    trans_id: str
    detail: str
    needs_fix: bool


class ReconciliationOut(_ServiceResult):
    driver_name: str = Field(description="the driver id (legacy key name)")
    driver: str = Field(description="the driver's name (legacy key name)")
    old_balance: Money
    calculated_balance: Money
    discrepancy: Money = Field(description="old − calculated: positive means extra")
    transactions_count: int
    from_datetime: str
    message: str
    business_day: str
    day_state: str
    opening_balance: Money
    entries_count: int
    problems: list[ProblemOut]


class FixBalanceOut(_ServiceResult):
    success: bool
    fixed: bool
    preview: bool
    message: str
    driver_name: str
    driver: str
    old_balance: Money
    new_balance: Money
    adjustment: Money
    transactions_count: int
    business_day: str
    problems: list[ProblemOut]
    entries_posted: int | None = Field(None, description="absent in a preview")


class ReconciliationRowOut(_ServiceResult):
    driver_name: str
    driver: str
    discrepancy: Money
    fixed: bool
    needs_review: bool
    business_day: str
    message: str
    problems: list[ProblemOut]


class ReconcileAllOut(_ServiceResult):
    success: bool
    total_drivers: int
    drivers_checked: int
    drivers_with_discrepancies: int
    total_discrepancy_amount: Money
    auto_fixed: bool
    drivers_fixed: int
    drivers_needing_review: int
    review_threshold: Money
    results: list[ReconciliationRowOut]


class _Body(Schema):
    # A misspelt "autofix" must be an error, not a silent preview the caller takes for a fix.
    model_config = ConfigDict(extra="forbid")


class FixBalanceIn(_Body):
    auto_fix: StrictBool = Field(False, description="false: preview only, nothing changes")
    reason: ReasonText = Field("", description="required with auto_fix (audit trail)")
    date: BusinessDay | None = Field(None, description="business day; default: the open day")


class ReconcileAllIn(_Body):
    auto_fix: StrictBool = False
    reason: ReasonText = "mass reconciliation (API)"
    date: BusinessDay | None = None


class StatementDayOut(Schema):
    business_day: dt.date
    state: str = Field(description="closed, open, pending (not closed yet) or not recorded")
    opening: Money = Field(description="the day's opening entries: the carry-over, or 0")
    contributions: Money
    corrections: Money
    from_deposit: Money = Field(description="deposit money moved to the target that day")
    closing: Money = Field(description="opening + contributions + corrections + from_deposit")
    entries_count: int
    transactions_count: int
    amount_received: Money
    adjustments: Money
    driver_share: Money
    target_contribution: Money
    recorded_closing_balance: Money | None = Field(description="closed days: as recorded")
    target: Money | None
    target_met: bool | None
    carried_over: Money | None
    cached_balance: Money | None = Field(description="the open day: the cached balance")


class StatementTransactionOut(Schema):
    business_day: dt.date
    trans_id: str
    received_at: dt.datetime
    transaction_type: str
    status: str
    amount: Money
    driver_share: Money
    target_contribution: Money
    payer_msisdn: str
    payer_name: str
    entry_amount: Money | None = Field(description="its contribution entry; null if none")
    entry_business_day: dt.date | None
    payout_amount: Money | None
    payout_state: str | None
    payout_receipt: str | None
    to_adjustments: Money = Field(description="a self-payment's part that settled adjustments")
    to_deposit: Money = Field(description="a self-payment's part that topped up the deposit")


class StatementEntryOut(Schema):
    id: int
    business_day: dt.date
    kind: str
    amount: Money
    trans_id: str | None
    note: str
    created_at: dt.datetime


class StatementTotalsOut(Schema):
    opening_balance: Money
    contributions: Money
    corrections: Money
    from_deposit: Money
    carry_over_adjustments: Money = Field(
        description="Σ (opening − previous day's closing) over the day closes in the range"
    )
    closing_balance: Money = Field(
        description="opening_balance + contributions + corrections + from_deposit"
        " + carry_over_adjustments"
    )
    transactions_count: int
    amount_received: Money = Field(description="Payments, Self Payments and Driver Repayments")
    adjustments: Money = Field(description="debts recorded (not money received)")
    driver_share: Money
    target_contribution: Money


class StatementOut(Schema):
    driver_id: str
    name: str
    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")
    open_day: dt.date
    opening_balance: Money
    closing_balance: Money
    totals: StatementTotalsOut
    days: list[StatementDayOut]
    transactions: list[StatementTransactionOut]
    entries: list[StatementEntryOut]
    problems: list[str]


class DeliveryOut(Schema):
    callback_id: int
    received_at: dt.datetime
    state: str
    error: str


class DuplicateOut(Schema):
    trans_id: str
    count: int
    processed: int = Field(description="deliveries that credited money (more than 1: a bug)")
    driver_id: str | None
    driver_name: str | None
    amount: Money | None
    first_received_at: dt.datetime
    last_received_at: dt.datetime
    deliveries: list[DeliveryOut]


class DuplicatesOut(Schema):
    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")
    since: dt.datetime
    until: dt.datetime
    trans_ids: int
    deliveries: int
    duplicates: list[DuplicateOut]


class DepositEntryOut(Schema):
    seq: int = Field(description="the driver's entries are numbered 1, 2, 3…")
    created_at: dt.datetime
    kind: str = Field(
        description="Initial Deposit, Top Up, Target Deduction, Damage Deduction, Refund or "
        "Adjustment"
    )
    amount: Money = Field(description="signed: what the movement added to the deposit")
    balance_after: Money
    reference: str = Field(description="the reason, or the M-Pesa receipt")
    actor: str
    trans_id: str | None = Field(description="the transaction that paid it (self-payments)")


class DepositOut(Schema):
    driver_id: str
    name: str
    status: str
    required: bool
    initial_amount: Money = Field(description="the deposit the fleet asks for")
    allow_target_deduction: bool = Field(
        description="a missed target may be paid from the deposit, once approved"
    )
    balance: Money = Field(description="the last entry's balance_after (0 without entries)")
    entries: list[DepositEntryOut]


class DepositMovementIn(_Body):
    direction: Literal["add", "deduct"]
    type: Literal["initial", "top-up", "adjustment", "damage"] = Field(
        description="add: initial, top-up or adjustment; deduct: damage or adjustment"
    )
    amount: AmountText
    reason: ReasonText


class DepositMovementOut(Schema):
    driver_id: str
    entry: DepositEntryOut
    balance: Money = Field(description="the deposit after this movement")


class DepositSettingsIn(_Body):
    required: StrictBool | None = None
    initial_amount: AmountText | None = Field(None, description='"0": no deposit asked for')
    allow_target_deduction: StrictBool | None = None


class ReasonIn(_Body):
    reason: ReasonText = Field(description="required (audit trail)")


class OptionalReasonIn(_Body):
    reason: ReasonText = ""


class ProposalOut(Schema):
    id: int
    driver_id: str
    driver_name: str
    business_day: dt.date = Field(description="the missed day")
    shortfall: Money
    amount: Money = Field(description="proposed: the shortfall, up to the deposit at the close")
    approved_amount: Money = Field(description="moved to the target when approved")
    state: str = Field(description="proposed, approved or rejected")
    decided_by: str
    decided_at: dt.datetime | None
    reason: str
    created_at: dt.datetime


class ProposalPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[ProposalOut]


class RefundOut(Schema):
    id: int
    driver_id: str
    driver_name: str
    state: str = Field(description="proposed, approved or rejected")
    deposit_balance: Money
    target_debt: Money = Field(description="carried target debt not yet worked off")
    adjustments_debt: Money = Field(description="open adjustments still owed")
    amount: Money = Field(description="what is paid back, in whole shillings")
    requested_by: str
    reason: str
    created_at: dt.datetime
    decided_by: str
    decided_at: dt.datetime | None
    payout_id: int | None = Field(description="the M-Pesa B2C payout, once approved")
    payout_state: str | None


class RefundPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[RefundOut]


class RefundApproveIn(_Body):
    refund_ids: list[RowId] = Field(min_length=1, max_length=MAX_LIMIT)


class RefundDecisionOut(Schema):
    refund_id: int
    approved: bool
    error: str | None = Field(description="why it was not approved")
    refund: RefundOut | None


class RefundDecisionsOut(Schema):
    approved: int
    refused: int
    results: list[RefundDecisionOut]


class TerminationOut(Schema):
    driver: DriverOut
    refund: RefundOut = Field(description="the refund proposed, for a fleet manager to approve")


class DepositReportRowOut(Schema):
    driver_id: str
    name: str
    status: str
    required: bool
    initial_amount: Money
    balance: Money = Field(description="top_ups − deductions − refunds")
    top_ups: Money = Field(description="Initial Deposit + Top Up + positive Adjustments")
    deductions: Money = Field(
        description="Target Deduction + Damage Deduction + negative Adjustments, as positive"
    )
    refunds: Money = Field(description="Refund entries, as positive")
    open_proposals: int


class DepositReportTotalsOut(Schema):
    balance: Money
    top_ups: Money
    deductions: Money
    refunds: Money
    open_proposals: int


class DepositReportOut(Schema):
    count: int
    totals: DepositReportTotalsOut
    items: list[DepositReportRowOut]


# --- the API -------------------------------------------------------------------------------

api = NinjaAPI(
    title="TukTuk Ledger API",
    version="1",
    description="Drivers, balance reconciliation and the event log. "
    "Authenticate with `Authorization: Bearer <token>` (`tuktuk create-api-token USERNAME`).",
    urls_namespace="api-v1",
    renderer=ExactJSONRenderer(),
    auth=BearerTokenAuth(),
    # Swagger UI from our static files: the docs page works offline (backoffice/api_docs.py).
    docs=OfflineSwagger(),
)


@api.exception_handler(OperatorError)
def _operator_error(request: HttpRequest, exc: OperatorError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=error_shape(exc).http_status)


@api.exception_handler(AuthenticationError)
def _unauthorized(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = api.create_response(
        request, {"detail": "a valid bearer token is required"}, status=401
    )
    response["WWW-Authenticate"] = 'Bearer realm="tuktuk"'  # RFC 6750
    return response


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    # Only where and what: pydantic's context may hold objects no JSON encoder knows.
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors
    ]
    return api.create_response(request, {"detail": errors}, status=422)


@api.exception_handler(SuspiciousOperation)
def _refused(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    # Raised while reading the body (e.g. larger than DATA_UPLOAD_MAX_MEMORY_SIZE); without
    # this handler Django would answer with an HTML error page.
    if isinstance(exc, RequestDataTooBig):
        return api.create_response(request, {"detail": "request body too large"}, status=413)
    return api.create_response(request, {"detail": "bad request"}, status=400)


def _driver_id_or_404(driver_id: str) -> str:
    """Ids only in URLs (NotFound → 404 by the one error mapping)."""
    return driver_get(ref=driver_id).driver_id


def _require_fix_permission(request: HttpRequest) -> None:
    if not request.auth.has_perm(FIX_PERMISSION):  # type: ignore[attr-defined]
        raise HttpError(403, f"fixing balances needs the {FIX_PERMISSION} permission")


def _actor(request: HttpRequest) -> str:
    return str(request.auth.get_username())  # type: ignore[attr-defined]


def _acting(request: HttpRequest, permission: str, *more: str) -> str:
    """The token's user if they hold the permission(s) (else NotAllowed: 403), as the actor."""
    return roles.require(request.auth, permission, *more)  # type: ignore[attr-defined]


def _state(state: DecisionState) -> str | None:
    return None if state == "all" else state


@api.get("/health", auth=None, response={200: HealthOut, 503: HealthErrorOut}, tags=["health"])
def health(request: HttpRequest) -> Status[dict[str, str]]:
    """Liveness plus a database round trip. Public: load balancers carry no token."""
    try:
        vendor = selectors.database_ping()
    except Exception as exc:  # any database failure means "not healthy", never a 500 page
        error = type(exc).__name__
        return Status(503, {"status": "error", "error": error, "version": tuktuk.__version__})
    return Status(200, {"status": "ok", "database": vendor, "version": tuktuk.__version__})


@api.get("/drivers", response={200: DriverPage, **_errors()}, tags=["drivers"])
def driver_list(request: HttpRequest, limit: Limit = 100, offset: Offset = 0) -> Any:
    return selectors.driver_list(limit=limit, offset=offset)


@api.get("/drivers/{driver_id}", response={200: DriverOut, **_errors(404)}, tags=["drivers"])
def driver_detail(request: HttpRequest, driver_id: DriverPath) -> Any:
    return selectors.driver_detail(driver_id=driver_id)


@api.get(
    "/drivers/{driver_id}/reconciliation",
    response={200: ReconciliationOut, **_errors(404)},
    exclude_unset=True,
    tags=["reconciliation"],
)
def driver_reconciliation(
    request: HttpRequest, driver_id: DriverPath, date: Query[BusinessDay | None] = None
) -> Any:
    """The driver's cached balance against the ledger for a business day (default: the open
    day). Changes no balance; a discrepancy is recorded in the event log."""
    canonical = _driver_id_or_404(driver_id)
    return reconcile_driver_balance(canonical, date)


@api.post(
    "/drivers/{driver_id}/fix-balance",
    response={200: FixBalanceOut, **_errors(403, 404, 413)},
    exclude_unset=True,
    tags=["reconciliation"],
)
def driver_fix_balance(
    request: HttpRequest, driver_id: DriverPath, body: FixBalanceIn | None = None
) -> Any:
    """Preview (auto_fix false) or fix the driver's open-day balance to equal its ledger; a fix
    needs a reason and the ledger.add_balancecorrection permission, and is audited."""
    body = body or FixBalanceIn.model_validate({})  # no body at all: a preview
    if body.auto_fix:
        _require_fix_permission(request)
    canonical = _driver_id_or_404(driver_id)
    return fix_driver_balance(
        canonical,
        date=body.date,
        auto_fix=body.auto_fix,
        reason=body.reason,
        actor=_actor(request),
    )


@api.post(
    "/reconciliation",
    response={200: ReconcileAllOut, **_errors(403, 413)},
    exclude_unset=True,
    tags=["reconciliation"],
)
def reconciliation_run(request: HttpRequest, body: ReconcileAllIn | None = None) -> Any:
    """Check every active driver; with auto_fix, fix those under the review threshold."""
    body = body or ReconcileAllIn.model_validate({})  # no body at all: check only
    if body.auto_fix:
        _require_fix_permission(request)
    return reconcile_all_drivers_balances(
        date=body.date, auto_fix=body.auto_fix, reason=body.reason, actor=_actor(request)
    )


@api.get("/events", response={200: EventPage, **_errors()}, tags=["events"])
def event_list(
    request: HttpRequest,
    limit: Limit = 100,
    offset: Offset = 0,
    level: Query[Literal["info", "warning", "error"] | None] = None,
    title: Query[SearchText | None] = None,
    driver: Query[DriverId | None] = None,
) -> Any:
    """The event log, newest first; `title` matches part of the title, case-insensitively."""
    return selectors.event_list(
        limit=limit, offset=offset, level=level, title=title, driver_id=driver
    )


@api.get(
    "/drivers/{driver_id}/statement",
    response={200: StatementOut, **_errors(404)},
    by_alias=True,
    tags=["statements"],
    # format=csv answers the same 200 as a spreadsheet file.
    openapi_extra={
        "responses": {
            200: {"content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}}}
        }
    },
)
def driver_statement_view(
    request: HttpRequest,
    driver_id: DriverPath,
    date_from: FromDay = None,
    date_to: ToDay = None,
    output: Annotated[Literal["json", "csv"], Query(..., alias="format")] = "json",
) -> Any:
    """The driver's statement for business days from..to inclusive (default: the open day):
    per-day opening, movements and closing, totals, transactions and ledger entries.
    `format=csv` returns the same as a spreadsheet file."""
    # By id only, like every URL; NotFound -> 404 by the one error mapping.
    statement = driver_statement(driver_id=driver_id, date_from=date_from, date_to=date_to)
    if output == "csv":
        return statement_csv_response(statement)
    return statement.as_dict()


@api.get(
    "/duplicates",
    response={200: DuplicatesOut, **_errors()},
    by_alias=True,
    tags=["reconciliation"],
)
def duplicates_view(
    request: HttpRequest,
    date_from: FromDay = None,
    date_to: ToDay = None,
) -> Any:
    """TransIDs whose C2B confirmation was delivered more than once, first delivered in business
    days from..to (default: the last 7), with every delivery's time and state."""
    return duplicates_report(date_from=date_from, date_to=date_to).as_dict()


# --- deposits ------------------------------------------------------------------------------


@api.get(
    "/drivers/{driver_id}/deposit", response={200: DepositOut, **_errors(404)}, tags=["deposits"]
)
def driver_deposit(request: HttpRequest, driver_id: DriverPath) -> Any:
    """The driver's deposit: settings, balance and every entry, oldest first."""
    return selectors.deposit_detail(driver_id=driver_id)


@api.post(
    "/drivers/{driver_id}/deposit",
    response={200: DepositMovementOut, **_errors(403, 404, 413)},
    tags=["deposits"],
)
def driver_deposit_move(
    request: HttpRequest, driver_id: DriverPath, body: DepositMovementIn
) -> Any:
    """Record money into (`add`) or out of (`deduct`) the deposit, with a reason; a deduction
    never takes the deposit below zero. Needs ledger.manage_deposits."""
    actor = _acting(request, roles.MANAGE_DEPOSITS)
    move = deposit_add if body.direction == "add" else deposit_deduct
    entry = move(
        driver_id=driver_id, amount=body.amount, kind=body.type, reason=body.reason, actor=actor
    )
    return {
        "driver_id": entry.driver.driver_id,
        "entry": selectors.deposit_entry_dict(entry),
        "balance": entry.balance_after,
    }


@api.patch(
    "/drivers/{driver_id}/deposit",
    response={200: DepositOut, **_errors(403, 404, 413)},
    tags=["deposits"],
)
def driver_deposit_settings(
    request: HttpRequest, driver_id: DriverPath, body: DepositSettingsIn
) -> Any:
    """Change what the fleet asks of the driver (the fields given, at least one). Needs
    ledger.manage_deposits."""
    actor = _acting(request, roles.MANAGE_DEPOSITS)
    deposit_settings_set(
        driver_id=driver_id,
        actor=actor,
        required=body.required,
        initial_amount=body.initial_amount,
        allow_target_deduction=body.allow_target_deduction,
    )
    return selectors.deposit_detail(driver_id=driver_id)


@api.get("/deposit-proposals", response={200: ProposalPage, **_errors()}, tags=["deposits"])
def deposit_proposals(
    request: HttpRequest,
    limit: Limit = 100,
    offset: Offset = 0,
    state: Query[DecisionState] = "proposed",
) -> Any:
    """Target deductions proposed at a missed day's close (default: those waiting for a fleet
    manager), oldest missed day first."""
    return selectors.proposal_list(state=_state(state), limit=limit, offset=offset)


@api.post(
    "/deposit-proposals/{proposal_id}/approve",
    response={200: ProposalOut, **_errors(403, 404, 409, 413)},
    tags=["deposits"],
)
def deposit_proposal_approve(
    request: HttpRequest, proposal_id: ProposalPath, body: OptionalReasonIn | None = None
) -> Any:
    """Move the proposed amount (up to what the deposit holds now) to the driver's target
    balance, once. Needs ledger.manage_deposits."""
    actor = _acting(request, roles.MANAGE_DEPOSITS)
    body = body or OptionalReasonIn.model_validate({})
    proposal = deduction_decide(
        proposal_id=proposal_id, approve=True, actor=actor, reason=body.reason
    )
    return selectors.proposal_dict(proposal)


@api.post(
    "/deposit-proposals/{proposal_id}/reject",
    response={200: ProposalOut, **_errors(403, 404, 409, 413)},
    tags=["deposits"],
)
def deposit_proposal_reject(request: HttpRequest, proposal_id: ProposalPath, body: ReasonIn) -> Any:
    """Refuse a proposed deduction, with a reason. Needs ledger.manage_deposits."""
    actor = _acting(request, roles.MANAGE_DEPOSITS)
    proposal = deduction_decide(
        proposal_id=proposal_id, approve=False, actor=actor, reason=body.reason
    )
    return selectors.proposal_dict(proposal)


# --- driver exits --------------------------------------------------------------------------


@api.post(
    "/drivers/{driver_id}/terminate",
    response={200: TerminationOut, **_errors(403, 404, 409, 413)},
    tags=["drivers"],
)
def driver_terminate_view(request: HttpRequest, driver_id: DriverPath, body: ReasonIn) -> Any:
    """End the driver's engagement (their vehicle is freed) and propose their deposit refund.
    Needs fleet.change_driver and ledger.manage_deposits."""
    actor = _acting(request, *roles.MANAGE_EXITS)
    refund = driver_terminate(driver_id=driver_id, reason=body.reason, actor=actor)
    return {
        "driver": selectors.driver_detail(driver_id=driver_id),
        "refund": selectors.refund_dict(refund),
    }


@api.post(
    "/drivers/{driver_id}/archive",
    response={200: DriverOut, **_errors(403, 404, 409)},
    tags=["drivers"],
)
def driver_archive_view(request: HttpRequest, driver_id: DriverPath) -> Any:
    """Hide a terminated driver from the everyday lists; their money is unchanged. Needs
    fleet.change_driver and ledger.manage_deposits."""
    actor = _acting(request, *roles.MANAGE_EXITS)
    driver_archive(driver_id=driver_id, actor=actor)
    return selectors.driver_detail(driver_id=driver_id)


@api.post(
    "/drivers/{driver_id}/restore",
    response={200: DriverOut, **_errors(403, 404, 409, 413)},
    tags=["drivers"],
)
def driver_restore_view(request: HttpRequest, driver_id: DriverPath, body: ReasonIn) -> Any:
    """Bring a terminated (or archived) driver back; the days away close as paused and a refund
    still waiting is withdrawn. Needs fleet.change_driver and ledger.manage_deposits."""
    actor = _acting(request, *roles.MANAGE_EXITS)
    driver_restore(driver_id=driver_id, reason=body.reason, actor=actor)
    return selectors.driver_detail(driver_id=driver_id)


@api.post(
    "/drivers/{driver_id}/reset-misses",
    response={200: DriverOut, **_errors(403, 404, 413)},
    tags=["drivers"],
)
def driver_reset_misses(request: HttpRequest, driver_id: DriverPath, body: ReasonIn) -> Any:
    """Zero the consecutive misses and lift the review flag, with a reason. Needs
    fleet.change_driver."""
    actor = _acting(request, roles.RESET_MISSES)
    driver_misses_reset(driver_id=driver_id, reason=body.reason, actor=actor)
    return selectors.driver_detail(driver_id=driver_id)


# --- refunds -------------------------------------------------------------------------------


@api.get("/refunds", response={200: RefundPage, **_errors()}, tags=["refunds"])
def refund_list(
    request: HttpRequest,
    limit: Limit = 100,
    offset: Offset = 0,
    state: Query[DecisionState] = "proposed",
) -> Any:
    """Deposit refunds of terminated drivers (default: those waiting for a fleet manager),
    newest first, with their payout once approved."""
    return selectors.refund_list(state=_state(state), limit=limit, offset=offset)


@api.post(
    "/refunds/approve",
    response={200: RefundDecisionsOut, **_errors(403, 413)},
    tags=["refunds"],
)
def refunds_approve_view(request: HttpRequest, body: RefundApproveIn) -> Any:
    """Approve one or more refunds, each on its own: one that cannot be approved (unknown,
    already decided, the driver restored) is reported in its result and does not stop the
    others. Each approval settles the debts from the deposit and queues the rest as an M-Pesa
    B2C payout. Needs ledger.manage_deposits."""
    actor = _acting(request, roles.MANAGE_DEPOSITS)
    decisions = refunds_approve(refund_ids=body.refund_ids, actor=actor)
    results = [
        {
            "refund_id": decision.refund_id,
            "approved": decision.refund is not None,
            "error": decision.error or None,
            "refund": (
                selectors.refund_dict(selectors.refund_get(refund_id=decision.refund_id))
                if decision.refund is not None
                else None
            ),
        }
        for decision in decisions
    ]
    approved = sum(1 for result in results if result["approved"])
    return {"approved": approved, "refused": len(results) - approved, "results": results}


@api.post(
    "/refunds/{refund_id}/reject",
    response={200: RefundOut, **_errors(403, 404, 409, 413)},
    tags=["refunds"],
)
def refund_reject_view(request: HttpRequest, refund_id: RefundPath, body: ReasonIn) -> Any:
    """Refuse a proposed refund, with a reason. Needs ledger.manage_deposits."""
    actor = _acting(request, roles.MANAGE_DEPOSITS)
    refund_reject(refund_id=refund_id, reason=body.reason, actor=actor)
    return selectors.refund_dict(selectors.refund_get(refund_id=refund_id))


# --- reports -------------------------------------------------------------------------------


@api.get("/reports/deposits", response={200: DepositReportOut, **_errors()}, tags=["reports"])
def deposit_report_view(request: HttpRequest) -> Any:
    """Every driver's deposit: settings, balance, totals of top-ups, deductions and refunds
    (balance = top_ups − deductions − refunds) and open deduction proposals."""
    return deposit_report().as_dict()


@api.get(
    "/reports/deposits.csv",
    response={**_errors()},
    tags=["reports"],
    openapi_extra={
        "responses": {
            200: {
                "description": "OK",
                "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def deposit_report_csv_view(request: HttpRequest) -> Any:
    """The deposit report as a spreadsheet file (the columns of /reports/deposits)."""
    return deposit_report_csv_response(deposit_report())


# --- who drives today: vehicles, assignments, substitutes, the roster (issue 11) ------------

VEHICLE_ID_MAX_LENGTH = 32  # Vehicle.vehicle_id
STATUS_MAX_LENGTH = 32
PHONE_MAX_LENGTH = 32
MOMENT_MAX_LENGTH = 40


VehicleId = Annotated[
    str,
    Field(min_length=1, max_length=VEHICLE_ID_MAX_LENGTH),
    _no_control_characters(frozenset()),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": VEHICLE_ID_MAX_LENGTH,
            "pattern": _LINE_PATTERN,
            "example": "TUK-001",
        }
    ),
]
VehiclePath = Annotated[VehicleId, Path(..., description="the vehicle's id, e.g. TUK-001")]
DayPath = Annotated[BusinessDay, Path(..., description=f"YYYY-MM-DD, {DAY_MIN} .. {DAY_MAX}")]
VehicleStatusText = Annotated[
    str,
    Field(max_length=STATUS_MAX_LENGTH),
    _no_control_characters(frozenset()),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": STATUS_MAX_LENGTH,
            "pattern": _LINE_PATTERN,
            "description": "Available, Charging, Maintenance or Offline (any case); Assigned "
            "and Subbed follow the assignments",
            "example": "Charging",
        }
    ),
]
NameText = Annotated[
    str,
    Field(max_length=NAME_MAX_LENGTH),
    _no_control_characters(frozenset()),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": NAME_MAX_LENGTH,
            "pattern": _LINE_PATTERN,
            "example": "Sub One",
        }
    ),
]
PhoneText = Annotated[
    str,
    Field(max_length=PHONE_MAX_LENGTH),
    _no_control_characters(frozenset()),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": PHONE_MAX_LENGTH,
            "pattern": _LINE_PATTERN,
            "example": "0711000111",
        }
    ),
]
PercentageText = Annotated[
    str,
    Field(max_length=AMOUNT_MAX_LENGTH),
    _no_control_characters(frozenset()),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": AMOUNT_MAX_LENGTH,
            "pattern": _LINE_PATTERN,
            "description": "a decimal string from 0 to 100, at most two decimals",
            "example": "50",
        }
    ),
]
DayOffReasonText = Annotated[
    str,
    Field(max_length=DAY_OFF_REASON_MAX_LENGTH),
    _no_control_characters(_TEXT_ALLOWED_CONTROLS),
    WithJsonSchema(
        {"type": "string", "maxLength": DAY_OFF_REASON_MAX_LENGTH, "pattern": _TEXT_PATTERN}
    ),
]


def _iso_moment(value: object) -> object:
    # Only text, read as the CLI reads --at (core.dates.moment_parse): pydantic's lax parsing
    # would take 1733529600 for a Unix time.
    if value is None:
        return value
    if not isinstance(value, str) or len(value) > MOMENT_MAX_LENGTH:
        raise ValueError(f"a moment is ISO 8601 text of at most {MOMENT_MAX_LENGTH} characters")
    try:
        return moment_arg(value, name="at")
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


Moment = Annotated[
    dt.datetime,
    BeforeValidator(_iso_moment),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "maxLength": MOMENT_MAX_LENGTH,
            "description": "ISO 8601 (Africa/Nairobi without an offset) or YYYYMMDDHHMMSS, "
            f"{DAY_MIN} .. {DAY_MAX}",
            "example": "2026-03-10T10:15:00+03:00",
        }
    ),
]
Percentage = Annotated[Decimal, WithJsonSchema({"type": "number", "description": "0 to 100"})]


class VehicleOut(Schema):
    vehicle_id: str
    mpesa_account: str
    is_active: bool
    status: str = Field(description="set by an operator: Available, Charging, Maintenance, Offline")
    status_now: str = Field(
        description="the legacy status now: the operator's when out of service, else Subbed, "
        "Assigned or Available from the assignments"
    )
    driver_id: str | None = Field(description="the driver on duty now")
    driver_name: str | None
    substitute: bool = Field(description="the driver on duty is a substitute covering it")


class VehiclePage(Schema):
    count: int
    limit: int
    offset: int
    items: list[VehicleOut]


class VehicleStatusIn(_Body):
    status: VehicleStatusText
    reason: ReasonText = Field(description="required (audit trail)")


class AssignmentOut(Schema):
    id: int
    vehicle_id: str
    driver_id: str
    driver_name: str
    substitute: bool = Field(description="a substitute's cover (always has both ends)")
    starts_at: dt.datetime | None = Field(description="null: since before history was kept")
    ends_at: dt.datetime | None = Field(description="exclusive; null: still running")
    reason: str
    created_by: str
    ended_by: str
    created_at: dt.datetime


class AssignmentPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[AssignmentOut]


class AssignIn(_Body):
    # Required, null included: a forgotten key must not take the vehicle from its driver.
    driver_id: DriverId | None = Field(description="the driver taking over; null: nobody")
    at: Moment | None = Field(None, description="from when; default now")
    reason: ReasonText = ""


class AssignOut(Schema):
    vehicle: VehicleOut
    assignment: AssignmentOut | None = Field(description="the new assignment; null: unassigned")


class SubstituteIn(_Body):
    name: NameText
    mpesa_number: PhoneText = Field(description="07XXXXXXXX, 2547XXXXXXXX, +2547…, 01…")
    daily_target: AmountText | None = Field(None, description='own target; null or "0": fleet')
    fare_percentage: PercentageText | None = Field(None, description="own; null: the fleet's")


class SubstituteOut(Schema):
    driver_id: str
    name: str
    mpesa_number: str
    daily_target: Money | None = Field(description="null or 0: the fleet's")
    fare_percentage: Percentage | None = Field(description="null or 0: the fleet's")
    status: str
    covers: list[AssignmentOut] = Field(description="covers not yet over, earliest first")


class SubstitutePage(Schema):
    count: int
    limit: int
    offset: int
    items: list[SubstituteOut]


class CoverIn(_Body):
    vehicle_id: VehicleId
    date_from: BusinessDay = Field(alias="from", description="the first business day")
    date_to: BusinessDay | None = Field(None, alias="to", description="the last; default: from")
    reason: ReasonText = ""


class DayOffOut(Schema):
    day: dt.date
    driver_id: str
    driver_name: str
    reason: str
    period_id: int | None = Field(description="the roster period that gave it, if any")
    created_by: str


class RosterPeriodOut(Schema):
    id: int
    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")
    created_by: str
    created_at: dt.datetime


class RosterOut(Schema):
    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")
    days_off: list[DayOffOut] = Field(description="by day, then driver")
    periods: list[RosterPeriodOut] = Field(description="the roster periods overlapping from..to")


class RosterGenerateIn(_Body):
    date_from: BusinessDay = Field(alias="from")
    date_to: BusinessDay = Field(alias="to", description="at most 366 days after from")


class DayOffIn(_Body):
    reason: DayOffReasonText = ""


class DayOffStateOut(Schema):
    driver_id: str
    day: dt.date
    off: bool
    day_off: DayOffOut | None


@api.get("/vehicles", response={200: VehiclePage, **_errors()}, tags=["vehicles"])
def vehicle_list(request: HttpRequest, limit: Limit = 100, offset: Offset = 0) -> Any:
    """Every vehicle with its status now and the driver on duty now."""
    return selectors.vehicle_list(limit=limit, offset=offset)


@api.post(
    "/vehicles/{vehicle_id}/status",
    response={200: VehicleOut, **_errors(403, 404, 413)},
    tags=["vehicles"],
)
def vehicle_status_set(request: HttpRequest, vehicle_id: VehiclePath, body: VehicleStatusIn) -> Any:
    """Set the vehicle's status (Available, Charging, Maintenance or Offline), with a reason;
    the change is kept with who and when. Needs fleet.change_vehicle."""
    actor = _acting(request, roles.MANAGE_VEHICLES)
    vehicle = vehicle_status_change(
        vehicle_id=vehicle_id, status=body.status, actor=actor, reason=body.reason
    )
    return selectors.vehicle_detail(vehicle_id=vehicle.vehicle_id)


@api.get(
    "/vehicles/{vehicle_id}/assignments",
    response={200: AssignmentPage, **_errors(404)},
    tags=["vehicles"],
)
def vehicle_assignments(
    request: HttpRequest, vehicle_id: VehiclePath, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """Who drove the vehicle from when to when (substitutes' covers included), oldest first."""
    return selectors.assignment_list(limit=limit, offset=offset, vehicle_id=vehicle_id)


@api.post(
    "/vehicles/{vehicle_id}/assign",
    response={200: AssignOut, **_errors(403, 404, 409, 413)},
    tags=["vehicles"],
)
def vehicle_assign(request: HttpRequest, vehicle_id: VehiclePath, body: AssignIn) -> Any:
    """Hand the vehicle over to a driver (null: to nobody) from `at` (default now). A start in
    the past is refused where fares paid to the vehicle since are credited to somebody else.
    Needs fleet.change_vehicle."""
    actor = _acting(request, roles.MANAGE_VEHICLES)
    made = vehicle_assign_by(
        vehicle_id=vehicle_id, driver_id=body.driver_id, actor=actor, reason=body.reason, at=body.at
    )
    return {
        "vehicle": selectors.vehicle_detail(vehicle_id=vehicle_id),
        "assignment": selectors.assignment_dict(made) if made is not None else None,
    }


@api.post("/substitutes", response={200: SubstituteOut, **_errors(403, 413)}, tags=["substitutes"])
def substitute_add(request: HttpRequest, body: SubstituteIn) -> Any:
    """A new substitute driver (their own id and M-Pesa number; target and percentage default
    to the fleet's). Needs fleet.add_driver."""
    actor = _acting(request, roles.ADD_SUBSTITUTE)
    substitute = substitute_create(
        name=substitute_name_arg(body.name),
        mpesa_number=body.mpesa_number,
        actor=actor,
        daily_target=daily_target_arg(body.daily_target),
        fare_percentage=fare_percentage_arg(body.fare_percentage),
    )
    return selectors.substitute_dict(substitute, [])


@api.get("/substitutes", response={200: SubstitutePage, **_errors()}, tags=["substitutes"])
def substitute_list(request: HttpRequest, limit: Limit = 100, offset: Offset = 0) -> Any:
    """Substitute drivers, with their covers not yet over."""
    return selectors.substitute_list(limit=limit, offset=offset)


@api.post(
    "/substitutes/{driver_id}/cover",
    response={200: AssignmentOut, **_errors(403, 404, 409, 413)},
    tags=["substitutes"],
)
def substitute_cover(request: HttpRequest, driver_id: DriverPath, body: CoverIn) -> Any:
    """The substitute drives the vehicle for business days from..to (from the opening of the
    first to the close of the last); an overlap with another cover of the vehicle or of the
    substitute is a 409. Needs fleet.change_vehicle."""
    actor = _acting(request, roles.MANAGE_VEHICLES)
    cover = substitute_assign_by(
        vehicle_id=body.vehicle_id,
        substitute_id=driver_id,
        date_from=body.date_from,
        date_to=body.date_to,
        actor=actor,
        reason=body.reason,
    )
    return selectors.assignment_dict(cover)


@api.get("/roster", response={200: RosterOut, **_errors()}, by_alias=True, tags=["roster"])
def roster_view(request: HttpRequest, date_from: FromDay = None, date_to: ToDay = None) -> Any:
    """Days off from..to (default: two weeks from today's business day; at most 366 days) and
    the roster periods overlapping them. A driver off is paused that day: no miss, no new debt."""
    return selectors.roster_show(date_from=date_from, date_to=date_to)


@api.post(
    "/roster/generate",
    response={200: RosterOut, **_errors(403, 413)},
    by_alias=True,
    tags=["roster"],
)
def roster_generate(request: HttpRequest, body: RosterGenerateIn) -> Any:
    """A roster period from..to with a day off on each active driver's preferred weekday (days
    already off stay as they are); answers the roster of those days. Needs fleet.change_driver."""
    actor = _acting(request, roles.MANAGE_ROSTER)
    roster_generate_by(date_from=body.date_from, date_to=body.date_to, actor=actor)
    return selectors.roster_show(date_from=body.date_from, date_to=body.date_to)


def _day_off_state(driver_id: str, day: dt.date) -> dict[str, Any]:
    # What the service left, whatever it was before (setting a day off twice changes nothing).
    roster = selectors.roster_show(date_from=day, date_to=day)
    canonical = driver_get(ref=driver_id).driver_id
    mine = [row for row in roster["days_off"] if row["driver_id"] == canonical]
    return {"driver_id": canonical, "day": day, "off": bool(mine), "day_off": (mine or [None])[0]}


@api.put(
    "/drivers/{driver_id}/days-off/{day}",
    response={200: DayOffStateOut, **_errors(403, 404, 413)},
    tags=["roster"],
)
def day_off_put(
    request: HttpRequest, driver_id: DriverPath, day: DayPath, body: DayOffIn | None = None
) -> Any:
    """The driver is off that business day (no miss, no new debt at its close). Needs
    fleet.change_driver."""
    actor = _acting(request, roles.MANAGE_ROSTER)
    body = body or DayOffIn.model_validate({})
    day_off_set_by(driver_id=driver_id, day=day, off=True, actor=actor, reason=body.reason)
    return _day_off_state(driver_id, day)


@api.delete(
    "/drivers/{driver_id}/days-off/{day}",
    response={200: DayOffStateOut, **_errors(403, 404)},
    tags=["roster"],
)
def day_off_delete(request: HttpRequest, driver_id: DriverPath, day: DayPath) -> Any:
    """The driver works that business day after all. Needs fleet.change_driver."""
    actor = _acting(request, roles.MANAGE_ROSTER)
    day_off_set_by(driver_id=driver_id, day=day, off=False, actor=actor)
    return _day_off_state(driver_id, day)
