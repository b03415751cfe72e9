"""B2C result / timeout and Transaction Status callbacks: stored raw first, matched by
conversation ids, idempotent and safe in any order (a result may land before our own record
of the request, after a timeout notice, or twice)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from tuktuk.ledger.missed import OCCASION_PREFIX, missed_payment_verified
from tuktuk.mpesa.c2b import CallbackRejected, json_object
from tuktuk.mpesa.callbacks import callback_reject, callback_store, caller_allowed
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.mpesa.strict_json import JsonNumber, shown
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
    parameters: dict[str, str | None]  # values as sent: text, or a number's literal digits
    occasion: str


# ResultCode: Daraja writes a number (0, 2001) or, for some refusals, a code ("SFC_IC0003").
_RESULT_CODE = re.compile(r"-?[0-9]{1,10}|[A-Za-z_][A-Za-z0-9_]{0,31}", re.ASCII)
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?", re.ASCII)
# A value we do not read may be any string or number Daraja writes, within reason.
_LONGEST_NUMBER = 32
# The parameters we read, by their key with spaces removed: text, or an amount.
_TEXT_PARAMETERS = frozenset(
    {
        "TransactionReceipt",
        "ReceiptNo",
        "TransactionStatus",
        "OriginatorConversationID",
        "ConversationID",
    }
)
_AMOUNT_PARAMETERS = frozenset({"TransactionAmount", "Amount"})


def _string(container: dict[str, Any], key: str, where: str = "") -> str:
    """A field that must be a JSON string when present ("" when absent)."""
    value = container.get(key, "")
    if not isinstance(value, str):
        raise CallbackRejected(f"{where}{key} must be a string")
    return value


def _optional_object(container: dict[str, Any], key: str) -> dict[str, Any]:
    if key not in container:
        return {}
    value = container[key]
    if not isinstance(value, dict):
        raise CallbackRejected(f"{key} must be an object")
    return value


def _items(container: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Daraja sends a list of {Key, Value} objects, or a lone one as the object itself."""
    if key not in container:
        return []
    value = container[key]
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise CallbackRejected(f"{key} must be an object or a list of objects")
    for item in items:
        if not isinstance(item.get("Key"), str):
            raise CallbackRejected(f"{key} Key must be a string")
    return items


def _result_code(result: dict[str, Any]) -> str:
    if "ResultCode" not in result:
        raise CallbackRejected("Result has no ResultCode")
    raw = result["ResultCode"]
    text = raw.literal if isinstance(raw, JsonNumber) else raw
    if not isinstance(text, str) or not _RESULT_CODE.fullmatch(text):
        shown_code = shown(text) if isinstance(text, str) else type(raw).__name__
        raise CallbackRejected(f"ResultCode {shown_code} is not a Daraja result code")
    # 0 and "0" (and "00") are one code: compare them as numbers.
    return str(int(text)) if text[0] in "-0123456789" else text


def _parameter_value(key: str, item: dict[str, Any]) -> str | None:
    """The Value of one ResultParameter as text; None when absent. Numbers keep the digits
    they were written with (no int of 5,000 digits, no float rounding)."""
    value = item.get("Value")
    text = value.literal if isinstance(value, JsonNumber) else value
    if key in _TEXT_PARAMETERS:
        if value is not None and not isinstance(value, str):
            raise CallbackRejected(f"ResultParameter {key} must be a string")
    elif key in _AMOUNT_PARAMETERS:
        if value is not None and not (isinstance(text, str) and _AMOUNT.fullmatch(text)):
            raise CallbackRejected(f"ResultParameter {key} is not an amount of shillings")
    elif value is not None and (
        not isinstance(text, str) or (isinstance(value, JsonNumber) and len(text) > _LONGEST_NUMBER)
    ):
        raise CallbackRejected(f"Value of {shown(key)} must be a string or a number")
    return text


def parse_result(body: bytes) -> ResultNotice:
    """Read a B2C / Transaction Status result. Anything not shaped as Daraja sends it is a
    rejection with a reason: never an exception, never a guess."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CallbackRejected(f"body is not JSON: {exc}") from exc
    payload = json_object(text)
    if "Result" not in payload:
        raise CallbackRejected("no Result object")
    result = payload["Result"]
    if not isinstance(result, dict):
        raise CallbackRejected("Result must be an object")
    result_code = _result_code(result)
    parameters: dict[str, str | None] = {}
    for item in _items(_optional_object(result, "ResultParameters"), "ResultParameter"):
        # Daraja's Transaction Status result spells some keys with spaces
        # ("Originator Conversation ID"); read both spellings as one.
        key = item["Key"].replace(" ", "")
        if key in parameters:
            raise CallbackRejected(f"ResultParameter {shown(key)} appears more than once")
        parameters[key] = _parameter_value(key, item)
    occasions = []
    for item in _items(_optional_object(result, "ReferenceData"), "ReferenceItem"):
        if item["Key"] == "Occasion":
            occasions.append(_string(item, "Value", "Occasion "))
        else:
            _parameter_value(item["Key"], item)
    if len(occasions) > 1:
        raise CallbackRejected("ReferenceItem Occasion appears more than once")
    return ResultNotice(
        originator_conversation_id=_string(result, "OriginatorConversationID"),
        conversation_id=_string(result, "ConversationID"),
        result_code=result_code,
        result_desc=_string(result, "ResultDesc")[:2000],
        parameters=parameters,
        occasion=occasions[0] if occasions else "",
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
        callback_reject(callback, rejection)
        return CallbackState.REJECTED
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
