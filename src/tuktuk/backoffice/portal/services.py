"""Driver accounts, PINs, one-time login codes and problem reports: the writes of the portal.

A PIN is 4 to 6 digits, hashed by Django's password hashers (the password of the driver's own
login user). An operator may set one (the driver then chooses their own at the next login), or
send a one-time code by SMS with which the driver logs in once and chooses a PIN; the driver may
change it. Failed PINs and codes lock the number (django-axes, settings.py) until the cool-off
passes or an operator unlocks it.
"""

from __future__ import annotations

import datetime as dt
import secrets

from axes.utils import reset as axes_reset
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from tuktuk.backoffice.portal.models import DriverAccount, LoginCode, ProblemReport, ProblemState
from tuktuk.backoffice.portal.selectors import portal_today
from tuktuk.backoffice.roles import DRIVERS
from tuktuk.backoffice.sms.models import SmsKind
from tuktuk.backoffice.sms.services import sms_queue
from tuktuk.backoffice.sms.texts import login_code_text
from tuktuk.core import events
from tuktuk.core.errors import Conflict, InvalidInput, NotFound, require_reason
from tuktuk.fleet.models import Driver
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger.models import Transaction

CODE_MINUTES = 10
CODE_DIGITS = 6
# A code costs an SMS: at most one a minute and five a day per driver.
CODE_EVERY = dt.timedelta(minutes=1)
CODES_PER_DAY = 5
NOTE_MAX = 2000


def pin_check(pin: str) -> str:
    """A PIN a driver can type on any phone, and not the first one a thief would try."""
    value = str(pin or "").strip()
    if not (4 <= len(value) <= 6) or not all(c in "0123456789" for c in value):
        raise InvalidInput("the PIN must be 4 to 6 digits")
    if len(set(value)) == 1 or value in "0123456789" or value in "9876543210":
        raise InvalidInput("choose a PIN that is not all one digit or a run like 1234")
    return value


def _username(driver: Driver) -> str:
    return f"driver-{driver.driver_id.lower()}"


def driver_account_get_or_create(*, driver: Driver, actor: str) -> DriverAccount:
    """The driver's login account (no PIN yet when new)."""
    existing = DriverAccount.objects.filter(driver=driver).select_related("user").first()
    if existing is not None:
        return existing
    if driver.archived_at is not None:
        raise Conflict(f"{driver.driver_id} is archived")
    with transaction.atomic():
        user = get_user_model().objects.create_user(_username(driver), is_staff=False)
        group, _ = Group.objects.get_or_create(name=DRIVERS)
        user.groups.add(group)
        return DriverAccount.objects.create(driver=driver, user=user, created_by=actor)


def _shared_number(driver: Driver) -> bool:
    return (
        DriverAccount.objects.filter(
            driver__mpesa_number=driver.mpesa_number, driver__archived_at__isnull=True
        )
        .exclude(driver=driver)
        .exists()
    )


def driver_pin_set(*, driver_id: str, pin: str, actor: str) -> DriverAccount:
    """An operator sets a driver's PIN; the driver must choose their own at the next login."""
    value = pin_check(pin)
    driver = driver_get(ref=driver_id)
    if _shared_number(driver):
        raise Conflict(f"another driver's login uses {driver.mpesa_number}; give each their own")
    account = driver_account_get_or_create(driver=driver, actor=actor)
    _pin_store(account, value, by=actor, must_change=True)
    events.event_record(
        title=events.EventTitle.DRIVER_PIN_SET,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id}'s portal PIN set by an operator (to be changed at login)",
    )
    return account


def _pin_store(account: DriverAccount, pin: str, *, by: str, must_change: bool) -> None:
    user = account.user
    user.set_password(pin)
    user.save(update_fields=["password"])
    DriverAccount.objects.filter(pk=account.pk).update(
        pin_set_at=timezone.now(), pin_set_by=by, must_change_pin=must_change
    )
    account.refresh_from_db()


def driver_pin_change(*, account: DriverAccount, new_pin: str, current_pin: str | None) -> None:
    """The driver chooses a PIN (`current_pin` None: just logged in with a one-time code or
    the operator's PIN, in this same session)."""
    value = pin_check(new_pin)
    if current_pin is not None and not account.user.check_password(current_pin):
        raise InvalidInput("the current PIN is not right")
    if account.user.check_password(value):
        raise InvalidInput("choose a PIN different from the one you have")
    _pin_store(account, value, by="driver", must_change=False)
    events.event_record(
        title=events.EventTitle.DRIVER_PIN_CHANGED,
        driver=account.driver,
        actor=account.user.get_username(),
        message=f"{account.driver.driver_id} chose a new portal PIN",
    )


def login_code_send(*, driver: Driver, requested_by: str) -> LoginCode | None:
    """A one-time code by SMS (sent by the worker, like every SMS). None when the driver asked
    too often (the answer to the driver does not say so: it never tells whose number it is)."""
    if driver.archived_at is not None:
        return None
    account = driver_account_get_or_create(driver=driver, actor=requested_by)
    now = timezone.now()
    recent = LoginCode.objects.filter(account=account, created_at__gt=now - dt.timedelta(days=1))
    if recent.filter(created_at__gt=now - CODE_EVERY).exists() or recent.count() >= CODES_PER_DAY:
        return None
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    expires = now + dt.timedelta(minutes=CODE_MINUTES)
    with transaction.atomic():
        login_code = LoginCode.objects.create(
            account=account,
            code_hash=make_password(code),
            requested_by=requested_by,
            expires_at=expires,
        )
        message = sms_queue(
            kind=SmsKind.LOGIN_CODE,
            driver=driver,
            phone=driver.mpesa_number,
            text=login_code_text(code, minutes=CODE_MINUTES),
            key=f"login-code:{login_code.pk}",
            actor=requested_by,
            expires_at=expires,
        )
        LoginCode.objects.filter(pk=login_code.pk).update(sms_id=message.pk if message else None)
    events.event_record(
        title=events.EventTitle.DRIVER_LOGIN_CODE_SENT,
        driver=driver,
        actor=requested_by,
        message=f"one-time portal code queued for {driver.driver_id} (works {CODE_MINUTES} min)",
        data={"login_code": login_code.pk},
    )
    return login_code


def login_code_request(*, phone: str) -> None:
    """A driver asks for a code on the login page. Silent whatever happens: whether the
    number is a driver's is nobody's business but the driver's phone's."""
    try:
        msisdn = normalize_msisdn(phone)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc)) from exc
    drivers = list(Driver.objects.filter(mpesa_number=msisdn, archived_at__isnull=True))
    if len(drivers) == 1:
        login_code_send(driver=drivers[0], requested_by="driver")


def driver_unlock(*, driver_id: str, actor: str) -> int:
    """Lift the lockout of a driver's number (django-axes) before the cool-off ends."""
    driver = driver_get(ref=driver_id)
    cleared = axes_reset(username=driver.mpesa_number)
    events.event_record(
        title=events.EventTitle.DRIVER_UNLOCKED,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id}'s portal login unlocked ({cleared} failure record(s))",
    )
    return int(cleared or 0)


def problem_report_open(*, driver: Driver, note: str, trans_id: str = "") -> ProblemReport:
    """A driver's "report a problem": a case for operators with what the portal showed."""
    text = str(note or "").strip()
    if not text:
        raise InvalidInput("say what is wrong")
    if len(text) > NOTE_MAX:
        raise InvalidInput(f"at most {NOTE_MAX} characters")
    reference = str(trans_id or "").strip()
    if reference and not Transaction.objects.filter(driver=driver, trans_id=reference).exists():
        raise NotFound(f"no fare {reference} of yours")
    shown = portal_today(driver=driver)
    report = ProblemReport.objects.create(
        driver=driver,
        note=text,
        trans_id=reference,
        business_day=shown.business_day,
        balance_shown=shown.balance,
        left_to_target_shown=shown.left_to_target,
    )
    events.event_record(
        title=events.EventTitle.DRIVER_PROBLEM_REPORTED,
        level=events.EventLevel.WARNING,
        driver=driver,
        actor=f"driver {driver.driver_id}",
        message=f"problem report {report.pk}"
        + (f" about {reference}" if reference else "")
        + f": {text[:200]}",
        data={"problem_report": report.pk, "trans_id": reference},
    )
    return report


def problem_report_resolve(*, report_id: int, actor: str, resolution: str) -> ProblemReport:
    resolution = require_reason(resolution)
    report = ProblemReport.objects.filter(pk=report_id).select_related("driver").first()
    if report is None:
        raise NotFound(f"no problem report {report_id}")
    if not ProblemReport.objects.filter(pk=report_id, state=ProblemState.OPEN).update(
        state=ProblemState.RESOLVED,
        resolved_at=timezone.now(),
        resolved_by=actor,
        resolution=resolution,
    ):
        raise Conflict(f"problem report {report_id} is already resolved")
    events.event_record(
        title=events.EventTitle.DRIVER_PROBLEM_RESOLVED,
        driver=report.driver,
        actor=actor,
        message=f"problem report {report_id} resolved: {resolution}",
        data={"problem_report": report_id},
    )
    report.refresh_from_db()
    return report
