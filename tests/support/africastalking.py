"""A local stand-in of Africa's Talking's SMS API, over real HTTP, for the tests.

It answers as the real API does: `POST /version1/messaging` with the `apiKey` header and the
form fields `username`, `to` (comma-separated +254… numbers), `message` and optionally `from`,
with 201 and `{"SMSMessageData": {"Message": …, "Recipients": [{"statusCode", "number",
"status", "cost", "messageId"}]}}`; a wrong key or username gets 401. It then posts delivery
reports, as the real one does, to the callback URL it is given: form fields id, status,
phoneNumber, networkCode, retryCount (and failureReason for a failure).

Scripted outcomes, one per request (then "ok"): "ok"; "down" (503, nothing recorded: an
outage); "error" (500 after recording the message: processed, answer lost); "hang" (the
message is recorded, then the answer waits until `release()` or the client is gone: a worker
killed mid-request); "invalid" (statusCode 403 InvalidPhoneNumber); "no_balance" (405
InsufficientBalance, not sent). `set_down(True)` answers 503 to everything until set back.
"""

from __future__ import annotations

import json
import secrets
import socketserver
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import httpx

API_KEY = "test-at-api-key-0123456789"
USERNAME = "sandbox"


@dataclass
class Received:
    number: str
    message: str
    sender: str
    message_id: str | None  # None: not accepted (refused, invalid number)
    outcome: str


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    script: deque[str] = field(default_factory=deque)
    down: bool = False
    received: list[Received] = field(default_factory=list)
    requests: int = 0
    hanging: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128


class AfricasTalkingStandIn:
    def __init__(self, *, delivery_url: str | None = None, hang_seconds: float = 90.0) -> None:
        self.delivery_url = delivery_url
        self.hang_seconds = hang_seconds
        self.state = _State()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- running -----------------------------------------------------------------------------

    def start(self) -> str:
        self._server = _Server(("127.0.0.1", 0), _Quiet)
        self._server.set_app(self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.state.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> AfricasTalkingStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control -------------------------------------------------------------------------------

    def script(self, *outcomes: str) -> None:
        with self.state.lock:
            self.state.script = deque(outcomes)

    def set_down(self, down: bool) -> None:
        with self.state.lock:
            self.state.down = down

    def release(self) -> None:
        self.state.release.set()

    def received(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.received)

    def accepted(self) -> list[Received]:
        return [r for r in self.received() if r.message_id]

    def accepted_counts(self) -> Counter[tuple[str, str]]:
        """How many times each (number, text) was accepted: 1 each, for exactly once."""
        return Counter((r.number, r.message) for r in self.accepted())

    def requests(self) -> int:
        with self.state.lock:
            return self.state.requests

    # --- delivery reports ------------------------------------------------------------------------

    def report(
        self, message_id: str, *, status: str = "Success", failure_reason: str = ""
    ) -> httpx.Response:
        """POST a delivery report for one accepted message, as Africa's Talking does."""
        assert self.delivery_url, "no delivery report URL"
        (number,) = [r.number for r in self.received() if r.message_id == message_id]
        form = {
            "id": message_id,
            "status": status,
            "phoneNumber": number,
            "networkCode": "63902",
            "retryCount": "0",
        }
        if failure_reason:
            form["failureReason"] = failure_reason
        return httpx.post(self.delivery_url, data=form, timeout=30)

    def report_all(self, *, status: str = "Success") -> list[httpx.Response]:
        return [self.report(r.message_id, status=status) for r in self.accepted() if r.message_id]

    # --- the API -------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if path != "/version1/messaging" or method != "POST":
            return self._answer(start_response, 404, "text/plain", b"Not Found")
        with self.state.lock:
            self.state.requests += 1
            outcome = "down" if self.state.down else (
                self.state.script.popleft() if self.state.script else "ok"
            )  # fmt: skip
        if outcome == "down":
            return self._answer(start_response, 503, "text/plain", b"Service Unavailable")
        if environ.get("HTTP_APIKEY") != API_KEY:
            return self._answer(
                start_response, 401, "text/plain", b"The supplied authentication is invalid"
            )
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        if form.get("username") != USERNAME:
            return self._answer(
                start_response, 401, "text/plain", b"The supplied authentication is invalid"
            )
        if not form.get("to") or not form.get("message"):
            return self._answer(start_response, 400, "text/plain", b"Request is missing fields")
        recipients = []
        for number in form["to"].split(","):
            number = number.strip()
            if outcome == "invalid":
                code, status, message_id, cost = 403, "InvalidPhoneNumber", None, "0"
            elif outcome == "no_balance":
                code, status, message_id, cost = 405, "InsufficientBalance", None, "0"
            else:
                code, status, cost = 101, "Success", "KES 0.8000"
                message_id = f"ATXid_{secrets.token_hex(12)}"
            with self.state.lock:
                self.state.received.append(
                    Received(number, form["message"], form.get("from", ""), message_id, outcome)
                )
            recipients.append(
                {"statusCode": code, "number": number, "status": status, "cost": cost,
                 "messageId": message_id or "None"}
            )  # fmt: skip
        if outcome == "hang":
            self.state.hanging.set()
            self.state.release.wait(self.hang_seconds)
        if outcome == "error":
            return self._answer(start_response, 500, "text/plain", b"Internal Server Error")
        sent = sum(1 for r in recipients if r["statusCode"] == 101)
        answer = {
            "SMSMessageData": {
                "Message": f"Sent to {sent}/{len(recipients)} Total Cost: KES {0.8 * sent:.4f}",
                "Recipients": recipients,
            }
        }
        return self._answer(start_response, 201, "application/json", json.dumps(answer).encode())

    @staticmethod
    def _answer(start_response: Any, status: int, kind: str, data: bytes) -> list[bytes]:
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
                  404: "Not Found", 500: "Internal Server Error",
                  503: "Service Unavailable"}[status]  # fmt: skip
        start_response(
            f"{status} {reason}", [("Content-Type", kind), ("Content-Length", str(len(data)))]
        )
        return [data]


def at_env(standin: AfricasTalkingStandIn) -> dict[str, str]:
    """The environment that points `tuktuk worker` at the stand-in."""
    return {
        "TUKTUK_SMS_GATEWAY": "africastalking",
        "TUKTUK_AT_USERNAME": USERNAME,
        "TUKTUK_AT_API_KEY": API_KEY,
        "TUKTUK_AT_BASE_URL": standin.url,
    }
