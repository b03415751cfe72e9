"""How drivers log in (AUTHENTICATION_BACKENDS in settings.py), and the lockout around it.

- `PortalLockoutBackend` is django-axes' backend, first in the list, limited to driver logins
  (credentials with `msisdn`): a number with too many failed PINs or codes in a row is refused
  before any PIN is checked, until the cool-off passes or an operator unlocks it. Operators'
  logins (username and password) are left to Django as before.
- `OperatorBackend` is Django's ModelBackend for operators, which never lets a driver's login
  user in by username and PIN (that would be a way around the lockout).
- `DriverPinBackend` checks a driver's M-Pesa number with the PIN (`password`) or with a
  one-time code sent by SMS (`sms_token`).
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import AbstractBaseUser, User
from django.http import HttpRequest
from django.utils import timezone

from tuktuk.backoffice.portal.models import DriverAccount, LoginCode
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn

# Keyword of the driver's number in authenticate(); its presence marks a driver login.
MSISDN = "msisdn"


def lockout_username(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str | None:
    """What django-axes counts failures against: the driver's number, normalised."""
    raw = (credentials or {}).get(MSISDN)
    if raw is None and request is not None:
        raw = request.POST.get("phone")
    if raw is None:
        return (credentials or {}).get("username")
    try:
        return normalize_msisdn(str(raw))
    except InvalidPhoneNumber:
        return str(raw)[:64]


def not_a_driver_login(request: HttpRequest | None, credentials: dict[str, Any] | None) -> bool:
    """django-axes' whitelist: everything but a driver's login is left alone."""
    return not (credentials and MSISDN in credentials)


class PortalLockoutBackend(AxesStandaloneBackend):
    def authenticate(self, request: HttpRequest | None, *args: Any, **credentials: Any) -> None:
        if MSISDN not in credentials:
            return None  # not a driver login (e.g. an operator, or a test's Client.login)
        super().authenticate(request, *args, **credentials)  # raises when locked out
        return None


class OperatorBackend(ModelBackend):
    def user_can_authenticate(self, user: Any) -> bool:
        is_driver = DriverAccount.objects.filter(user_id=user.pk).exists()
        return bool(super().user_can_authenticate(user)) and not is_driver


def _driver_accounts(msisdn: str) -> list[DriverAccount]:
    return list(
        DriverAccount.objects.filter(
            driver__mpesa_number=msisdn, driver__archived_at__isnull=True, user__is_active=True
        ).select_related("user", "driver")
    )


def code_redeem(*, account: DriverAccount, code: str) -> bool:
    """True once for a valid code: the latest unused, unexpired code of the account (the
    compare-and-swap on used_at spends it exactly once)."""
    latest = (
        LoginCode.objects.filter(
            account=account, used_at__isnull=True, expires_at__gt=timezone.now()
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if latest is None or not check_password(code, latest.code_hash):
        return False
    return bool(
        LoginCode.objects.filter(pk=latest.pk, used_at__isnull=True).update(used_at=timezone.now())
    )


class DriverPinBackend(BaseBackend):
    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        msisdn: str | None = None,
        password: str | None = None,
        sms_token: str | None = None,
        **kwargs: Any,
    ) -> AbstractBaseUser | None:
        if msisdn is None or (password is None and sms_token is None):
            return None
        accounts = _driver_accounts(msisdn)
        if not accounts:
            # As long as a real check, so the answer's time does not tell whose number it is.
            get_user_model()().set_password(password or sms_token)
            return None
        for account in accounts:
            user = account.user
            if (
                password is not None
                and user.has_usable_password()
                and user.check_password(password)
            ):
                return user
            if sms_token is not None and code_redeem(account=account, code=sms_token):
                return user
        return None

    def get_user(self, user_id: int) -> User | None:
        account = (
            DriverAccount.objects.filter(
                user_id=user_id, user__is_active=True, driver__archived_at__isnull=True
            )
            .select_related("user")
            .first()
        )
        return account.user if account else None
