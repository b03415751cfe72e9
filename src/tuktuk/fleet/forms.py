"""Forms for fleet data typed by people: one line of a fleet spreadsheet (the CSV import).

The fields come from the model fields (lengths, digits, decimal places), so these rules are
stated once, in the models; what a form adds is reading cells as spreadsheets hold them and
saying what is wrong with a cell in words an operator can act on.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core import validators
from django.core.exceptions import ValidationError

from tuktuk.fleet.models import Driver, Vehicle
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn
from tuktuk.fleet.services import driver_id_is_valid

NOT_UTF8 = (
    "not UTF-8 text (byte 0x%(byte)02X); save the spreadsheet as 'CSV UTF-8' and import it again"
)
# Plain numbers as operators type them: 3000, 3000.50, 3,000.50 (no exponents, no NaN); a sign
# is read only to say why a negative value is refused.
_NUMBER = re.compile(r"^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")


def undecodable_byte(text: str) -> int | None:
    """The first byte that was not UTF-8, kept by the surrogateescape error handler."""
    for char in text:
        if "\udc80" <= char <= "\udcff":
            return ord(char) - 0xDC00
    return None


class CellMixin:
    """A form field for one spreadsheet cell: stripped, one reason per cell, quoting it.

    Messages may use %(cell)r, the cell as typed (stripped). A byte that was not UTF-8 is
    reported before anything else, since nothing else about such a cell can be trusted.
    """

    def clean(self, value: Any) -> Any:
        text = (value or "").strip()
        byte = undecodable_byte(text)
        if byte is not None:
            raise ValidationError(NOT_UTF8, code="not_utf8", params={"byte": byte})
        try:
            return super().clean(text)  # type: ignore[misc]
        except ValidationError as error:
            first = error.error_list[0]
            raise ValidationError(
                first.message, code=first.code, params={**(first.params or {}), "cell": text}
            ) from None


class TextCell(CellMixin, forms.CharField):
    default_error_messages = {
        "required": "required, but empty",
        "max_length": "longer than %(limit_value)d characters",
        "null_characters_not_allowed": "contains a NUL character",
    }


class NumberCell(CellMixin, forms.DecimalField):
    """A decimal as spreadsheets show it: 3000, 2500.50, 3,000.50; `suffix` may follow (%).

    A cell gets the first reason that applies, in this order: not a number, more decimal places
    than the model field keeps, out of the range, more digits than the model field holds.
    """

    def __init__(self, *, suffix: str = "", thousands: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suffix = suffix
        self.thousands = thousands
        # The places alone first; the model field's full DecimalValidator (digits) stays last.
        self.validators.insert(0, validators.DecimalValidator(None, self.decimal_places))

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]  # stubs: DecimalField < IntegerField
        text = str(value or "").strip()
        if self.suffix:
            text = text.removesuffix(self.suffix).strip()
        if not text:
            return None
        if not _NUMBER.match(text) or ("," in text and not self.thousands):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return Decimal(text.replace(",", ""))


def _phone_reason(raw: str, exc: InvalidPhoneNumber) -> str:
    """What the spreadsheet probably did to the number, else what phone.py says."""
    digits = re.sub(r"[\s\-().+]", "", raw)
    if re.fullmatch(r"[17]\d{8}", digits):
        return (
            f"{raw!r} has 9 digits: the spreadsheet probably dropped the leading 0; format the "
            "column as Text and type 07XXXXXXXX or 2547XXXXXXXX"
        )
    if re.fullmatch(r"\d+(\.\d+)?[eE]\+?\d+", digits):
        return (
            f"{raw!r} was turned into scientific notation by the spreadsheet; format the column "
            "as Text and type the number again"
        )
    return str(exc)


def _model_field(model: type[Any], name: str, form_class: type[forms.Field], **kwargs: Any) -> Any:
    return model._meta.get_field(name).formfield(form_class=form_class, **kwargs)


class FleetRowForm(forms.Form):
    """One data line of a fleet CSV, a field per column (named as the column, in order).

    Cleaned values are normalised: the driver id upper-cased, the name's spaces collapsed, the
    M-Pesa number in Daraja's 12-digit form, the account canonical (as Vehicle stores it),
    amounts as Decimals with two places. An empty optional cell is None.
    """

    driver_id = TextCell(required=False)
    driver_name = _model_field(Driver, "name", TextCell)
    # Not the model field: the cell may be written +254 712-000-001, longer than the stored form.
    mpesa_number = TextCell()
    vehicle_id = _model_field(Vehicle, "vehicle_id", TextCell)
    mpesa_account = _model_field(Vehicle, "mpesa_account", TextCell)
    daily_target = _model_field(
        Driver,
        "daily_target",
        NumberCell,
        # More than 0: 0 is what the admin accepts for "the global target"; here it is empty.
        min_value=Decimal("0.01"),
        error_messages={
            "invalid": "%(cell)r is not an amount in shillings (e.g. 3000 or 2500.50)",
            "max_decimal_places": "%(cell)r has more than %(max)s decimal places",
            "max_digits": "%(cell)r is too large",
            "max_whole_digits": "%(cell)r is too large",
            "min_value": "%(cell)r must be more than 0 (leave it empty to use the global target)",
        },
    )
    fare_percentage = _model_field(
        Driver,
        "fare_percentage",
        NumberCell,
        suffix="%",
        thousands=False,  # 52,5 is a decimal comma, not a thousands separator
        min_value=Decimal(0),
        max_value=Decimal(100),
        error_messages={
            "invalid": "%(cell)r is not a percentage (a number from 0 to 100, e.g. 50 or 52.5)",
            "max_decimal_places": "%(cell)r has more than %(max)s decimal places",
            "max_digits": "%(cell)r is not between 0 and 100",
            "max_whole_digits": "%(cell)r is not between 0 and 100",
            "min_value": "%(cell)r is not between 0 and 100",
            "max_value": "%(cell)r is not between 0 and 100",
        },
    )

    def clean_driver_id(self) -> str | None:
        value: str = self.cleaned_data["driver_id"]
        if not value:
            return None
        if not driver_id_is_valid(value.upper()):
            raise ValidationError(f"{value!r} is not a driver id like DRV-112001")
        return value.upper()

    def clean_driver_name(self) -> str:
        return " ".join(self.cleaned_data["driver_name"].split())

    def clean_mpesa_number(self) -> str:
        value: str = self.cleaned_data["mpesa_number"]
        try:
            return normalize_msisdn(value)
        except InvalidPhoneNumber as exc:
            raise ValidationError(_phone_reason(value, exc)) from None

    def clean_mpesa_account(self) -> str:
        return Vehicle.canonical_account(self.cleaned_data["mpesa_account"])

    def clean_daily_target(self) -> Decimal | None:
        return _two_places(self.cleaned_data["daily_target"])

    def clean_fare_percentage(self) -> Decimal | None:
        return _two_places(self.cleaned_data["fare_percentage"])


def _two_places(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.01"))
