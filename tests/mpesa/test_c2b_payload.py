"""The one C2B payload builder, and what our parser reads back out of what it builds."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from tuktuk.mpesa.c2b import CallbackRejected, parse_body, payment_from_payload
from tuktuk.mpesa.c2b_payload import NAIROBI, c2b_payload, format_amount

MAXIMUM = Decimal("250000")


def test_the_daraja_shape_with_every_value_a_string() -> None:
    when = dt.datetime(2026, 11, 21, 7, 30, 59, 999_999, tzinfo=dt.UTC)
    payload = c2b_payload(
        trans_id="TL176BJ1M3",
        amount=Decimal("150"),
        account="TUK001",
        msisdn="254712345678",
        when=when,
    )
    assert payload == {
        "TransactionType": "Pay Bill",
        "TransID": "TL176BJ1M3",
        "TransTime": "20261121103059",  # Nairobi time, seconds truncated
        "TransAmount": "150.00",
        "BusinessShortCode": "600984",
        "BillRefNumber": "TUK001",
        "InvoiceNumber": "",
        "OrgAccountBalance": "49197.00",
        "ThirdPartyTransID": "",
        "MSISDN": "254712345678",
        "FirstName": "John",
        "MiddleName": "",
        "LastName": "Doe",
    }


def test_trans_time_is_nairobi_time_from_any_zone_and_now_by_default() -> None:
    new_york = dt.timezone(dt.timedelta(hours=-5))
    when = dt.datetime(2026, 12, 31, 18, 0, tzinfo=new_york)  # 2027-01-01 02:00 in Nairobi
    assert c2b_payload(trans_id="A1", amount=1, account="X", when=when)["TransTime"] == (
        "20270101020000"
    )
    # Pinned just before midnight: "now" is read once, in Nairobi, whatever the real hour.
    with time_machine.travel(dt.datetime(2026, 12, 1, 23, 59, 59, tzinfo=NAIROBI), tick=False):
        before = dt.datetime.now(NAIROBI).replace(microsecond=0)
        stamp = c2b_payload(trans_id="A2", amount=1, account="X")["TransTime"]
        after = dt.datetime.now(NAIROBI)
    built = dt.datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    assert before <= built <= after


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("150"), "150.00"),
        (Decimal("250.5"), "250.50"),
        (Decimal("0.01"), "0.01"),
        (60, "60.00"),
        ("100", "100.00"),
        ("99.99", "99.99"),
        (Decimal("1E+3"), "1000.00"),
        (Decimal("123456789012.34"), "123456789012.34"),
    ],
)
def test_amounts_are_written_exactly_with_two_decimals(
    amount: Decimal | int | str, text: str
) -> None:
    assert format_amount(amount) == text
    assert c2b_payload(trans_id="A1", amount=amount, account="X")["TransAmount"] == text


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (150.0, TypeError),
        (True, TypeError),
        (None, TypeError),
        (Decimal("10.123"), ValueError),  # never rounded to 10.12
        ("10.005", ValueError),
        (Decimal("NaN"), ValueError),
        (Decimal("Infinity"), ValueError),
        ("abc", ValueError),
        (-5, ValueError),
        (Decimal("-0"), ValueError),
        (0, ValueError),
        ("0.00", ValueError),
    ],
)
def test_amounts_that_are_not_exact_positive_shillings_are_refused(
    amount: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        c2b_payload(trans_id="A1", amount=amount, account="X")  # type: ignore[arg-type]


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        c2b_payload(trans_id="A1", amount=1, account="X", when=dt.datetime(2026, 1, 1))


def test_the_optional_fields() -> None:
    payload = c2b_payload(
        trans_id="A1",
        amount=1,
        account="X",
        first_name="Mary",
        middle_name="W",
        last_name="Njeri",
        transaction_type="Buy Goods",
        shortcode="174379",
        invoice_number="INV-1",
        org_account_balance=None,
        third_party_trans_id="3P-1",
    )
    assert payload["FirstName"] == "Mary" and payload["MiddleName"] == "W"
    assert payload["LastName"] == "Njeri" and payload["TransactionType"] == "Buy Goods"
    assert payload["BusinessShortCode"] == "174379" and payload["InvoiceNumber"] == "INV-1"
    assert payload["OrgAccountBalance"] == "" and payload["ThirdPartyTransID"] == "3P-1"
    assert (
        c2b_payload(trans_id="A1", amount=1, account="X", org_account_balance=0)[
            "OrgAccountBalance"
        ]
        == "0.00"
    )


AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=MAXIMUM, places=2)
MOMENTS = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2099, 12, 31),
    timezones=st.just(dt.UTC),
)
TRANS_IDS = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20)
ACCOUNTS = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20)


@given(trans_id=TRANS_IDS, amount=AMOUNTS, account=ACCOUNTS, when=MOMENTS, form=st.booleans())
def test_what_the_builder_sends_our_parser_reads_back(
    trans_id: str, amount: Decimal, account: str, when: dt.datetime, form: bool
) -> None:
    payload = c2b_payload(
        trans_id=trans_id,
        amount=amount,
        account=account,
        msisdn="254712345678",
        when=when,
        first_name="Mary",
        last_name="Njeri",
    )
    # Over the wire as Daraja sends it (JSON), or form-encoded as some gateways re-send it.
    if form:
        body, content_type = urlencode(payload).encode(), "application/x-www-form-urlencoded"
    else:
        body, content_type = json.dumps(payload).encode(), "application/json"
    payment = payment_from_payload(parse_body(body, content_type), maximum=MAXIMUM)
    assert payment.trans_id == trans_id
    assert payment.amount == amount and isinstance(payment.amount, Decimal)
    assert payment.account_reference == account
    assert payment.mpesa_time == when.replace(microsecond=0)  # the same instant
    assert payment.payer_msisdn == "254712345678"
    assert payment.payer_name == "Mary Njeri"


def test_the_builder_needs_no_django() -> None:
    """bench/c2b_load.py imports it in a process that never sets Django up."""
    code = (
        "import sys; from tuktuk.mpesa.c2b_payload import c2b_payload; "
        "print(c2b_payload(trans_id='A1', amount=5, account='X')['TransAmount']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},  # no DJANGO_SETTINGS_MODULE
    )
    assert done.stdout.splitlines() == ["5.00", "[]"]


@given(st.text(max_size=40))
def test_a_field_with_a_control_character_is_refused_and_any_other_text_read(name: str) -> None:
    """The rule, said once more in the plainest way: a code point below 32 anywhere in a text
    field refuses the body (a NUL or a newline in a name would end up in SMS and exports)."""
    payload = c2b_payload(trans_id="QCX0000001", amount="100", account="TUK001")
    payload["FirstName"] = name
    if any(ord(char) < 32 for char in name.strip()):
        with pytest.raises(CallbackRejected, match="FirstName contains control characters"):
            payment_from_payload(payload, maximum=Decimal("250000"))
    else:
        payment = payment_from_payload(payload, maximum=Decimal("250000"))
        assert payment.payer_name.startswith(name.strip()) or not name.strip()
