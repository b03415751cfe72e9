"""The body Daraja POSTs to our C2B validation and confirmation URLs, built in one place.

`tuktuk simulate`, the tests and bench/c2b_load.py all send what `c2b_payload` returns; the
other side of it is `tuktuk.mpesa.c2b.payment_from_payload`. Standard library only and no
Django settings, so the bench's load generator imports it without setting Django up.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

# Daraja writes TransTime in Kenyan time, whatever time zone we run in.
NAIROBI = ZoneInfo("Africa/Nairobi")
TRANS_TIME_FORMAT = "%Y%m%d%H%M%S"
SANDBOX_SHORTCODE = "600984"  # Safaricom's sandbox paybill
SANDBOX_MSISDN = "254708374149"  # Safaricom's sandbox test customer
ORG_ACCOUNT_BALANCE = Decimal("49197.00")

_CENT = Decimal("0.01")


def format_amount(amount: Decimal | int | str) -> str:
    """Shillings as Daraja writes them, "150.00": exact, two decimals, never through a float.

    A float, a non-finite or negative number, or one with more than two decimals is refused
    (ValueError/TypeError) rather than rounded: a test or a load run must send what it means.
    """
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int | str):
        raise TypeError(f"amount must be a Decimal, int or str, not {type(amount).__name__}")
    try:
        value = Decimal(amount)
        cents = value.quantize(_CENT)
    except InvalidOperation as exc:  # not a number, or too many digits to quantize
        raise ValueError(f"amount {amount!r} is not a number of shillings") from exc
    if value.is_signed():
        raise ValueError(f"amount {amount!r} is negative")
    if cents != value:
        raise ValueError(f"amount {amount!r} has more than two decimals")
    return f"{cents:f}"


def trans_time(when: dt.datetime) -> str:
    """YYYYMMDDHHMMSS in Africa/Nairobi, as Daraja's TransTime (seconds are truncated)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("when must be timezone-aware")
    return when.astimezone(NAIROBI).strftime(TRANS_TIME_FORMAT)


def c2b_payload(
    *,
    trans_id: str,
    amount: Decimal | int | str,
    account: str,
    msisdn: str = SANDBOX_MSISDN,
    when: dt.datetime | None = None,
    first_name: str = "John",
    middle_name: str = "",
    last_name: str = "Doe",
    transaction_type: str = "Pay Bill",
    shortcode: str = SANDBOX_SHORTCODE,
    invoice_number: str = "",
    org_account_balance: Decimal | int | str | None = ORG_ACCOUNT_BALANCE,
    third_party_trans_id: str = "",
) -> dict[str, str]:
    """A Daraja C2B validation/confirmation body for a Pay Bill payment, every value a string.

    `amount` is the payment in shillings (`TransAmount`, "150.00"), `account` what the
    customer typed as the account number (`BillRefNumber`), `when` the moment M-Pesa took the
    payment (default: now). A test that needs a malformed body copies this one and breaks it.
    """
    text = format_amount(amount)
    if Decimal(text) == 0:
        raise ValueError("amount must be positive: M-Pesa takes no payment of 0")
    moment = dt.datetime.now(NAIROBI) if when is None else when
    balance = "" if org_account_balance is None else format_amount(org_account_balance)
    return {
        "TransactionType": transaction_type,
        "TransID": trans_id,
        "TransTime": trans_time(moment),
        "TransAmount": text,
        "BusinessShortCode": shortcode,
        "BillRefNumber": account,
        "InvoiceNumber": invoice_number,
        "OrgAccountBalance": balance,
        "ThirdPartyTransID": third_party_trans_id,
        "MSISDN": msisdn,
        "FirstName": first_name,
        "MiddleName": middle_name,
        "LastName": last_name,
    }
