"""The legacy app's documents, one Django form per doctype: the cells as Frappe writes them
(Currency as 2500.0 or 1566.666666667, Check as 1/0, Time as 6:00:00, Select options in any
case), each cleaned into a value TukTuk Ledger keeps or refused with a reason an operator can
act on. Used by backoffice.legacy_import; the fields are the legacy doctypes' field names."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from tuktuk.core.clock import aware
from tuktuk.core.money import MONEY_FIELD_LIMIT
from tuktuk.fleet.models import Override, Vehicle, VehicleStatus
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn
from tuktuk.ledger.models import DepositEntryKind, TransactionType

LEGACY_TRANSACTION_TYPES = {
    "Payment": TransactionType.PAYMENT,
    "Adjustment": TransactionType.ADJUSTMENT,
    "Driver Repayment": TransactionType.DRIVER_REPAYMENT,
    "Target Reduction/Deposit Payment": TransactionType.SELF_PAYMENT,
}
WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
REGULAR_ID = re.compile(r"^DRV-[0-9]{6}$")
SUBSTITUTE_ID = re.compile(r"^SUB-([0-9]{6})$")


class TextCell(forms.CharField):
    def __init__(self, *, required: bool = False, max_length: int | None = 140) -> None:
        super().__init__(required=required, max_length=max_length, strip=True)
        self.error_messages["required"] = "required, but empty"
        self.error_messages["max_length"] = "longer than %(limit_value)d characters"


class AmountCell(forms.Field):
    """A Currency or Percent cell: 2500, 2500.0, 1566.666666667 (kept exact here: money is
    rounded to cents where it is written, and the report says so)."""

    _NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")

    def to_python(self, value: Any) -> Decimal | None:
        text = str(value or "").strip()
        if not text:
            return None
        if not self._NUMBER.match(text):
            raise ValidationError(f"{text!r} is not a number")
        number = Decimal(text)
        if abs(number) >= MONEY_FIELD_LIMIT:
            raise ValidationError(f"{text!r} is too large")
        return number


class IntCell(forms.Field):
    def to_python(self, value: Any) -> int | None:
        text = str(value or "").strip()
        if not text:
            return None
        if not re.fullmatch(r"[0-9]{1,9}(\.0+)?", text):
            raise ValidationError(f"{text!r} is not a whole number of 0 or more")
        return int(Decimal(text))


class CheckCell(forms.Field):
    def to_python(self, value: Any) -> bool | None:
        text = str(value or "").strip().lower()
        if not text:
            return None
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no"):
            return False
        raise ValidationError(f"{text!r} is not 0 or 1")


class ChoiceCell(forms.Field):
    """One of the legacy Select options, in any case; empty: None."""

    def __init__(self, options: list[str], *, required: bool = False) -> None:
        super().__init__(required=required)
        self.options = {option.lower(): option for option in options}
        self.error_messages["required"] = "required, but empty"

    def to_python(self, value: Any) -> str | None:
        text = str(value or "").strip()
        if not text:
            return None
        if text.lower() not in self.options:
            raise ValidationError(f"{text!r} is not one of: {', '.join(self.options.values())}")
        return self.options[text.lower()]


class TimeCell(forms.Field):
    """Frappe's Time: 06:00:00, 6:00:00 (a timedelta's text), 06:00."""

    def to_python(self, value: Any) -> dt.time | None:
        text = str(value or "").strip()
        if not text:
            return None
        match = re.fullmatch(r"([0-9]{1,2}):([0-9]{2})(:([0-9]{2})(\.[0-9]+)?)?", text)
        if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValidationError(f"{text!r} is not a time of day (HH:MM:SS)")
        return dt.time(int(match.group(1)), int(match.group(2)), int(match.group(4) or 0))


class DateCell(forms.Field):
    def to_python(self, value: Any) -> dt.date | None:
        text = str(value or "").strip()
        if not text:
            return None
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            raise ValidationError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class DateTimeCell(forms.Field):
    """A Frappe Datetime (site time, as TukTuk Ledger's TUKTUK_TIME_ZONE): 2025-12-07
    06:00:00[.ffffff], or with a T."""

    def __init__(self, *, required: bool = False) -> None:
        super().__init__(required=required)
        self.error_messages["required"] = "required, but empty"

    def to_python(self, value: Any) -> dt.datetime | None:
        text = str(value or "").strip()
        if not text:
            return None
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                f"{text!r} is not a date and time (YYYY-MM-DD HH:MM:SS)"
            ) from None
        return moment if timezone.is_aware(moment) else aware(moment)


class SettingsForm(forms.Form):
    global_daily_target = AmountCell(required=False)
    global_fare_percentage = AmountCell(required=False)
    enable_target_sharing = CheckCell(required=False)
    instant_payouts_enabled = CheckCell(required=False)
    operating_hours_start = TimeCell(required=False)
    operating_hours_end = TimeCell(required=False)
    bonus_enabled = CheckCell(required=False)
    bonus_amount = AmountCell(required=False)

    def clean_global_daily_target(self) -> Decimal | None:
        return _positive(self.cleaned_data["global_daily_target"])

    def clean_global_fare_percentage(self) -> Decimal | None:
        return _percentage(self.cleaned_data["global_fare_percentage"])

    def clean_bonus_amount(self) -> Decimal | None:
        return _not_negative(self.cleaned_data["bonus_amount"])


class VehicleForm(forms.Form):
    name = TextCell(required=True, max_length=32)
    mpesa_account = TextCell(max_length=32)
    status = ChoiceCell([status.value for status in VehicleStatus])

    def clean_mpesa_account(self) -> str:
        account = Vehicle.canonical_account(self.cleaned_data["mpesa_account"])
        if not account:
            raise ValidationError("empty: the account passengers pay to is required")
        return account


class _PersonForm(forms.Form):
    daily_target = AmountCell(required=False)
    preferred_day_off = ChoiceCell([*(d.title() for d in WEEKDAYS), "No Preference"])

    def clean_daily_target(self) -> Decimal | None:
        return _not_negative(self.cleaned_data["daily_target"])

    def clean_preferred_day_off(self) -> int | None:
        value = self.cleaned_data["preferred_day_off"]
        return WEEKDAYS.index(value.upper()) if value and value.upper() in WEEKDAYS else None

    def _number(self, field_name: str) -> str:
        value = self.cleaned_data.get(field_name) or ""
        try:
            return normalize_msisdn(value)
        except InvalidPhoneNumber as exc:
            raise ValidationError(str(exc)) from None


class DriverForm(_PersonForm):
    name = TextCell(required=True, max_length=20)
    driver_name = TextCell(max_length=120)
    driver_first_name = TextCell(max_length=60)
    driver_last_name = TextCell(max_length=60)
    mpesa_number = TextCell(required=True, max_length=40)
    assigned_tuktuk = TextCell(max_length=32)
    target_sharing_override = ChoiceCell(list(Override.values))
    instant_payout_override = ChoiceCell(list(Override.values))
    is_rollover_target = CheckCell(required=False)
    fare_percentage = AmountCell(required=False)
    current_balance = AmountCell(required=False)
    consecutive_misses = IntCell(required=False)
    deposit_required = CheckCell(required=False)
    initial_deposit_amount = AmountCell(required=False)
    current_deposit_balance = AmountCell(required=False)
    allow_target_deduction_from_deposit = CheckCell(required=False)
    exit_date = DateCell(required=False)
    sunny_id = TextCell(max_length=32)

    def clean_name(self) -> str:
        value = str(self.cleaned_data["name"]).upper()
        if not REGULAR_ID.match(value):
            raise ValidationError(
                f"{value!r} is not a driver id TukTuk Ledger keeps (DRV- and six digits)"
            )
        return value

    def clean_mpesa_number(self) -> str:
        return self._number("mpesa_number")

    def clean_fare_percentage(self) -> Decimal | None:
        return _percentage(self.cleaned_data["fare_percentage"])

    def clean_initial_deposit_amount(self) -> Decimal | None:
        return _not_negative(self.cleaned_data["initial_deposit_amount"])

    def clean_current_deposit_balance(self) -> Decimal | None:
        return _not_negative(self.cleaned_data["current_deposit_balance"])

    def clean_sunny_id(self) -> str | None:
        alias = Vehicle.canonical_account(self.cleaned_data["sunny_id"])
        if alias.startswith("DRV-"):
            raise ValidationError(f"{alias!r}: a driver id is already its driver's own account")
        return alias or None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        full = " ".join(
            str(data.get(part) or "") for part in ("driver_first_name", "driver_last_name")
        ).strip()
        data["driver_name"] = " ".join(str(data.get("driver_name") or full).split())
        if not data["driver_name"] and "driver_name" not in self.errors:
            self.add_error("driver_name", "empty, and no first or last name either")
        return data


class SubstituteForm(_PersonForm):
    name = TextCell(required=True, max_length=20)
    first_name = TextCell(max_length=60)
    last_name = TextCell(max_length=60)
    mpesa_number = TextCell(max_length=40)
    phone_number = TextCell(max_length=40)
    status = ChoiceCell(["Active", "Inactive", "On Assignment"])
    fare_percentage_to_driver = AmountCell(required=False)
    target_balance = AmountCell(required=False)

    def clean_name(self) -> str:
        value = str(self.cleaned_data["name"]).upper()
        match = SUBSTITUTE_ID.match(value)
        if match is None:
            raise ValidationError(f"{value!r} is not a substitute id like SUB-212001")
        return value

    def clean_fare_percentage_to_driver(self) -> Decimal | None:
        return _percentage(self.cleaned_data["fare_percentage_to_driver"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        name = " ".join(f"{data.get('first_name') or ''} {data.get('last_name') or ''}".split())
        if not name:
            self.add_error("first_name", "empty, and no last name either")
        data["full_name"] = name
        field_name = "mpesa_number" if data.get("mpesa_number") else "phone_number"
        if not data.get(field_name):
            self.add_error("mpesa_number", "required, but empty")
        elif field_name not in self.errors:
            try:
                data["mpesa_number"] = self._number(field_name)
            except ValidationError as exc:
                self.add_error(field_name, exc)
        return data


class TransactionForm(forms.Form):
    name = TextCell(max_length=140)
    transaction_id = TextCell(required=True, max_length=64)
    transaction_type = ChoiceCell(list(LEGACY_TRANSACTION_TYPES))
    tuktuk = TextCell(max_length=32)
    driver = TextCell(max_length=20)
    substitute_driver = TextCell(max_length=20)
    amount = AmountCell(required=True)
    driver_share = AmountCell(required=False)
    target_contribution = AmountCell(required=False)
    customer_phone = TextCell(max_length=64)
    timestamp = DateTimeCell(required=True)
    payment_status = ChoiceCell(["Pending", "Completed", "Failed"])
    b2c_payment_sent = CheckCell(required=False)

    def clean_transaction_id(self) -> str:
        value = str(self.cleaned_data["transaction_id"])
        if re.search(r"\s", value):
            raise ValidationError(f"{value!r} contains spaces: not an M-Pesa receipt number")
        return value


class DepositForm(forms.Form):
    parent = TextCell(required=True, max_length=20)
    idx = IntCell(required=False)
    transaction_date = DateCell(required=False)
    transaction_type = ChoiceCell(list(DepositEntryKind.values), required=True)
    amount = AmountCell(required=True)
    transaction_reference = TextCell(max_length=140)
    balance_after_transaction = AmountCell(required=False)
    description = TextCell(max_length=None)
    approved_by = TextCell(max_length=140)

    def clean_parent(self) -> str:
        return str(self.cleaned_data["parent"]).upper()


def _positive(value: Decimal | None) -> Decimal | None:
    if value is not None and value <= 0:
        raise ValidationError(f"{value} must be more than 0")
    return value


def _not_negative(value: Decimal | None) -> Decimal | None:
    if value is not None and value < 0:
        raise ValidationError(f"{value} must not be negative")
    return value


def _percentage(value: Decimal | None) -> Decimal | None:
    if value is not None and not 0 <= value <= 100:
        raise ValidationError(f"{value} is not between 0 and 100")
    return value
