"""Fleet data: the one settings row, vehicles and drivers.

Rules that must hold even when someone writes around the ORM are database constraints.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length, Trim, Upper
from django.db.models.lookups import Exact, GreaterThanOrEqual
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from tuktuk.core.money import MoneyField
from tuktuk.fleet.settings_cache import RowCache


class Override(models.TextChoices):
    FOLLOW_GLOBAL = "Follow Global", "Follow Global"
    ENABLE = "Enable", "Enable"
    DISABLE = "Disable", "Disable"


def resolve_override(override: str, global_value: bool) -> bool:
    if override == Override.ENABLE:
        return True
    if override == Override.DISABLE:
        return False
    return global_value


SMS_TEMPLATE_FARE_CREDITED = (
    "TukTuk: fare KES {amount} at {time} ({vehicle}), your share KES {share}. "
    "Today KES {balance} of {target}, KES {left} to go."
)
SMS_TEMPLATE_PAYOUT_SENT = (
    "TukTuk: KES {amount} sent to your M-Pesa {phone_tail}, receipt {receipt}."
)
SMS_TEMPLATE_REMINDER = (
    "TukTuk: at {time} you have KES {balance} of today's KES {target} target, KES {left} to go."
)
SMS_TEMPLATE_DAY_CLOSE = (
    "TukTuk: {day} closed at KES {closing} of KES {target} ({result}). "
    "Next day opens at KES {carried_over}."
)


def times_of_day_parse(text: str) -> list[dt.time]:
    """'13:00,18:00, 22:00' → the times, sorted, each once; ValueError names a bad one."""
    times: set[dt.time] = set()
    for part in str(text or "").split(","):
        item = part.strip()
        if not item:
            continue
        try:
            hours, minutes = item.split(":")
            moment = dt.time(int(hours), int(minutes))
        except ValueError:
            raise ValueError(f"{item!r} is not a time of day like 13:00") from None
        times.add(moment)
    return sorted(times)


def validate_times_of_day(value: str) -> None:
    try:
        times_of_day_parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


settings_cache: RowCache[FleetSettings] = RowCache()


class FleetSettingsQuerySet(models.QuerySet["FleetSettings"]):
    def update(self, **kwargs: Any) -> int:
        # A queryset update sends no signal; it must drop the cached row all the same.
        rows = super().update(**kwargs)
        settings_cache.changed(using=self.db)
        return rows


class FleetSettings(models.Model):
    """The single settings row (id = 1), with the legacy system's defaults."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    global_daily_target = MoneyField(default=Decimal("3000.00"))
    global_fare_percentage = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("50.00")
    )
    target_sharing = models.BooleanField(default=True)
    instant_payouts = models.BooleanField(default=False)
    operating_hours_start = models.TimeField(default=dt.time(6, 0))
    operating_hours_end = models.TimeField(
        default=dt.time(0, 0), help_text="Day close; 00:00 means midnight at the end of the day."
    )
    bonus_enabled = models.BooleanField(default=False)
    bonus_amount = MoneyField(default=Decimal("0.00"))
    alert_recipients = models.TextField(
        blank=True, help_text="Comma-separated emails, in addition to TUKTUK_ALERT_EMAILS."
    )
    discrepancy_review_threshold = MoneyField(default=Decimal("1000.00"))
    # Driver SMS (tuktuk.backoffice.sms; docs/driver-portal-and-sms.md). Templates name their
    # values in braces; the placeholders each message knows are listed in its help text.
    sms_fare_credited = models.BooleanField(
        "SMS on every fare",
        default=False,
        help_text="Text the driver on every fare credited. Off by default: every SMS costs money.",
    )
    sms_reminder_times = models.CharField(
        "target reminder times",
        max_length=100,
        default="13:00,18:00,22:00",
        blank=True,
        validators=[validate_times_of_day],
        help_text="Comma-separated HH:MM (local time): drivers below target are reminded then. "
        "Empty: no reminders.",
    )
    sms_template_fare_credited = models.TextField(
        default=SMS_TEMPLATE_FARE_CREDITED,
        help_text="{amount} {time} {vehicle} {share} {balance} {target} {left} {trans_id}",
    )
    sms_template_payout_sent = models.TextField(
        default=SMS_TEMPLATE_PAYOUT_SENT, help_text="{amount} {receipt} {phone_tail}"
    )
    sms_template_reminder = models.TextField(
        default=SMS_TEMPLATE_REMINDER, help_text="{time} {balance} {target} {left} {name}"
    )
    sms_template_day_close = models.TextField(
        default=SMS_TEMPLATE_DAY_CLOSE,
        help_text="{day} {closing} {target} {result} {carried_over} {name}",
    )

    objects = FleetSettingsQuerySet.as_manager()

    class Meta:
        verbose_name = "fleet settings"
        verbose_name_plural = "fleet settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="fleetsettings_single_row"),
            models.CheckConstraint(
                condition=Q(global_daily_target__gt=0), name="fleetsettings_target_positive"
            ),
            models.CheckConstraint(
                condition=Q(global_fare_percentage__gte=0, global_fare_percentage__lte=100),
                name="fleetsettings_percentage_0_100",
            ),
            models.CheckConstraint(
                condition=Q(bonus_amount__gte=0), name="fleetsettings_bonus_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(discrepancy_review_threshold__gte=0),
                name="fleetsettings_threshold_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return "Fleet settings"

    @classmethod
    def load(cls) -> FleetSettings:
        """The settings, read through this process's cache (fleet.settings_cache): a change
        made here is seen by the next load once it commits; one made by another process,
        within TUKTUK_SETTINGS_CACHE_SECONDS. Each call returns its own copy: changing it
        (and saving it) never changes what other callers get."""
        return settings_cache.get(cls._read, seconds=settings.FLEET_SETTINGS_CACHE_SECONDS)

    @classmethod
    def _read(cls) -> FleetSettings:
        settings_row, _ = cls.objects.get_or_create(id=cls.SINGLETON_ID)
        return settings_row


@receiver([post_save, post_delete], sender=FleetSettings, dispatch_uid="fleet_settings_changed")
def _fleet_settings_changed(sender: type[FleetSettings], using: str, **kwargs: Any) -> None:
    settings_cache.changed(using=using)


class VehicleStatus(models.TextChoices):
    """The legacy vehicle statuses. Available, Charging, Maintenance and Offline are set by an
    operator; Assigned and Subbed are read off the assignments (fleet.assignments)."""

    AVAILABLE = "Available", "Available"
    ASSIGNED = "Assigned", "Assigned"
    SUBBED = "Subbed", "Subbed"
    CHARGING = "Charging", "Charging"
    MAINTENANCE = "Maintenance", "Maintenance"
    OFFLINE = "Offline", "Offline"


OPERATOR_STATUSES = [
    VehicleStatus.AVAILABLE,
    VehicleStatus.CHARGING,
    VehicleStatus.MAINTENANCE,
    VehicleStatus.OFFLINE,
]
OUT_OF_SERVICE = [VehicleStatus.CHARGING, VehicleStatus.MAINTENANCE, VehicleStatus.OFFLINE]


class Vehicle(models.Model):
    vehicle_id = models.CharField(max_length=32, unique=True)
    # Stored trimmed and upper-cased so the unique index is case-insensitive on every database.
    mpesa_account = models.CharField(
        max_length=32, unique=True, help_text="Account number passengers type at the paybill."
    )
    is_active = models.BooleanField(default=True)
    status = models.CharField(
        max_length=12,
        choices=[(s.value, s.label) for s in OPERATOR_STATUSES],
        default=VehicleStatus.AVAILABLE,
        db_default=VehicleStatus.AVAILABLE,
        help_text="Set by an operator; Assigned/Subbed come from the assignments.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["vehicle_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=OPERATOR_STATUSES), name="vehicle_status_operator_set"
            ),
            models.CheckConstraint(
                condition=Exact(Upper(Trim("mpesa_account")), models.F("mpesa_account")),
                name="vehicle_account_canonical",
            ),
            models.CheckConstraint(
                condition=GreaterThanOrEqual(Length(Trim("mpesa_account")), 1),
                name="vehicle_account_not_blank",
            ),
            models.CheckConstraint(
                condition=GreaterThanOrEqual(Length(Trim("vehicle_id")), 1),
                name="vehicle_id_not_blank",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vehicle_id} ({self.mpesa_account})"

    def save(self, *args: object, **kwargs: object) -> None:
        self.mpesa_account = self.canonical_account(self.mpesa_account)
        self.vehicle_id = self.vehicle_id.strip()
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def canonical_account(raw: str) -> str:
        return str(raw or "").strip().upper()

    def clean(self) -> None:
        account = self.canonical_account(self.mpesa_account)
        if Driver.objects.filter(account_alias=account).exists():
            raise ValidationError({"mpesa_account": f"{account} is a driver's own account"})


class Driver(models.Model):
    driver_id = models.CharField(max_length=10, unique=True, help_text="DRV-112001")
    name = models.CharField(max_length=120)
    mpesa_number = models.CharField(max_length=12, help_text="2547XXXXXXXX or 2541XXXXXXXX")
    # One vehicle per driver and one driver per vehicle.
    vehicle = models.OneToOneField(
        Vehicle, null=True, blank=True, on_delete=models.PROTECT, related_name="driver"
    )
    daily_target = MoneyField(
        null=True, blank=True, help_text="Empty or 0: the global daily target."
    )
    fare_percentage = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Empty or 0: the global fare percentage.",
    )
    target_sharing = models.CharField(
        max_length=16, choices=Override.choices, default=Override.FOLLOW_GLOBAL
    )
    instant_payout = models.CharField(
        max_length=16, choices=Override.choices, default=Override.FOLLOW_GLOBAL
    )
    # Cached balance: only ever changed through the ledger (posting, day close, fix).
    current_balance = MoneyField(default=Decimal("0.00"))
    left_to_target = MoneyField(default=Decimal("0.00"))
    # The business day that current_balance belongs to; a posting on a later day rolls it.
    balance_day = models.DateField(null=True, blank=True)
    consecutive_misses = models.PositiveIntegerField(default=0)
    flagged_for_review = models.BooleanField(default=False)
    # False once terminated: nothing posts to the driver any more (ledger.deposits).
    is_active = models.BooleanField(default=True)
    # A second account reference that means "this driver paying the fleet", for ids fleets
    # already printed on stickers (the legacy D112001). Canonical: trimmed, upper case.
    account_alias = models.CharField(
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        help_text="Also accepted as this driver's own account (e.g. the legacy D112001).",
    )
    terminated_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # A substitute covers vehicles while their regular drivers are off (issue 11): their own
    # id, number, target and percentage; fares always split by percentage, no carried debt.
    is_substitute = models.BooleanField(default=False, db_default=False)
    # 0 = Monday … 6 = Sunday; the roster generator marks these days off.
    preferred_day_off = models.PositiveSmallIntegerField(null=True, blank=True)
    # The driver asked for no notifications by SMS (fares, payouts, reminders, day closes,
    # broadcasts); a one-time login code the driver asks for is still sent.
    sms_opt_out = models.BooleanField("no SMS", default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["driver_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(driver_id__startswith="DRV-") & Exact(Length("driver_id"), 10),  # type: ignore[arg-type]  # Q combined with a Lookup: stubs say Combinable
                name="driver_id_format",
            ),
            models.CheckConstraint(
                condition=(Q(mpesa_number__startswith="2547") | Q(mpesa_number__startswith="2541"))  # type: ignore[arg-type]  # Q combined with a Lookup: stubs say Combinable
                & Exact(Length("mpesa_number"), 12),
                name="driver_mpesa_number_canonical",
            ),
            models.CheckConstraint(
                condition=Q(daily_target__isnull=True) | Q(daily_target__gte=0),
                name="driver_target_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(fare_percentage__isnull=True)
                | Q(fare_percentage__gte=0, fare_percentage__lte=100),
                name="driver_percentage_0_100",
            ),
            models.CheckConstraint(
                condition=Q(left_to_target__gte=0), name="driver_left_to_target_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(target_sharing__in=Override.values), name="driver_sharing_choice"
            ),
            models.CheckConstraint(
                condition=Q(instant_payout__in=Override.values), name="driver_payout_choice"
            ),
            models.CheckConstraint(
                condition=Q(account_alias__isnull=True)  # type: ignore[arg-type]  # Q combined with a Lookup: stubs say Combinable
                | Exact(Upper(Trim("account_alias")), models.F("account_alias")),
                name="driver_alias_canonical",
            ),
            # Only a terminated driver is archived; an active one is never terminated.
            models.CheckConstraint(
                condition=Q(archived_at__isnull=True) | Q(terminated_at__isnull=False),
                name="driver_archived_means_terminated",
            ),
            models.CheckConstraint(
                condition=Q(terminated_at__isnull=True) | Q(is_active=False),
                name="driver_terminated_is_inactive",
            ),
            models.CheckConstraint(
                condition=Q(preferred_day_off__isnull=True) | Q(preferred_day_off__lte=6),
                name="driver_day_off_weekday",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.driver_id} {self.name}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.account_alias = Vehicle.canonical_account(self.account_alias or "") or None
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self) -> None:
        """An alias must mean this driver and nothing else: not a vehicle's account (that is
        a fare), not a driver id (that is the driver's own)."""
        alias = Vehicle.canonical_account(self.account_alias or "")
        if not alias:
            return
        if alias.startswith("DRV-"):
            raise ValidationError({"account_alias": "a driver id is already its driver's own"})
        if Vehicle.objects.filter(mpesa_account=alias).exists():
            raise ValidationError({"account_alias": f"{alias} is a vehicle's account number"})

    @property
    def status(self) -> str:
        if self.archived_at is not None:
            return "archived"
        if self.terminated_at is not None:
            return "terminated"
        return "active" if self.is_active else "inactive"

    def effective_target(self, fleet: FleetSettings) -> Decimal:
        return self.daily_target if self.daily_target else fleet.global_daily_target

    def effective_percentage(self, fleet: FleetSettings) -> Decimal:
        return self.fare_percentage if self.fare_percentage else fleet.global_fare_percentage

    def effective_sharing(self, fleet: FleetSettings) -> bool:
        # Substitutes always split by percentage and carry no debt (legacy: no rollover).
        if self.is_substitute:
            return False
        return resolve_override(self.target_sharing, fleet.target_sharing)

    def effective_instant_payout(self, fleet: FleetSettings) -> bool:
        return resolve_override(self.instant_payout, fleet.instant_payouts)


class VehicleStatusChange(models.Model):
    """History of a vehicle's operator-set status: who, when, why."""

    vehicle = models.ForeignKey(Vehicle, on_delete=models.PROTECT, related_name="status_changes")
    old_status = models.CharField(max_length=12)
    new_status = models.CharField(max_length=12)
    reason = models.TextField()
    changed_by = models.CharField(max_length=150)
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.vehicle_id}: {self.old_status} → {self.new_status}"


class Assignment(models.Model):
    """Who drives a vehicle from when to when. A regular assignment with no start has held
    since before any history was kept (an imported or demo fleet); no end: still running. A
    substitute's assignment covers a range while the regular driver is off, and wins over the
    regular one inside it."""

    vehicle = models.ForeignKey(Vehicle, on_delete=models.PROTECT, related_name="assignments")
    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="assignments")
    substitute = models.BooleanField(default=False)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    ended_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["vehicle_id", "starts_at", "id"]
        indexes = [
            models.Index(fields=["vehicle", "ends_at"]),
            models.Index(fields=["driver", "ends_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True)
                | Q(ends_at__isnull=True)
                | Q(ends_at__gt=models.F("starts_at")),
                name="assignment_ends_after_it_starts",
            ),
            models.CheckConstraint(
                condition=Q(substitute=False) | Q(starts_at__isnull=False, ends_at__isnull=False),
                name="assignment_substitute_has_a_range",
            ),
        ]

    def __str__(self) -> str:
        # Read by operators (an overlap error names it): ids and Nairobi times, not keys.
        def local(moment: dt.datetime | None, empty: str) -> str:
            return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}" if moment else empty

        kind = "substitute cover" if self.substitute else "assignment"
        return (
            f"{kind} of {self.vehicle.vehicle_id} to {self.driver.driver_id} "
            f"{local(self.starts_at, 'from the start')}–{local(self.ends_at, 'open')}"
        )


class RosterPeriod(models.Model):
    """A stretch of days an operator rostered (generated from preferred days off, then
    edited day by day)."""

    starts_on = models.DateField()
    ends_on = models.DateField()
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_on"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=models.F("starts_on")), name="roster_period_order"
            ),
        ]

    def __str__(self) -> str:
        return f"roster {self.starts_on}..{self.ends_on}"


class DayOff(models.Model):
    """A driver's scheduled day off: the day close records no miss and carries no debt."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="days_off")
    day = models.DateField()
    period = models.ForeignKey(
        RosterPeriod, null=True, blank=True, on_delete=models.PROTECT, related_name="days_off"
    )
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["day", "driver_id"]
        constraints = [models.UniqueConstraint(fields=["driver", "day"], name="day_off_once")]

    def __str__(self) -> str:
        return f"{self.driver_id} off on {self.day}"
