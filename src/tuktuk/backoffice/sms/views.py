"""Africa's Talking's delivery reports: POSTed as form fields (id, status, phoneNumber,
networkCode, failureReason, retryCount) to the URL set in its dashboard,
`https://<host>/sms/<TUKTUK_CALLBACK_TOKEN>/delivery-report`. The provider signs nothing, so
the URL carries the same secret path token as the M-Pesa callbacks (a wrong token: 404)."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tuktuk.backoffice.sms.services import delivery_report_receive

FIELDS = ("id", "status", "phoneNumber", "networkCode", "failureReason", "retryCount")


@csrf_exempt
@require_POST
def delivery_report(request: HttpRequest, token: str) -> HttpResponse:
    if not constant_time_compare(token, settings.CALLBACK_TOKEN):
        raise Http404
    fields = {name: request.POST.get(name, "").strip() for name in FIELDS}
    if not fields["id"] or not fields["status"]:
        return HttpResponse("id and status are required", status=400, content_type="text/plain")
    body = request.body.decode("utf-8", errors="replace")
    delivery_report_receive(fields=fields, body=body)
    # Stored (and applied when its message is known): the provider may stop retrying.
    return HttpResponse("OK", content_type="text/plain")
