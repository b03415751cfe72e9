"""The JSON API (/api/v1/): thin endpoints over the services (reconciliation, deposits, driver
exits, refunds) and the selectors.

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
from tuktuk.backoffice.deposit_report import deposit_report
from tuktuk.backoffice.errors import error_shape
from tuktuk.backoffice.legacy import (
    fix_driver_balance,
    reconcile_all_drivers_balances,
    reconcile_driver_balance,
)
from tuktuk.backoffice.responses import deposit_report_csv_response, statement_csv_response
from tuktuk.core import jsonutil
from tuktuk.core.dates import DAY_MAX, DAY_MIN, DAY_PATTERN, day_parse
from tuktuk.core.errors import OperatorError
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger.deposits import (
    deduction_decide,
    deposit_add,
    deposit_deduct,
    deposit_settings_set,
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
    closing: Money = Field(description="opening + contributions + corrections")
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
    carry_over_adjustments: Money = Field(
        description="Σ (opening − previous day's closing) over the day closes in the range"
    )
    closing_balance: Money = Field(
        description="opening_balance + contributions + corrections + carry_over_adjustments"
    )
    transactions_count: int
    amount_received: Money = Field(description="Payments and Driver Repayments")
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
