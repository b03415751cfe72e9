"""B2C result / timeout and Transaction Status callbacks: stored raw first, matched by
conversation ids, idempotent and safe in any order (a result may land before our own record
of the request, after a timeout notice, or twice)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from tuktuk.ledger.missed import OCCASION_PREFIX, missed_payment_verified
from tuktuk.mpesa.c2b import CallbackRejected
from tuktuk.mpesa.callbacks import callback_store, caller_allowed
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.payouts.models import Payout
from tuktuk.payouts.services import (
    payout_complete,
    payout_fail,
    payout_find,
    payout_not_found_requeue,
    payout_outcome_unknown,
    payout_status_requery,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultNotice:
    originator_conversation_id: str
    conversation_id: str
    result_code: str
    result_desc: str
    parameters: dict[str, Any]
    occasion: str


def parse_result(body: bytes) -> ResultNotice:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CallbackRejected(f"body is not JSON: {exc}") from exc
    result = payload.get("Result") if isinstance(payload, dict) else None
    if not isinstance(result, dict):
        raise CallbackRejected("no Result object")
    parameters: dict[str, Any] = {}
    raw_parameters = (result.get("ResultParameters") or {}).get("ResultParameter") or []
    if isinstance(raw_parameters, dict):  # Daraja sends a lone parameter as an object
        raw_parameters = [raw_parameters]
    for item in raw_parameters:
        if isinstance(item, dict) and "Key" in item:
            # Daraja's Transaction Status result spells some keys with spaces
            # ("Originator Conversation ID"); read both spellings as one.
            parameters[str(item["Key"]).replace(" ", "")] = item.get("Value")
    reference = (result.get("ReferenceData") or {}).get("ReferenceItem") or {}
    if isinstance(reference, list):
        reference = next((r for r in reference if r.get("Key") == "Occasion"), {})
    occasion = str(reference.get("Value", "")) if reference.get("Key") == "Occasion" else ""
    if "ResultCode" not in result:
        raise CallbackRejected("Result has no ResultCode")
    return ResultNotice(
        originator_conversation_id=str(result.get("OriginatorConversationID", "")),
        conversation_id=str(result.get("ConversationID", "")),
        result_code=str(result["ResultCode"]),
        result_desc=str(result.get("ResultDesc", ""))[:2000],
        parameters=parameters,
        occasion=occasion,
    )


def _finish(
    callback: Callback, *, state: str, error: str = "", payout: Payout | None = None
) -> str:
    Callback.objects.filter(pk=callback.pk).update(
        state=state,
        error=error,
        processed_at=timezone.now(),
        trans_id=(payout.originator_conversation_id if payout else callback.trans_id)[:64],
    )
    return state


def b2c_callback_receive(*, kind: str, body: bytes, content_type: str, remote_addr: str) -> str:
    """Store, then apply. Returns the callback's state. Raises only if storing failed."""
    callback = callback_store(
        kind=kind, body=body, content_type=content_type, remote_addr=remote_addr
    )
    try:
        if not caller_allowed(remote_addr):
            raise CallbackRejected(f"caller {remote_addr} is not in TUKTUK_CALLBACK_ALLOWED_IPS")
        notice = parse_result(body)
    except CallbackRejected as rejection:
        return _finish(callback, state=CallbackState.REJECTED, error=rejection.reason)
    try:
        if kind in (CallbackKind.STATUS_RESULT, CallbackKind.STATUS_TIMEOUT):
            return _apply_status(callback, notice, timed_out=kind == CallbackKind.STATUS_TIMEOUT)
        return _apply_result(callback, notice, timed_out=kind == CallbackKind.B2C_TIMEOUT)
    except Exception as exc:
        logger.exception("applying a B2C callback failed", extra={"callback": callback.pk})
        return _finish(callback, state=CallbackState.FAILED, error=f"{type(exc).__name__}: {exc}")


def _apply_result(callback: Callback, notice: ResultNotice, *, timed_out: bool) -> str:
    payout = payout_find(
        notice.originator_conversation_id, notice.occasion, conversation_id=notice.conversation_id
    )
    if payout is None:
        return _finish(callback, state=CallbackState.UNMATCHED, error="no payout with these ids")
    if timed_out:
        # A queue timeout is not a failure: the outcome is unknown, and a later result wins.
        changed = payout_outcome_unknown(payout, desc=f"queue timeout: {notice.result_desc}")
    elif notice.result_code == "0":
        receipt = str(
            notice.parameters.get("TransactionReceipt") or notice.parameters.get("ReceiptNo") or ""
        )
        changed = payout_complete(
            payout,
            receipt=receipt or notice.conversation_id,
            conversation_id=notice.conversation_id,
            desc=notice.result_desc,
        )
    else:
        changed = payout_fail(payout, code=notice.result_code, desc=notice.result_desc)
    return _finish(
        callback,
        state=CallbackState.PROCESSED if changed else CallbackState.DUPLICATE,
        payout=payout,
    )


def _apply_missed_verification(callback: Callback, notice: ResultNotice) -> str:
    trans_id = notice.occasion.removeprefix(OCCASION_PREFIX)
    status = str(notice.parameters.get("TransactionStatus") or "")
    record = missed_payment_verified(
        trans_id=trans_id,
        completed=notice.result_code == "0" and status.lower() == "completed",
        amount=notice.parameters.get("Amount"),
        detail=f"status query: {notice.result_code} {status or notice.result_desc}",
    )
    state = CallbackState.PROCESSED if record is not None else CallbackState.DUPLICATE
    Callback.objects.filter(pk=callback.pk).update(
        state=state, processed_at=timezone.now(), trans_id=trans_id[:64]
    )
    return state


def _apply_status(callback: Callback, notice: ResultNotice, *, timed_out: bool) -> str:
    if notice.occasion.startswith(OCCASION_PREFIX) and not timed_out:
        return _apply_missed_verification(callback, notice)
    checked = str(notice.parameters.get("OriginatorConversationID") or "")
    payout = payout_find(checked, notice.occasion)
    if payout is None:
        return _finish(callback, state=CallbackState.UNMATCHED, error="no payout with these ids")
    if timed_out:
        # The query itself timed out: ask again later.
        payout_status_requery(payout)
        return _finish(callback, state=CallbackState.PROCESSED, payout=payout)
    status = str(notice.parameters.get("TransactionStatus") or "")
    if notice.result_code == "0" and status.lower() == "completed":
        changed = payout_complete(
            payout,
            receipt=str(notice.parameters.get("ReceiptNo") or ""),
            conversation_id=str(notice.parameters.get("ConversationID") or ""),
            desc=f"status query: {status}",
        )
    elif notice.result_code == "0" and status:
        changed = payout_fail(payout, code=status, desc=f"status query: {status}")
    else:
        # M-Pesa has no trace of it: it was never accepted, so sending it (with the same id,
        # which M-Pesa would refuse as a duplicate had it been accepted after all) is safe.
        changed = payout_not_found_requeue(
            payout, desc=f"status query found nothing: {notice.result_desc}"
        )
    return _finish(
        callback,
        state=CallbackState.PROCESSED if changed else CallbackState.DUPLICATE,
        payout=payout,
    )
