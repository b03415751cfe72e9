"""The driver portal's pages: thin views over the portal's services and selectors.

No page takes a driver id: the driver is always the one logged in (request.user's account), so
there is no id to change in a URL. The ids a page does take (a fare's TransID, a problem
report's number) are looked up among that driver's own rows only, and anything else is the
same 404 as an id that does not exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from tuktuk.backoffice.portal.models import DriverAccount, ProblemReport
from tuktuk.backoffice.portal.selectors import (
    portal_deposit,
    portal_fare,
    portal_statement,
    portal_today,
    statement_day_label,
)
from tuktuk.backoffice.portal.services import (
    NOTE_MAX,
    driver_pin_change,
    login_code_request,
    problem_report_open,
)
from tuktuk.backoffice.responses import statement_csv_response
from tuktuk.core.errors import InvalidInput, NotFound, OperatorError
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn

View = Callable[..., HttpResponse]


def driver_required(view: View) -> View:
    """Only a logged-in driver; everyone else (operators included) goes to the portal login."""

    @wraps(view)
    @never_cache
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        account = _account(request)
        if account is None:
            return HttpResponseRedirect(f"{reverse('portal:login')}?next={request.path}")
        if account.must_change_pin and view.__name__ != "pin_change":
            return HttpResponseRedirect(reverse("portal:pin"))
        request.driver_account = account  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapped


def _account(request: HttpRequest) -> DriverAccount | None:
    user = request.user
    if not user.is_authenticated:
        return None
    return (
        DriverAccount.objects.filter(
            user_id=user.pk, user__is_active=True, driver__archived_at__isnull=True
        )
        .select_related("driver", "driver__vehicle", "user")
        .first()
    )


def _driver_account(request: HttpRequest) -> DriverAccount:
    return request.driver_account  # type: ignore[attr-defined]


# Logging in -----------------------------------------------------------------------------------


class LoginForm(forms.Form):
    phone = forms.CharField(label="M-Pesa number", max_length=20)
    pin = forms.CharField(label="PIN", max_length=6, widget=forms.PasswordInput)


class CodeRequestForm(forms.Form):
    phone = forms.CharField(label="M-Pesa number", max_length=20)


class CodeLoginForm(forms.Form):
    phone = forms.CharField(label="M-Pesa number", max_length=20)
    code = forms.CharField(label="Code from the SMS", max_length=6)


def _phone(form: forms.Form) -> str | None:
    try:
        return normalize_msisdn(form.cleaned_data["phone"])
    except InvalidPhoneNumber:
        form.add_error("phone", "Type your M-Pesa number, e.g. 0712 345 678.")
        return None


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    return (
        target if target.startswith("/portal/") and "//" not in target else reverse("portal:home")
    )


def _logged_in(request: HttpRequest, user: Any) -> HttpResponse:
    login(request, user)
    DriverAccount.objects.filter(user_id=user.pk).update(last_login_at=timezone.now())
    return HttpResponseRedirect(_safe_next(request))


@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    failed = False
    if request.method == "POST" and form.is_valid():
        msisdn = _phone(form)
        if msisdn is not None:
            user = authenticate(request, msisdn=msisdn, password=form.cleaned_data["pin"])
            if user is not None:
                return _logged_in(request, user)
            failed = True
    return render(
        request,
        "portal/login.html",
        {"form": form, "failed": failed, "next": _safe_next(request)},
        status=401 if failed else 200,
    )


@never_cache
@require_http_methods(["GET", "POST"])
def code_request(request: HttpRequest) -> HttpResponse:
    """Ask for a one-time code by SMS (the answer is the same whoever's number it is)."""
    form = CodeRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        msisdn = _phone(form)
        if msisdn is not None:
            login_code_request(phone=msisdn)
            return render(
                request,
                "portal/code_login.html",
                {"form": CodeLoginForm(initial={"phone": msisdn}), "sent": True},
            )
    return render(request, "portal/code_request.html", {"form": form})


@never_cache
@require_http_methods(["GET", "POST"])
def code_login(request: HttpRequest) -> HttpResponse:
    form = CodeLoginForm(request.POST or None)
    failed = False
    if request.method == "POST" and form.is_valid():
        msisdn = _phone(form)
        if msisdn is not None:
            user = authenticate(request, msisdn=msisdn, sms_token=form.cleaned_data["code"].strip())
            if user is not None:
                # A code is for choosing a PIN: the driver does that next.
                DriverAccount.objects.filter(user_id=user.pk).update(must_change_pin=True)
                login(request, user)
                return HttpResponseRedirect(reverse("portal:pin"))
            failed = True
    return render(
        request,
        "portal/code_login.html",
        {"form": form, "failed": failed},
        status=401 if failed else 200,
    )


def locked_out(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE) for a driver's number."""
    return render(
        request,
        "portal/locked.html",
        {"minutes": settings.PORTAL_LOCKOUT_MINUTES},
        status=429,
    )


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponseRedirect(reverse("portal:login"))


class PinForm(forms.Form):
    current_pin = forms.CharField(
        label="Current PIN", max_length=6, widget=forms.PasswordInput, required=False
    )
    new_pin = forms.CharField(
        label="New PIN (4 to 6 digits)", max_length=6, widget=forms.PasswordInput
    )
    new_pin_again = forms.CharField(label="New PIN again", max_length=6, widget=forms.PasswordInput)


@driver_required
@require_http_methods(["GET", "POST"])
def pin_change(request: HttpRequest) -> HttpResponse:
    account = _driver_account(request)
    choosing = account.must_change_pin  # after a code or an operator's PIN: no current PIN asked
    form = PinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["new_pin"] != data["new_pin_again"]:
            form.add_error("new_pin_again", "The two new PINs differ.")
        else:
            try:
                driver_pin_change(
                    account=account,
                    new_pin=data["new_pin"],
                    current_pin=None if choosing else data["current_pin"],
                )
            except InvalidInput as exc:
                form.add_error(None, str(exc))
            else:
                # The password changed: keep this session, end the others.
                account.user.refresh_from_db()
                update_session_auth_hash(request, account.user)
                return HttpResponseRedirect(reverse("portal:home") + "?pin=changed")
    return render(
        request, "portal/pin.html", {"form": form, "choosing": choosing, "account": account}
    )


# The driver's money -------------------------------------------------------------------------------


@driver_required
def home(request: HttpRequest) -> HttpResponse:
    today = portal_today(driver=_driver_account(request).driver)
    return render(
        request,
        "portal/home.html",
        {"today": today, "pin_changed": request.GET.get("pin") == "changed", "page": "home"},
    )


@driver_required
def today_live(request: HttpRequest) -> HttpResponse:
    """The today section alone, for the page's small script to refresh as fares arrive."""
    today = portal_today(driver=_driver_account(request).driver)
    return render(request, "portal/_today.html", {"today": today})


@driver_required
def fare(request: HttpRequest, trans_id: str) -> HttpResponse:
    try:
        line = portal_fare(driver=_driver_account(request).driver, trans_id=trans_id)
    except NotFound:
        raise Http404("no such fare") from None
    return render(request, "portal/fare.html", {"fare": line, "page": "home"})


@driver_required
def deposit(request: HttpRequest) -> HttpResponse:
    view = portal_deposit(driver=_driver_account(request).driver)
    return render(request, "portal/deposit.html", {"deposit": view, "page": "deposit"})


class StatementForm(forms.Form):
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )


def _statement_range(request: HttpRequest) -> tuple[StatementForm, dt.date | None, dt.date | None]:
    form = StatementForm(
        {"date_from": request.GET.get("from", ""), "date_to": request.GET.get("to", "")}
    )
    if not form.is_valid():
        return form, None, None
    return form, form.cleaned_data["date_from"], form.cleaned_data["date_to"]


@driver_required
def statement(request: HttpRequest) -> HttpResponse:
    form, first, last = _statement_range(request)
    context: dict[str, Any] = {"form": form, "page": "statement", "statement": None}
    if form.is_valid():
        try:
            result = portal_statement(
                driver=_driver_account(request).driver, date_from=first, date_to=last
            )
        except OperatorError as exc:
            context["error"] = str(exc)
        else:
            context["statement"] = result
            context["days"] = [(day, statement_day_label(day.state)) for day in result.days]
            context["query"] = f"from={result.date_from}&to={result.date_to}"
    return render(
        request, "portal/statement.html", context, status=400 if "error" in context else 200
    )


@driver_required
def statement_csv(request: HttpRequest) -> HttpResponse:
    form, first, last = _statement_range(request)
    if not form.is_valid():
        return HttpResponse(
            "from and to must be dates (YYYY-MM-DD)", status=400, content_type="text/plain"
        )
    try:
        result = portal_statement(
            driver=_driver_account(request).driver, date_from=first, date_to=last
        )
    except OperatorError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return statement_csv_response(result)


# Problems -----------------------------------------------------------------------------------------


class ProblemForm(forms.Form):
    note = forms.CharField(
        label="What is wrong?", max_length=NOTE_MAX, widget=forms.Textarea(attrs={"rows": 4})
    )
    trans_id = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)


@driver_required
@require_http_methods(["GET", "POST"])
def problem_new(request: HttpRequest) -> HttpResponse:
    driver = _driver_account(request).driver
    initial_fare = request.GET.get("fare", "")
    fare_line = None
    if initial_fare:
        try:
            fare_line = portal_fare(driver=driver, trans_id=initial_fare)
        except NotFound:
            raise Http404("no such fare") from None
    form = ProblemForm(request.POST or None, initial={"trans_id": initial_fare})
    if request.method == "POST" and form.is_valid():
        try:
            report = problem_report_open(
                driver=driver,
                note=form.cleaned_data["note"],
                trans_id=form.cleaned_data["trans_id"],
            )
        except NotFound:
            raise Http404("no such fare") from None
        except InvalidInput as exc:
            form.add_error("note", str(exc))
        else:
            return HttpResponseRedirect(reverse("portal:problem", args=[report.pk]) + "?sent=1")
    return render(
        request, "portal/problem_new.html", {"form": form, "fare": fare_line, "page": "problems"}
    )


@driver_required
def problems(request: HttpRequest) -> HttpResponse:
    rows = ProblemReport.objects.filter(driver=_driver_account(request).driver).order_by(
        "-created_at"
    )[:50]
    return render(request, "portal/problems.html", {"reports": rows, "page": "problems"})


@driver_required
def problem(request: HttpRequest, report_id: int) -> HttpResponse:
    report = ProblemReport.objects.filter(
        pk=report_id, driver=_driver_account(request).driver
    ).first()
    if report is None:
        raise Http404("no such report")
    return render(
        request,
        "portal/problem.html",
        {"report": report, "sent": request.GET.get("sent") == "1", "page": "problems"},
    )
