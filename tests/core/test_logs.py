"""Secrets never reach the logs: the callback token in URL paths is redacted everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.c2b import confirmation_payload
from tests.support.factories import make_driver
from tests.support.live_server import CALLBACK_TOKEN, live_server_process
from tuktuk.core.logs import redact


def test_redact_takes_the_token_out_of_callback_paths() -> None:
    assert redact("POST /c2b/s3cr3t-T0k_en/confirmation") == "POST /c2b/***/confirmation"
    assert redact("'/b2c/s3cr3t/status-result'") == "'/b2c/***/status-result'"
    # Africa's Talking's delivery reports carry the SMS callback token the same way.
    assert redact("POST /sms/s3cr3t/delivery-report") == "POST /sms/***/delivery-report"
    assert redact("/admin/fleet/driver/") == "/admin/fleet/driver/"


@pytest.mark.django_db(transaction=True)
def test_the_server_logs_no_callback_token(tmp_path: Path) -> None:
    make_driver(1)
    log = tmp_path / "server.log"
    with live_server_process(access_log=True, log_file=log, workers=1) as server:
        with httpx.Client(timeout=30) as http:
            ok = confirmation_payload(trans_id="LOG1", amount="100", account="TUK001")
            assert http.post(server.c2b_url("confirmation"), json=ok).status_code == 200
            # A rejected body makes Django log a "Bad Request" warning with the path.
            assert http.post(server.c2b_url("confirmation"), content=b"junk").status_code == 400
            # A B2C result for nobody, and an error page for a wrong token.
            assert http.post(f"{server.url}/b2c/{CALLBACK_TOKEN}/result", json={}).status_code
            assert http.post(f"{server.url}/c2b/wrong-token/confirmation").status_code == 404
    text = log.read_text()
    assert "/c2b/***/confirmation" in text  # the access log has the requests...
    assert CALLBACK_TOKEN not in text  # ...but never the token
    assert "wrong-token" not in text
    for line in text.splitlines():
        if line.startswith("{"):
            json.loads(line)  # application logs are JSON lines
