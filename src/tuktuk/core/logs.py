"""Structured (one JSON object per line) application logs."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

# The callback URLs carry the secret token in their path (/c2b/<token>/confirmation, the SMS
# delivery reports' /sms/<token>/delivery-report): it must
# never reach a log line, whoever writes it (gunicorn's access log, Django's request warnings).
_CALLBACK_PATH = re.compile(r"/(c2b|b2c|sms)/[^/\s\"'>]+/")


def redact(text: str) -> str:
    return _CALLBACK_PATH.sub(r"/\1/***/", text)


_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str, ensure_ascii=False))
