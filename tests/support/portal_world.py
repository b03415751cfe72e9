"""The driver portal's and the SMS outbox's rows in the role enumeration's world
(tests/backoffice/test_role_enumeration.py): one of each model the admin shows."""

from __future__ import annotations

from tuktuk.backoffice.portal.services import driver_account_get_or_create, problem_report_open
from tuktuk.backoffice.sms.models import SmsMessage, SmsState
from tuktuk.backoffice.sms.services import delivery_report_receive, sms_send_to_driver
from tuktuk.fleet.models import Driver


def world_portal_and_sms() -> None:
    """DRV-112002's portal login (no PIN: hashing one costs a second), a problem report, an SMS
    whose outcome is unknown (to retry) and a delivery report for an id nobody sent."""
    driver = Driver.objects.get(driver_id="DRV-112002")
    driver_account_get_or_create(driver=driver, actor="root")
    problem_report_open(driver=driver, note="world")
    sms = sms_send_to_driver(driver_id="DRV-112002", text="world", actor="root")
    SmsMessage.objects.filter(pk=sms.pk).update(
        state=SmsState.UNKNOWN, provider_message_id="ATXid_world"
    )
    delivery_report_receive(
        fields={"id": "ATXid_nobody", "status": "Success", "phoneNumber": "+254700000099"},
        body="id=ATXid_nobody&status=Success",
    )


def world_unknown_sms() -> int:
    return SmsMessage.objects.get(state=SmsState.UNKNOWN).pk
