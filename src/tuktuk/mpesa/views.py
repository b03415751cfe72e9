"""Daraja C2B callback endpoints. Thin: read the request, call the inbox service, answer.

The paths avoid "mpesa"/"safaricom": Daraja refuses callback URLs that contain them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from tuktuk.mpesa import b2c_callbacks, callbacks
from tuktuk.mpesa.models import CallbackKind, CallbackState

logger = logging.getLogger(__name__)


def remote_address(request: HttpRequest) -> str:
    return remote_address_of(request.META)


def remote_address_of(meta: Mapping[str, Any]) -> str:
    """The caller's address from a request's META (or a WSGI environ, the same keys)."""
    if settings.CALLBACK_TRUST_FORWARDED_FOR:
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The last hop is the one our own proxy appended; earlier ones are client-supplied.
            return str(forwarded).split(",")[-1].strip()
    return str(meta.get("REMOTE_ADDR", ""))


def token_matches(token: str) -> bool:
    return constant_time_compare(token, settings.CALLBACK_TOKEN)


def _check_token(token: str) -> None:
    if not token_matches(token):
        raise Http404


DRAIN_LIMIT = 16 * 1024 * 1024


def _drain(request: HttpRequest) -> None:
    """Read and drop the rest of an oversized body so the keep-alive connection stays usable."""
    remaining = DRAIN_LIMIT
    while remaining > 0 and (chunk := request.read(min(65536, remaining))):
        remaining -= len(chunk)


def _read_body(request: HttpRequest, kind: str) -> bytes | None:
    """The body, or None after storing an oversized one as rejected."""
    try:
        return request.body
    except RequestDataTooBig:
        head = request.read(4096)
        _drain(request)
        callbacks.oversized_body_store(
            kind=kind,
            size=int(request.META.get("CONTENT_LENGTH") or 0),
            head=head,
            content_type=request.content_type or "",
            remote_addr=remote_address(request),
        )
        return None


def _unavailable(exc: Exception) -> JsonResponse:
    # Not even stored: 503 so that Safaricom may retry the delivery.
    logger.exception("could not store a callback")
    return JsonResponse(
        {"ResultCode": 1, "ResultDesc": f"Temporarily unavailable: {type(exc).__name__}"},
        status=503,
    )


@csrf_exempt
def c2b_validation(request: HttpRequest, token: str) -> HttpResponse:
    _check_token(token)
    if request.method != "POST":
        return JsonResponse({"ResultCode": "C2B00016", "ResultDesc": "POST only"}, status=405)
    try:
        body = _read_body(request, CallbackKind.C2B_VALIDATION)
        if body is None:
            return JsonResponse({"ResultCode": "C2B00016", "ResultDesc": "Rejected"}, status=413)
        answer = callbacks.validation_decide(
            body=body, content_type=request.content_type or "", remote_addr=remote_address(request)
        )
    except Exception as exc:
        return _unavailable(exc)
    return JsonResponse({"ResultCode": answer.code, "ResultDesc": answer.description})


def accepted() -> JsonResponse:
    """The answer to a callback stored (and, for a confirmation, acknowledged)."""
    return JsonResponse({"ResultCode": 0, "ResultDesc": "Accepted"})


# Stores the body, processes it, returns the callback's state; raises only if storing failed.
Receive = Callable[..., str]


def _stored_callback_view(kind: str, receive: Receive) -> Callable[..., HttpResponse]:
    """A view that stores the raw body first, then lets `receive` process it."""

    @csrf_exempt
    def view(request: HttpRequest, token: str) -> HttpResponse:
        _check_token(token)
        if request.method != "POST":
            return JsonResponse({"ResultCode": 1, "ResultDesc": "POST only"}, status=405)
        try:
            body = _read_body(request, kind)
            if body is None:
                return JsonResponse(
                    {"ResultCode": 1, "ResultDesc": "Rejected: body too large"}, status=413
                )
            state = receive(
                body=body,
                content_type=request.content_type or "",
                remote_addr=remote_address(request),
            )
        except Exception as exc:
            return _unavailable(exc)
        if state == CallbackState.REJECTED:
            return JsonResponse({"ResultCode": 1, "ResultDesc": "Rejected"}, status=400)
        # Processed, duplicate, unmatched, or failed and stored for replay: M-Pesa's part is
        # done either way.
        return accepted()

    return view


def _b2c(kind: str) -> Callable[..., HttpResponse]:
    return _stored_callback_view(kind, partial(b2c_callbacks.b2c_callback_receive, kind=kind))


c2b_confirmation = _stored_callback_view(
    CallbackKind.C2B_CONFIRMATION, callbacks.confirmation_receive
)
b2c_result = _b2c(CallbackKind.B2C_RESULT)
b2c_timeout = _b2c(CallbackKind.B2C_TIMEOUT)
status_result = _b2c(CallbackKind.STATUS_RESULT)
status_timeout = _b2c(CallbackKind.STATUS_TIMEOUT)
# The views whose first database statement is callbacks.callback_store (the webhook lane
# skips the connection health check for them: backoffice.webhook_wsgi).
STORED_FIRST = frozenset({c2b_confirmation, b2c_result, b2c_timeout, status_result, status_timeout})
