from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from tuktuk.backoffice import roles
from tuktuk.backoffice.admin_utils import ReadOnlyAdmin, ReadOnlyInline, action_reason
from tuktuk.backoffice.duty_edges import (
    DAY_OFF_REASON_MAX_LENGTH,
    NAME_MAX_LENGTH,
    daily_target_arg,
    fare_percentage_arg,
    moment_arg,
    substitute_name_arg,
    weekday_name,
)
from tuktuk.backoffice.errors import admin_error
from tuktuk.backoffice.legacy import fix_driver_balance, reconcile_driver_balance
from tuktuk.backoffice.plain_labels import plain_text
from tuktuk.backoffice.responses import statement_csv_response
from tuktuk.core.dates import MOMENT_FORMATS, day_parse
from tuktuk.core.errors import InvalidInput, OperatorError
from tuktuk.fleet.assignments import driver_on_duty, vehicle_status_now
from tuktuk.fleet.models import (
    OPERATOR_STATUSES,
    Assignment,
    DayOff,
    Driver,
    FleetSettings,
    RosterPeriod,
    Vehicle,
    VehicleStatusChange,
)
from tuktuk.ledger.deposit_book import deposit_balance_subquery
from tuktuk.ledger.duty import (
    WEEKDAYS,
    day_off_set_by,
    preferred_day_off_set_by,
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
)
from tuktuk.ledger.models import BalanceCorrection, DayClose, LedgerEntry, Transaction
from tuktuk.ledger.statement import driver_statement

FIX_PERMISSION = "ledger.add_balancecorrection"

# Rows per page of the statement page's three tables (the CSV has them all).
STATEMENT_PAGE_SIZES = {"days": 31, "transactions": 25, "entries": 25}


def statement_pages(request: HttpRequest, statement: Any) -> dict[str, dict[str, Any]]:
    """Each table of the statement page, one page of it: `days_page`, `transactions_page`,
    `entries_page` in the query (the others, and the date range, kept in the links)."""
    pages = {}
    for section, size in STATEMENT_PAGE_SIZES.items():
        param = f"{section}_page"
        page = Paginator(getattr(statement, section), size).get_page(request.GET.get(param))

        def link(number: int, param: str = param) -> str:
            query = request.GET.copy()
            query[param] = str(number)
            return f"?{query.urlencode()}"

        pages[section] = {
            "name": section,
            "page": page,
            "rows": page.object_list,
            "previous": link(page.previous_page_number()) if page.has_previous() else None,
            "next": link(page.next_page_number()) if page.has_next() else None,
        }
    return pages


@admin.register(FleetSettings)
class FleetSettingsAdmin(ModelAdmin):
    list_display = [
        "__str__",
        "global_daily_target",
        "global_fare_percentage",
        "target_sharing",
        "instant_payouts",
        "operating_hours_start",
        "operating_hours_end",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row; and adding it sets the targets, so the model permission still applies.
        return not FleetSettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class VehicleStatusChangeInline(ReadOnlyInline):
    model = VehicleStatusChange
    fields = ("changed_at", "old_status", "new_status", "reason", "changed_by")
    readonly_fields = fields
    verbose_name_plural = "status history (set by the actions: mark available, charging, …)"


class VehicleAssignmentInline(ReadOnlyInline):
    model = Assignment
    fields = ("driver", "substitute", "starts_at", "ends_at", "reason", "created_by", "ended_by")
    readonly_fields = fields
    ordering = ("-starts_at", "-id")
    verbose_name_plural = "assignments (hand over on the assignments page)"


def _status_action(status: str) -> Callable[..., HttpResponse | None]:
    """An admin action setting the selected vehicles' status, with a reason, through
    ledger.duty.vehicle_status_change (one per status an operator sets)."""

    def mark(
        model_admin: VehicleAdmin, request: HttpRequest, queryset: QuerySet[Vehicle]
    ) -> HttpResponse | None:
        asked = action_reason(
            model_admin,
            request,
            queryset.order_by("vehicle_id"),
            title=f"Mark vehicles {status}",
            explanation=f"Each vehicle's status becomes {status}; the change is kept with you "
            "as its author and this reason. Fares paid to a vehicle that is not Available "
            "still post, and are flagged.",
            submit=f"Mark {status}",
        )
        if not isinstance(asked, str):
            return asked
        actor = roles.require(request.user, roles.MANAGE_VEHICLES)
        for vehicle in queryset.order_by("vehicle_id"):
            try:
                changed = vehicle_status_change(
                    vehicle_id=vehicle.vehicle_id, status=status, actor=actor, reason=asked
                )
            except OperatorError as exc:
                admin_error(request, exc)
            else:
                model_admin.message_user(
                    request, f"{changed.vehicle_id} is now {changed.status}.", messages.SUCCESS
                )
        return None

    mark.__name__ = f"mark_{status.lower()}"
    return admin.action(
        description=f"Mark selected vehicles {status}…", permissions=["manage_vehicles"]
    )(mark)


@admin.register(Vehicle)
class VehicleAdmin(ModelAdmin):
    list_display = [
        "vehicle_id",
        "mpesa_account",
        "status_now",
        "on_duty_now",
        "assigned_driver",
        "is_active",
    ]
    list_filter = ["is_active", "status"]
    search_fields = ["vehicle_id", "mpesa_account", "driver__name", "driver__driver_id"]
    # The status changes only through the actions (with a reason, kept in its history).
    readonly_fields = ["status", "status_now", "on_duty_now", "created_at"]
    inlines = [VehicleStatusChangeInline, VehicleAssignmentInline]
    actions = ["mark_available", "mark_charging", "mark_maintenance", "mark_offline"]

    mark_available = _status_action(OPERATOR_STATUSES[0])
    mark_charging = _status_action(OPERATOR_STATUSES[1])
    mark_maintenance = _status_action(OPERATOR_STATUSES[2])
    mark_offline = _status_action(OPERATOR_STATUSES[3])

    def has_manage_vehicles_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.MANAGE_VEHICLES)

    @admin.display(description="driver")
    def assigned_driver(self, vehicle: Vehicle) -> str:
        driver = getattr(vehicle, "driver", None)
        return str(driver) if driver else "—"

    @admin.display(description="status now")
    def status_now(self, vehicle: Vehicle) -> str:
        if not vehicle.pk:
            return "—"
        return vehicle_status_now(vehicle=vehicle)

    @admin.display(description="on duty now")
    def on_duty_now(self, vehicle: Vehicle) -> str:
        if not vehicle.pk:
            return "—"
        pk = driver_on_duty(vehicle_pk=vehicle.pk, moment=timezone.now())
        driver = Driver.objects.filter(pk=pk).first() if pk is not None else None
        if driver is None:
            return "—"
        return f"{driver} (substitute)" if driver.is_substitute else str(driver)


class BalanceCorrectionInline(ReadOnlyInline):
    model = BalanceCorrection
    fields = (
        "created_at",
        "business_day",
        "old_balance",
        "new_balance",
        "adjustment",
        "reason",
        "actor",
    )
    readonly_fields = fields
    verbose_name_plural = "balance corrections (audit trail)"


class DayCloseInline(ReadOnlyInline):
    model = DayClose
    fields = (
        "business_day",
        "closing_balance",
        "cached_balance",
        "target",
        "target_met",
        "carried_over",
        "consecutive_misses",
        "paused",
    )
    readonly_fields = fields
    max_num = 14
    verbose_name_plural = "recent day closes"


class DriverStatusFilter(admin.SimpleListFilter):
    """Archived drivers are off the everyday list (ledger.exits.driver_archive): shown only
    when asked for."""

    title = "status"
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("active", "Active"),
            ("inactive", "Inactive"),
            ("terminated", "Terminated"),
            ("archived", "Archived"),
            (self.ALL, "All, archived included"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Driver]) -> QuerySet[Driver]:
        # Driver.status as a query: archived, else terminated, else is_active.
        value = self.value()
        if value == self.ALL:
            return queryset
        if value == "archived":
            return queryset.filter(archived_at__isnull=False)
        if value == "terminated":
            return queryset.filter(terminated_at__isnull=False, archived_at__isnull=True)
        if value in ("active", "inactive"):
            return queryset.filter(terminated_at__isnull=True, is_active=value == "active")
        return queryset.filter(archived_at__isnull=True)

    def choices(self, changelist: Any) -> Any:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Not archived",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


WEEKDAY_CHOICES = [("", "— none —"), *((str(n), name) for n, name in enumerate(WEEKDAYS))]


class DriverForm(forms.ModelForm):
    preferred_day_off = forms.TypedChoiceField(
        choices=WEEKDAY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        help_text="The roster generator gives the driver this weekday off.",
    )

    def clean_account_alias(self) -> str | None:
        # As Driver.save stores it (trimmed, upper case), before the model's constraints are
        # checked against it: " d112001 " is D112001, not a violated constraint.
        return Vehicle.canonical_account(self.cleaned_data.get("account_alias") or "") or None


# The fields no form may write: the ledger (posting, day close, reconciliation) and the exit
# services (terminate, archive, restore, reset misses) change them, each with an event.
LEDGER_CONTROLLED = [
    "current_balance",
    "left_to_target",
    "balance_day",
    "consecutive_misses",
    "flagged_for_review",
    "terminated_at",
    "archived_at",
]


@admin.register(Driver)
class DriverAdmin(ModelAdmin):
    form = DriverForm
    list_display = [
        "driver_id",
        "name",
        "mpesa_number",
        "vehicle",
        "current_balance",
        "left_to_target",
        "consecutive_misses",
        "flagged_for_review",
        "status",
        "is_substitute",
        "deposit_balance",
    ]
    list_filter = [
        DriverStatusFilter,
        "is_substitute",
        "flagged_for_review",
        "target_sharing",
        "instant_payout",
    ]
    search_fields = ["driver_id", "name", "mpesa_number", "vehicle__vehicle_id"]
    list_select_related = ["vehicle"]
    readonly_fields = [
        *LEDGER_CONTROLLED,
        # Who drives what is the assignment history's: handed over through ledger.duty.
        "vehicle",
        "vehicle_tools",
        "is_substitute",
        "status",
        "deposit_balance",
        "created_at",
        "updated_at",
        "verification_link",
        "statement_link",
        "deposit_links",
    ]
    actions = [
        "reconciliation_check",
        "terminate_drivers",
        "archive_drivers",
        "restore_drivers",
        "reset_misses",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "driver_id",
                    "name",
                    "mpesa_number",
                    "is_active",
                    "account_alias",
                ]
            },
        ),
        (
            "Who drives (vehicle: through a handover; substitutes: added as substitutes)",
            {"fields": ["vehicle", "vehicle_tools", "is_substitute", "preferred_day_off"]},
        ),
        (
            "Overrides (empty or 0: follow the fleet settings)",
            {"fields": ["daily_target", "fare_percentage", "target_sharing", "instant_payout"]},
        ),
        (
            "Balance (ledger-controlled, read-only)",
            {
                "fields": [
                    "current_balance",
                    "left_to_target",
                    "balance_day",
                    "consecutive_misses",
                    "flagged_for_review",
                    "verification_link",
                    "statement_link",
                ]
            },
        ),
        (
            "Status and deposit (changed by the actions: terminate, archive, restore, reset "
            "misses; and the deposit tools)",
            {
                "fields": [
                    "status",
                    "terminated_at",
                    "archived_at",
                    "deposit_balance",
                    "deposit_links",
                ]
            },
        ),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [BalanceCorrectionInline, DayCloseInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Driver]:
        return super().get_queryset(request).annotate(deposit_now=deposit_balance_subquery())

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.terminated_at is not None:
            # A terminated driver is inactive and has no vehicle (the database checks it);
            # restoring them is the way back.
            fields += ["is_active"]
        return [*fields, "driver_id"] if obj else fields

    @admin.display(description="status")
    def status(self, driver: Driver) -> str:
        return driver.status

    @admin.display(description="vehicle tools")
    def vehicle_tools(self, driver: Driver) -> str:
        if not driver.pk:
            return "Save the driver, then give them a vehicle with a handover."
        handover = reverse("admin:fleet_assignment_handover")
        history = reverse("admin:fleet_assignment_changelist")
        return format_html(
            '<a href="{}?driver={}">Assign / hand over a vehicle…</a> · '
            '<a href="{}?q={}">Assignment history</a>',
            handover,
            driver.pk,
            history,
            driver.driver_id,
        )

    def save_model(self, request: HttpRequest, obj: Driver, form: Any, change: bool) -> None:
        # The preferred day off goes through its service (an event names the actor); the rest
        # of the form is the driver's identity, saved as it is.
        weekday = form.cleaned_data.get("preferred_day_off")
        if "preferred_day_off" in form.changed_data:
            obj.preferred_day_off = form.initial.get("preferred_day_off") if change else None
        super().save_model(request, obj, form, change)
        if "preferred_day_off" in form.changed_data:
            preferred_day_off_set_by(
                driver_id=obj.driver_id,
                weekday=weekday,
                actor=roles.require(request.user, roles.MANAGE_ROSTER),
            )
            obj.refresh_from_db(fields=["preferred_day_off"])

    @admin.display(description="deposit", ordering="deposit_now")
    def deposit_balance(self, driver: Driver) -> Any:
        return getattr(driver, "deposit_now", None)

    @admin.display(description="deposit tools")
    def deposit_links(self, driver: Driver) -> str:
        if not driver.pk:
            return "—"
        entries = reverse("admin:ledger_depositentry_changelist")
        record = reverse("admin:ledger_depositentry_record")
        return format_html(
            '<a href="{}?q={}">Deposit entries</a> · <a href="{}?driver={}">Record a deposit '
            "movement</a>",
            entries,
            driver.driver_id,
            record,
            driver.pk,
        )

    @admin.display(description="transaction verification")
    def verification_link(self, driver: Driver) -> str:
        if not driver.pk:
            return "—"
        url = reverse("admin:fleet_driver_verification", args=[driver.pk])
        return format_html('<a href="{}">Transactions and ledger entries of the day</a>', url)

    @admin.display(description="statement")
    def statement_link(self, driver: Driver) -> str:
        if not driver.pk:
            return "—"
        url = reverse("admin:fleet_driver_statement", args=[driver.pk])
        return format_html('<a href="{}">Statement (date range, CSV)</a>', url)

    def get_urls(self) -> list[URLPattern]:
        verification = self.admin_site.admin_view(self.verification_view)
        statement = self.admin_site.admin_view(self.statement_view)
        substitute = self.admin_site.admin_view(self.substitute_add_view)
        return [
            path("<int:pk>/verification/", verification, name="fleet_driver_verification"),
            path("<int:pk>/statement/", statement, name="fleet_driver_statement"),
            path("add-substitute/", substitute, name="fleet_driver_add_substitute"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"can_add_substitute": request.user.has_perm(roles.ADD_SUBSTITUTE)}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def substitute_add_view(self, request: HttpRequest) -> HttpResponse:
        """A substitute driver, through ledger.duty.substitute_create."""

        def add(data: dict[str, Any], actor: str) -> tuple[str, str]:
            substitute = substitute_create(
                name=data["name"],
                mpesa_number=data["mpesa_number"],
                actor=actor,
                daily_target=data["daily_target"],
                fare_percentage=data["fare_percentage"],
            )
            done = reverse("admin:fleet_driver_changelist") + "?is_substitute__exact=1"
            return f"Substitute {substitute.driver_id} {substitute.name} added.", done

        return duty_form_view(
            self,
            request,
            form=SubstituteForm(request.POST or None),
            permission=roles.ADD_SUBSTITUTE,
            title="Add a substitute driver",
            explanation="A substitute has their own id and M-Pesa number; their fares always "
            "split by percentage and their days carry no debt. Give them a vehicle for some "
            "days with a substitute cover.",
            submit="Add the substitute",
            act=add,
        )

    def statement_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        driver = get_object_or_404(Driver, pk=pk)
        try:
            statement = driver_statement(
                driver_id=driver.driver_id,
                date_from=request.GET.get("from") or None,
                date_to=request.GET.get("to") or None,
            )
        except OperatorError as exc:
            admin_error(request, exc)
            statement = driver_statement(driver_id=driver.driver_id)
        if request.GET.get("format") == "csv":
            return statement_csv_response(statement)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Statement: {driver}",
            "driver": driver,
            "statement": statement,
            "pages": statement_pages(request, statement),
            "csv_query": f"from={statement.date_from}&to={statement.date_to}&format=csv",
        }
        return TemplateResponse(request, "admin/fleet/driver/statement.html", context)

    def verification_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        driver = get_object_or_404(Driver, pk=pk)
        try:
            result = reconcile_driver_balance(driver.driver_id, request.GET.get("date") or None)
        except OperatorError as exc:
            admin_error(request, exc)
            result = reconcile_driver_balance(driver.driver_id)
        day = result["business_day"]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Transaction verification: {driver}",
            "driver": driver,
            "result": result,
            "transactions": Transaction.objects.filter(driver=driver, business_day=day)
            .select_related("entry")
            .order_by("received_at", "pk"),
            "entries": LedgerEntry.objects.filter(driver=driver, business_day=day)
            .select_related("transaction")
            .order_by("pk"),
        }
        return TemplateResponse(request, "admin/fleet/driver/verification.html", context)

    @admin.action(description="Reconciliation check (then fix after confirmation)")
    def reconciliation_check(
        self, request: HttpRequest, queryset: QuerySet[Driver]
    ) -> HttpResponse | None:
        drivers = list(queryset.order_by("driver_id"))
        can_fix = request.user.has_perm(FIX_PERMISSION)
        if request.POST.get("confirm_fix") == "yes":
            if not can_fix:
                raise PermissionDenied
            reason = request.POST.get("reason", "").strip()
            if not reason:
                self.message_user(request, "A reason is required to fix balances.", messages.ERROR)
                return None
            for driver in drivers:
                fixed = fix_driver_balance(
                    driver.driver_id,
                    auto_fix=True,
                    reason=reason,
                    actor=request.user.get_username(),
                )
                level = messages.SUCCESS if fixed["fixed"] else messages.INFO
                said = plain_text(fixed["message"])
                self.message_user(request, f"{driver.driver_id}: {said}", level)
            return None
        rows = []
        for driver in drivers:
            row = reconcile_driver_balance(driver.driver_id)
            rows.append({**row, "pk": driver.pk, "message": plain_text(row["message"])})
        broken = [row for row in rows if row["needs_fix"]]
        # Problems first (those a fix corrects, then the others), the drivers in order after;
        # harmless findings (a TransID delivered twice, posted once) are folded on the page.
        rows.sort(key=lambda row: (not row["needs_fix"], not row["problems"]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconciliation check",
            "rows": rows,
            "problem_rows": [row for row in rows if row["needs_fix"] or row["problems"]],
            "in_order_rows": [row for row in rows if not (row["needs_fix"] or row["problems"])],
            "information": [
                {**finding, "driver": row["driver_name"], "name": row["driver"]}
                for row in rows
                for finding in row["information"]
            ],
            "result": {
                "drivers_checked": len(rows),
                "drivers_with_discrepancies": len(broken),
                "total_discrepancy_amount": sum(abs(row["discrepancy"]) for row in broken),
            },
            "fixable": len(broken),
            "can_fix": can_fix,
            "selected": [driver.pk for driver in drivers],
        }
        return TemplateResponse(request, "admin/fleet/driver/reconciliation.html", context)

    # Leaving the fleet, and the legacy "Reset Consecutive Misses" ---------------------------

    def has_manage_exits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perms(roles.MANAGE_EXITS)

    def has_reset_misses_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.RESET_MISSES)

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Driver],
        act: Callable[[Driver], str],
    ) -> None:
        """Run one service per driver; a refusal is shown and does not stop the others."""
        for driver in queryset.order_by("driver_id"):
            try:
                done = act(driver)
            except OperatorError as exc:
                admin_error(request, exc)
            else:
                self.message_user(request, done, messages.SUCCESS)

    @admin.action(
        description="Terminate selected drivers (and propose their refunds)…",
        permissions=["manage_exits"],
    )
    def terminate_drivers(
        self, request: HttpRequest, queryset: QuerySet[Driver]
    ) -> HttpResponse | None:
        asked = action_reason(
            self,
            request,
            queryset.order_by("driver_id"),
            title="Terminate drivers",
            explanation="Each driver's vehicle is freed and nothing posts to them any more; a "
            "refund of their deposit, less open debts, is proposed for a fleet manager to approve.",
            submit="Terminate",
        )
        if not isinstance(asked, str):
            return asked
        actor = roles.require(request.user, *roles.MANAGE_EXITS)

        def terminate(driver: Driver) -> str:
            refund = driver_terminate(driver_id=driver.driver_id, reason=asked, actor=actor)
            return (
                f"{driver.driver_id} terminated; refund {refund.pk} of {refund.amount} KSH "
                "proposed."
            )

        self._each(request, queryset, terminate)
        return None

    @admin.action(description="Archive selected terminated drivers", permissions=["manage_exits"])
    def archive_drivers(self, request: HttpRequest, queryset: QuerySet[Driver]) -> None:
        actor = roles.require(request.user, *roles.MANAGE_EXITS)

        def archive(driver: Driver) -> str:
            return f"{driver_archive(driver_id=driver.driver_id, actor=actor).driver_id} archived."

        self._each(request, queryset, archive)

    @admin.action(
        description="Restore selected terminated or archived drivers…",
        permissions=["manage_exits"],
    )
    def restore_drivers(
        self, request: HttpRequest, queryset: QuerySet[Driver]
    ) -> HttpResponse | None:
        asked = action_reason(
            self,
            request,
            queryset.order_by("driver_id"),
            title="Restore drivers",
            explanation="Each driver comes back with the balances they left with: the days away "
            "close as paused (no miss, no new debt), and a refund still waiting is withdrawn.",
            submit="Restore",
        )
        if not isinstance(asked, str):
            return asked
        actor = roles.require(request.user, *roles.MANAGE_EXITS)

        def restore(driver: Driver) -> str:
            restored = driver_restore(driver_id=driver.driver_id, reason=asked, actor=actor)
            return f"{restored.driver_id} restored ({restored.status})."

        self._each(request, queryset, restore)
        return None

    @admin.action(
        description="Reset consecutive misses (and lift the review flag)…",
        permissions=["reset_misses"],
    )
    def reset_misses(self, request: HttpRequest, queryset: QuerySet[Driver]) -> HttpResponse | None:
        asked = action_reason(
            self,
            request,
            queryset.order_by("driver_id"),
            title="Reset consecutive misses",
            explanation="Each driver's count of consecutive missed targets goes back to 0 and "
            "the termination-review flag is lifted; the previous count is kept in the event.",
            submit="Reset",
        )
        if not isinstance(asked, str):
            return asked
        actor = roles.require(request.user, roles.RESET_MISSES)

        def reset(driver: Driver) -> str:
            done = driver_misses_reset(driver_id=driver.driver_id, reason=asked, actor=actor)
            return f"{done.driver_id}: consecutive misses reset."

        self._each(request, queryset, reset)
        return None


# Who drives today: handovers, substitutes' covers, the roster (issue 11) ---------------------


def duty_form_view(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    *,
    form: forms.Form,
    permission: str,
    title: str,
    explanation: str,
    submit: str,
    act: Callable[[dict[str, Any], str], tuple[str, str]],
) -> HttpResponse:
    """An admin page with a form that calls one service as the signed-in user: `act` gets the
    cleaned data and the actor and returns the message and where to go next. A refusal is
    shown above the form, the input kept."""
    if not request.user.has_perm(permission):
        raise PermissionDenied
    if request.method == "POST" and form.is_valid():
        try:
            message, done = act(form.cleaned_data, roles.require(request.user, permission))
        except OperatorError as exc:
            admin_error(request, exc)
        else:
            model_admin.message_user(request, message, messages.SUCCESS)
            return HttpResponseRedirect(done)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "explanation": explanation,
        "submit": submit,
        "form": form,
    }
    return TemplateResponse(request, "admin/fleet/duty_form.html", context)


def _checked(parse: Callable[[Any], Any], value: Any) -> Any:
    """A duty_edges reading as a form check: its InvalidInput shown on the field."""
    try:
        return parse(value)
    except InvalidInput as exc:
        raise forms.ValidationError(str(exc)) from exc


class DayField(forms.CharField):
    """A business day typed YYYY-MM-DD (core.dates.day_parse: 2000-01-01 .. 2100-12-31)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "YYYY-MM-DD")
        super().__init__(max_length=10, **kwargs)

    def clean(self, value: Any) -> dt.date | None:
        text = super().clean(value)
        return _checked(lambda v: day_parse(v, name="day"), text) if text else None


class SubstituteForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH)
    mpesa_number = forms.CharField(max_length=32, help_text="07XXXXXXXX or 2547XXXXXXXX")
    daily_target = forms.CharField(
        max_length=32, required=False, help_text="KSH; empty or 0: the fleet's"
    )
    fare_percentage = forms.CharField(
        max_length=32, required=False, help_text="0 to 100; empty: the fleet's"
    )

    def clean_name(self) -> str:
        return str(_checked(substitute_name_arg, self.cleaned_data["name"]))

    def clean_daily_target(self) -> Any:
        return _checked(daily_target_arg, self.cleaned_data["daily_target"])

    def clean_fare_percentage(self) -> Any:
        return _checked(fare_percentage_arg, self.cleaned_data["fare_percentage"])


class HandoverForm(forms.Form):
    vehicle = forms.ModelChoiceField(queryset=Vehicle.objects.order_by("vehicle_id"))
    driver = forms.ModelChoiceField(
        queryset=Driver.objects.filter(is_active=True, is_substitute=False).order_by("driver_id"),
        required=False,
        help_text="Empty: take the vehicle from its driver (nobody drives it).",
    )
    at = forms.CharField(
        max_length=40,
        required=False,
        label="From",
        help_text=f"Empty: now. {MOMENT_FORMATS}. A start in the past is refused where fares "
        "paid to the vehicle since are credited to somebody else.",
    )
    reason = forms.CharField(max_length=2000, required=False)

    def clean_at(self) -> dt.datetime | None:
        text = self.cleaned_data["at"].strip()
        return _checked(lambda v: moment_arg(v, name="from"), text) if text else None


class CoverForm(forms.Form):
    substitute = forms.ModelChoiceField(
        queryset=Driver.objects.filter(is_active=True, is_substitute=True).order_by("driver_id")
    )
    vehicle = forms.ModelChoiceField(queryset=Vehicle.objects.order_by("vehicle_id"))
    date_from = DayField(label="First day")
    date_to = DayField(label="Last day", required=False, help_text="YYYY-MM-DD; empty: the first")
    reason = forms.CharField(max_length=2000, required=False)


class AssignmentStateFilter(admin.SimpleListFilter):
    title = "when"
    parameter_name = "when"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("running", "Running now"), ("planned", "Starting later"), ("ended", "Ended")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Assignment]
    ) -> QuerySet[Assignment]:
        now = timezone.now()
        started = Q(starts_at__isnull=True) | Q(starts_at__lte=now)
        if self.value() == "running":
            return queryset.filter(started, Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        if self.value() == "planned":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "ended":
            return queryset.filter(ends_at__lte=now)
        return queryset


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    """The assignment history: who drove what from when to when. Written only by the services
    (a handover, a substitute's cover), from the pages linked above the list."""

    list_display = [
        "vehicle",
        "driver",
        "substitute",
        "starts_at",
        "ends_at",
        "reason",
        "created_by",
        "ended_by",
    ]
    list_filter = [AssignmentStateFilter, "substitute", "vehicle"]
    search_fields = ["vehicle__vehicle_id", "driver__driver_id", "driver__name", "reason"]
    list_select_related = ["vehicle", "driver"]
    change_list_template = "admin/fleet/assignment/change_list.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"can_assign": request.user.has_perm(roles.MANAGE_VEHICLES)}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def get_urls(self) -> list[URLPattern]:
        handover = self.admin_site.admin_view(self.handover_view)
        cover = self.admin_site.admin_view(self.cover_view)
        return [
            path("handover/", handover, name="fleet_assignment_handover"),
            path("cover/", cover, name="fleet_assignment_cover"),
            *super().get_urls(),
        ]

    def _done(self, vehicle: Vehicle) -> str:
        return f"{reverse('admin:fleet_assignment_changelist')}?q={vehicle.vehicle_id}"

    def handover_view(self, request: HttpRequest) -> HttpResponse:
        """Assign / hand over a vehicle, through ledger.duty.vehicle_assign_by."""

        def hand_over(data: dict[str, Any], actor: str) -> tuple[str, str]:
            vehicle, driver = data["vehicle"], data["driver"]
            vehicle_assign_by(
                vehicle_id=vehicle.vehicle_id,
                driver_id=driver.driver_id if driver else None,
                actor=actor,
                reason=data["reason"],
                at=data["at"],
            )
            to = f"assigned to {driver}" if driver else "unassigned"
            return f"{vehicle.vehicle_id} {to}.", self._done(vehicle)

        initial = {"driver": request.GET.get("driver"), "vehicle": request.GET.get("vehicle")}
        return duty_form_view(
            self,
            request,
            form=HandoverForm(request.POST or None, initial=initial),
            permission=roles.MANAGE_VEHICLES,
            title="Assign / hand over a vehicle",
            explanation="The vehicle's current driver (and the new driver's current vehicle) "
            "end at that moment; fares paid to the vehicle from then on go to the new driver.",
            submit="Hand over",
            act=hand_over,
        )

    def cover_view(self, request: HttpRequest) -> HttpResponse:
        """A substitute's cover, through ledger.duty.substitute_assign_by."""

        def cover(data: dict[str, Any], actor: str) -> tuple[str, str]:
            vehicle, substitute = data["vehicle"], data["substitute"]
            made = substitute_assign_by(
                vehicle_id=vehicle.vehicle_id,
                substitute_id=substitute.driver_id,
                date_from=data["date_from"],
                date_to=data["date_to"],
                actor=actor,
                reason=data["reason"],
            )
            return (
                f"{substitute.driver_id} covers {vehicle.vehicle_id} from "
                f"{timezone.localtime(made.starts_at):%Y-%m-%d %H:%M} to "
                f"{timezone.localtime(made.ends_at):%Y-%m-%d %H:%M}.",
                self._done(vehicle),
            )

        initial = {
            "substitute": request.GET.get("substitute"),
            "vehicle": request.GET.get("vehicle"),
        }
        return duty_form_view(
            self,
            request,
            form=CoverForm(request.POST or None, initial=initial),
            permission=roles.MANAGE_VEHICLES,
            title="Substitute cover",
            explanation="The substitute drives the vehicle from the opening of the first "
            "business day to the close of the last; inside it, the vehicle's fares are theirs.",
            submit="Cover",
            act=cover,
        )


class DayOffForm(forms.ModelForm):
    day = DayField()
    reason = forms.CharField(max_length=DAY_OFF_REASON_MAX_LENGTH, required=False)

    class Meta:
        model = DayOff
        fields = ["driver", "day", "reason"]


@admin.register(DayOff)
class DayOffAdmin(ModelAdmin):
    """Days off: added here and removed by the action, both through ledger.duty.day_off_set_by
    (an event names the actor). A driver off is paused that day: no miss, no new debt."""

    form = DayOffForm
    list_display = ["day", "weekday", "driver", "reason", "period", "created_by", "created_at"]
    list_filter = ["day", "period"]
    search_fields = ["driver__driver_id", "driver__name", "reason"]
    list_select_related = ["driver", "period"]
    actions = ["remove_days_off"]

    @admin.display(description="weekday")
    def weekday(self, day_off: DayOff) -> str:
        return weekday_name(day_off.day.weekday())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.MANAGE_ROSTER)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_manage_roster_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.MANAGE_ROSTER)

    def save_model(self, request: HttpRequest, obj: DayOff, form: Any, change: bool) -> None:
        made = day_off_set_by(
            driver_id=obj.driver.driver_id,
            day=obj.day,
            off=True,
            actor=roles.require(request.user, roles.MANAGE_ROSTER),
            reason=obj.reason,
        )
        assert made is not None
        obj.pk = made.pk
        obj._state.adding = False

    @admin.action(
        description="Remove selected days off (the drivers work those days)",
        permissions=["manage_roster"],
    )
    def remove_days_off(self, request: HttpRequest, queryset: QuerySet[DayOff]) -> None:
        actor = roles.require(request.user, roles.MANAGE_ROSTER)
        for day_off in queryset.select_related("driver").order_by("day", "driver__driver_id"):
            try:
                day_off_set_by(
                    driver_id=day_off.driver.driver_id, day=day_off.day, off=False, actor=actor
                )
            except OperatorError as exc:
                admin_error(request, exc)
            else:
                self.message_user(
                    request,
                    f"{day_off.driver.driver_id} works on {day_off.day}.",
                    messages.SUCCESS,
                )


class RosterForm(forms.Form):
    date_from = DayField(label="First day")
    date_to = DayField(label="Last day", help_text="YYYY-MM-DD; at most 366 days after the first")


@admin.register(RosterPeriod)
class RosterPeriodAdmin(ReadOnlyAdmin):
    list_display = ["starts_on", "ends_on", "days_off_count", "created_by", "created_at"]
    change_list_template = "admin/fleet/rosterperiod/change_list.html"

    @admin.display(description="days off")
    def days_off_count(self, period: RosterPeriod) -> int:
        return period.days_off.count()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"can_generate": request.user.has_perm(roles.MANAGE_ROSTER)}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def get_urls(self) -> list[URLPattern]:
        generate = self.admin_site.admin_view(self.generate_view)
        return [
            path("generate/", generate, name="fleet_rosterperiod_generate"),
            *super().get_urls(),
        ]

    def generate_view(self, request: HttpRequest) -> HttpResponse:
        """A roster period from each driver's preferred day off (ledger.duty.roster_generate_by)."""

        def generate(data: dict[str, Any], actor: str) -> tuple[str, str]:
            period = roster_generate_by(
                date_from=data["date_from"], date_to=data["date_to"], actor=actor
            )
            days_off = reverse("admin:fleet_dayoff_changelist")
            return (
                f"Roster {period.starts_on}..{period.ends_on}: {period.days_off.count()} "
                "preferred day(s) off.",
                f"{days_off}?period__id__exact={period.pk}",
            )

        return duty_form_view(
            self,
            request,
            form=RosterForm(request.POST or None),
            permission=roles.MANAGE_ROSTER,
            title="Generate a roster",
            explanation="Each active driver with a preferred day off gets that weekday off on "
            "every week of the range (days already off stay as they are). A driver off is "
            "paused that day: the close records no miss and adds no debt.",
            submit="Generate",
            act=generate,
        )
