"""The Daraja simulator (docs/daraja-simulator.md), exercised over real HTTP with httpx.

Callbacks are caught by a small HTTP receiver started here; tests wait on its events (or on the
simulator having no delivery left), never on sleeps.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.live_server import REPO_ROOT, child_env
from tuktuk.mpesa.simulator import DarajaService, DarajaSimulator, SimConfig
from tuktuk.mpesa.simulator.server import SimulatorApp

WAIT = 10.0  # seconds: the longest any event may take before the test fails


# ---------------------------------------------------------------------------------------------
# A callback receiver


@dataclass(frozen=True)
class Received:
    path: str
    body: Any
    at: float  # time.monotonic() when it arrived


class Receiver:
    """Collects POSTed JSON. `answers` are the statuses to give first (then 200); clearing
    `release` holds every answer back until it is set again."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self.answers: deque[int] = deque()
        self.release = threading.Event()
        self.release.set()
        self.received = threading.Event()
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                status = receiver.record(self.path, body)
                receiver.release.wait(WAIT)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def record(self, path: str, body: Any) -> int:
        with self._changed:
            self.items.append(Received(path, body, time.monotonic()))
            status = self.answers.popleft() if self.answers else 200
            self._changed.notify_all()
        self.received.set()
        return status

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Received]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.items) >= count, timeout), self.items
            return list(self.items)

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[DarajaSimulator]:
    config = SimConfig(seed=7, hang_seconds=1.0, callback_backoff_ms=20, token_ttl=600)
    simulator = DarajaSimulator(config, clock=clock)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: DarajaSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=WAIT) as client:
        yield client


def get_token(client: httpx.Client) -> str:
    response = client.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("sim-key", "sim-secret"),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def auth(client: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {get_token(client)}"}


def b2c_body(receiver: Receiver, ocid: str = "ocid-1", **overrides: Any) -> dict[str, Any]:
    body = {
        "OriginatorConversationID": ocid,
        "InitiatorName": "tuktuk-api",
        "SecurityCredential": "c2ltLWNyZWRlbnRpYWw=",
        "CommandID": "BusinessPayment",
        "Amount": 150,
        "PartyA": "600984",
        "PartyB": "254712345678",
        "Remarks": "Driver share",
        "QueueTimeOutURL": receiver.url("/timeout"),
        "ResultURL": receiver.url("/result"),
        "Occasion": ocid,
    }
    body.update(overrides)
    return body


def pay(
    client: httpx.Client, auth: dict[str, str], body: dict[str, Any], version: str = "v3"
) -> httpx.Response:
    return client.post(f"/mpesa/b2c/{version}/paymentrequest", json=body, headers=auth)


def status_query(receiver: Receiver, **fields: str) -> dict[str, str]:
    return {
        "Initiator": "tuktuk-api",
        "SecurityCredential": "c2ltLWNyZWRlbnRpYWw=",
        "CommandID": "TransactionStatusQuery",
        "PartyA": "600984",
        "IdentifierType": "4",
        "ResultURL": receiver.url("/status"),
        "QueueTimeOutURL": receiver.url("/status-timeout"),
        "Remarks": "Check payout",
        "Occasion": fields.get("OriginatorConversationID", ""),
        **fields,
    }


def parameters(result: dict[str, Any]) -> dict[str, Any]:
    return {p["Key"]: p.get("Value") for p in result["ResultParameters"]["ResultParameter"]}


def settled(sim: DarajaSimulator, receiver: Receiver) -> list[Received]:
    """Everything the receiver got once the simulator has no delivery left in flight."""
    assert sim.wait_for_callbacks(WAIT)
    return receiver.wait_for(0)


# ---------------------------------------------------------------------------------------------
# OAuth


def test_oauth_token_with_expires_in_as_a_string(client: httpx.Client) -> None:
    response = client.get(
        "/oauth/v1/generate?grant_type=client_credentials", auth=("sim-key", "sim-secret")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == "600"
    assert re.fullmatch(r"[A-Za-z0-9]{28}", body["access_token"])
    assert client.get("/sim/state").json()["tokens_issued"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic " + "c2ltLWtleTp3cm9uZw=="},  # sim-key:wrong
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer sim-key"},
        {},
    ],
)
def test_oauth_bad_credentials(client: httpx.Client, headers: dict[str, str]) -> None:
    response = client.get("/oauth/v1/generate?grant_type=client_credentials", headers=headers)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.008.01"
    assert response.json()["errorMessage"] == "Invalid Authentication passed"


def test_oauth_bad_grant_type(client: httpx.Client) -> None:
    response = client.get("/oauth/v1/generate?grant_type=password", auth=("sim-key", "sim-secret"))
    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.008.02"


def test_token_expires_after_its_ttl(
    client: httpx.Client, receiver: Receiver, clock: FakeClock
) -> None:
    auth = {"Authorization": f"Bearer {get_token(client)}"}
    clock.now += 599
    assert pay(client, auth, b2c_body(receiver, "before-expiry")).status_code == 200
    clock.now += 1
    response = pay(client, auth, b2c_body(receiver, "after-expiry"))
    assert response.status_code == 401
    assert response.json()["errorCode"] == "404.001.03"
    assert response.json()["errorMessage"] == "Invalid Access Token"
    assert response.json()["requestId"]


def test_expire_tokens_makes_every_issued_token_invalid(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    assert client.post("/sim/expire-tokens").status_code == 200
    response = pay(client, auth, b2c_body(receiver))
    assert response.status_code == 401
    assert response.json()["errorCode"] == "404.001.03"
    fresh = {"Authorization": f"Bearer {get_token(client)}"}
    assert pay(client, fresh, b2c_body(receiver)).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer unknown-token", "Basic c2ltLWtleTpzaW0tc2VjcmV0"])
def test_missing_or_unknown_token(
    client: httpx.Client, receiver: Receiver, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = pay(client, headers, b2c_body(receiver))
    assert response.status_code == 401
    assert response.json()["errorCode"] == "404.001.03"
    assert client.get("/sim/state").json()["payments"] == {}


# ---------------------------------------------------------------------------------------------
# B2C


@pytest.mark.parametrize("version", ["v3", "v1"])
def test_b2c_accepted_then_result_callback(
    sim: DarajaSimulator,
    client: httpx.Client,
    receiver: Receiver,
    auth: dict[str, str],
    version: str,
) -> None:
    response = pay(client, auth, b2c_body(receiver, "pay-1", Amount="150"), version)
    assert response.status_code == 200
    answer = response.json()
    assert answer["OriginatorConversationID"] == "pay-1"
    assert answer["ResponseCode"] == "0"
    assert answer["ResponseDescription"] == "Accept the service request successfully."
    assert re.fullmatch(r"AG_\d{8}_[0-9a-f]{20}", answer["ConversationID"])

    [callback] = receiver.wait_for(1)
    assert callback.path == "/result"
    result = callback.body["Result"]
    assert result["ResultType"] == 0 and result["ResultCode"] == 0
    assert result["ResultDesc"] == "The service request is processed successfully."
    assert result["OriginatorConversationID"] == "pay-1"
    assert result["ConversationID"] == answer["ConversationID"]
    assert re.fullmatch(r"SIM[A-Z0-9]{7}", result["TransactionID"])
    params = parameters(result)
    assert params["TransactionAmount"] == 150
    assert params["TransactionReceipt"] == result["TransactionID"]
    assert params["ReceiverPartyPublicName"].startswith("254712345678 - ")
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", params["TransactionCompletedDateTime"])
    assert params["B2CRecipientIsRegisteredCustomer"] == "Y"
    assert {
        "B2CUtilityAccountAvailableFunds",
        "B2CWorkingAccountAvailableFunds",
        "B2CChargesPaidAccountAvailableFunds",
    } <= set(params)
    assert result["ReferenceData"]["ReferenceItem"] == {
        "Key": "QueueTimeoutURL",
        "Value": receiver.url("/timeout"),
    }

    assert sim.wait_for_callbacks(WAIT)
    state = client.get("/sim/state").json()
    assert state["payments"]["pay-1"] == {
        "amount": 150,
        "receipt": result["TransactionID"],
        "party_b": "254712345678",
        "paid": True,
        "conversation_id": answer["ConversationID"],
        "outcome": "ok",
    }
    [request] = state["b2c_requests"]
    assert request["accepted"] is True and request["http_status"] == 200
    assert request["outcome"] == "ok" and request["receipt"] == result["TransactionID"]
    [sent] = state["callbacks_sent"]
    assert sent["status"] == 200 and sent["kind"] == "result"
    assert sent["url"] == receiver.url("/result")
    assert sent["originator_conversation_id"] == "pay-1"


def test_v1_makes_up_the_originator_conversation_id_when_left_out(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    body = b2c_body(receiver)
    del body["OriginatorConversationID"]
    assert pay(client, auth, body, "v3").status_code == 400
    response = pay(client, auth, body, "v1")
    assert response.status_code == 200
    ocid = response.json()["OriginatorConversationID"]
    assert re.fullmatch(r"\d{5}-\d{8}-1", ocid)
    assert receiver.wait_for(1)[0].body["Result"]["OriginatorConversationID"] == ocid


def test_the_callback_never_holds_up_the_answer(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    receiver.release.clear()  # the receiver takes the callback but does not answer it
    assert pay(client, auth, b2c_body(receiver)).status_code == 200
    receiver.wait_for(1)
    assert client.get("/sim/state").json()["callbacks_pending"] == 1
    receiver.release.set()
    assert sim.wait_for_callbacks(WAIT)


@pytest.mark.parametrize(
    ("outcome", "http_status", "paid", "callbacks"),
    [
        ("ok", 200, True, [("/result", 0)]),
        ("fail", 200, False, [("/result", 2001)]),
        ("refuse", 400, None, []),
        ("error", 500, True, [("/result", 0)]),
        ("timeout", 200, False, [("/timeout", 1)]),
        ("timeout_then_result", 200, True, [("/timeout", 1), ("/result", 0)]),
        ("duplicate_callback", 200, True, [("/result", 0), ("/result", 0)]),
        ("out_of_order", 200, True, [("/result", 0)]),
    ],
)
def test_scripted_outcomes(
    sim: DarajaSimulator,
    client: httpx.Client,
    receiver: Receiver,
    auth: dict[str, str],
    outcome: str,
    http_status: int,
    paid: bool | None,
    callbacks: list[tuple[str, int]],
) -> None:
    assert client.post("/sim/script", json={"outcomes": [outcome]}).status_code == 200
    response = pay(client, auth, b2c_body(receiver, "scripted"))
    assert response.status_code == http_status
    if outcome == "refuse":
        assert response.json()["errorCode"] == "400.002.02"
    if outcome == "error":
        assert response.json()["errorCode"] == "500.001.1001"
        assert response.json()["errorMessage"] == "Internal Server Error"

    got = settled(sim, receiver)
    assert [(c.path, c.body["Result"]["ResultCode"]) for c in got] == callbacks
    for callback in got:
        result = callback.body["Result"]
        assert result["OriginatorConversationID"] == "scripted"
        assert ("ResultParameters" in result) == (result["ResultCode"] == 0)
    if outcome == "fail":
        assert got[0].body["Result"]["ResultDesc"] == "The initiator information is invalid."
    if outcome.startswith("timeout"):
        assert got[0].body["Result"]["ResultDesc"] == "The service request timed out."

    state = client.get("/sim/state").json()
    assert state["b2c_requests"][0]["outcome"] == outcome
    assert state["b2c_requests"][0]["http_status"] == http_status
    assert state["script"] == []
    if paid is None:
        assert state["payments"] == {}
    else:
        assert state["payments"]["scripted"]["paid"] is paid
        assert (state["payments"]["scripted"]["receipt"] is not None) is paid


def test_out_of_order_delivers_the_result_before_answering(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    client.post("/sim/script", json={"outcomes": ["out_of_order"]})
    response = pay(client, auth, b2c_body(receiver, "early"))
    answered_at = time.monotonic()
    assert response.status_code == 200
    # No waiting: the callback must be there already.
    assert receiver.received.is_set()
    [callback] = receiver.items
    assert callback.at < answered_at
    assert callback.body["Result"]["ConversationID"] == response.json()["ConversationID"]


def test_hang_sends_the_result_while_the_answer_is_held_back(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    client.post("/sim/script", json={"outcomes": ["hang"]})
    started = time.monotonic()
    response = pay(client, auth, b2c_body(receiver, "slow"))
    answered_at = time.monotonic()
    assert response.status_code == 200
    assert answered_at - started >= 1.0  # hang_seconds
    [callback] = receiver.wait_for(1)
    assert callback.at < answered_at
    assert callback.body["Result"]["ResultCode"] == 0


def test_hang_with_a_client_that_gives_up_first_still_pays(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    sim.configure(hang_seconds=5)
    client.post("/sim/script", json={"outcomes": ["hang"]})
    with (
        httpx.Client(base_url=sim.url, timeout=0.3) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        pay(impatient, auth, b2c_body(receiver, "gave-up"))
    [callback] = receiver.wait_for(1)
    assert callback.body["Result"]["ResultCode"] == 0
    # What our worker does next: ask Daraja whether the money went.
    query = status_query(receiver, OriginatorConversationID="gave-up")
    assert client.post("/mpesa/transactionstatus/v1/query", json=query, headers=auth).is_success
    status = receiver.wait_for(2)[1].body["Result"]
    assert parameters(status)["TransactionStatus"] == "Completed"
    # The simulator is still serving while that request hangs.
    assert client.get("/sim/state").json()["payments"]["gave-up"]["paid"] is True


def test_duplicate_originator_conversation_id_is_refused_and_paid_once(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    body = b2c_body(receiver, "once")
    assert pay(client, auth, body).status_code == 200
    again = pay(client, auth, {**body, "Amount": 999})
    assert again.status_code == 500
    assert again.json()["errorCode"] == "500.002.1001"
    assert again.json()["errorMessage"] == "Duplicate OriginatorConversationID"
    got = settled(sim, receiver)
    assert len(got) == 1
    state = client.get("/sim/state").json()
    assert list(state["payments"]) == ["once"]
    assert state["payments"]["once"]["amount"] == 150
    assert [r["http_status"] for r in state["b2c_requests"]] == [200, 500]


def test_concurrent_retries_of_one_request_are_paid_once(
    sim: DarajaSimulator, receiver: Receiver, auth: dict[str, str]
) -> None:
    body = b2c_body(receiver, "raced")
    with (
        httpx.Client(base_url=sim.url, timeout=WAIT) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        statuses = sorted(pool.map(lambda _: pay(client, auth, body).status_code, range(8)))
    assert statuses == [200] + [500] * 7
    assert len(settled(sim, receiver)) == 1


def test_an_id_that_was_refused_may_be_used_again(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    client.post("/sim/script", json={"outcomes": ["refuse"]})
    assert pay(client, auth, b2c_body(receiver, "retry-me")).status_code == 400
    assert pay(client, auth, b2c_body(receiver, "retry-me")).status_code == 200


@pytest.mark.parametrize("amount", [150, "150", "150.00", 150.0, " 150 "])
def test_whole_amounts_are_accepted(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str], amount: object
) -> None:
    response = pay(client, auth, b2c_body(receiver, Amount=amount))
    assert response.status_code == 200, response.text
    assert client.get("/sim/state").json()["payments"]["ocid-1"]["amount"] == 150


@pytest.mark.parametrize(
    "amount", ["150.5", 150.5, 0, "0", -5, "abc", "", None, True, [150], {"v": 1}, "1e3", 10**15]
)
def test_invalid_amount_is_refused(
    sim: DarajaSimulator,
    client: httpx.Client,
    receiver: Receiver,
    auth: dict[str, str],
    amount: object,
) -> None:
    response = pay(client, auth, b2c_body(receiver, Amount=amount))
    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.002.02"
    assert response.json()["errorMessage"] == "Bad Request - Invalid Amount"
    assert settled(sim, receiver) == []
    state = client.get("/sim/state").json()
    assert state["payments"] == {}
    assert state["b2c_requests"][0]["accepted"] is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("PartyB", "0712345678"),
        ("PartyB", "25471234567"),
        ("PartyB", None),
        ("PartyA", "abc"),
        ("CommandID", "Withdraw"),
        ("ResultURL", "not a url"),
        ("QueueTimeOutURL", "ftp://example.com/x"),
        ("InitiatorName", ""),
        ("SecurityCredential", None),
        ("Remarks", "x" * 101),
        ("OriginatorConversationID", {"nested": True}),
    ],
)
def test_invalid_fields_are_refused(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str], field: str, value: object
) -> None:
    body = b2c_body(receiver)
    if value is None:
        del body[field]
    else:
        body[field] = value
    response = pay(client, auth, body)
    assert response.status_code == 400
    assert response.json()["errorMessage"] == f"Bad Request - Invalid {field}"
    assert client.get("/sim/state").json()["payments"] == {}


def test_callback_delivery_is_retried_until_answered(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    receiver.answers.extend([500, 503])
    assert pay(client, auth, b2c_body(receiver)).status_code == 200
    got = settled(sim, receiver)
    assert len(got) == 3 and got[0].body == got[2].body
    attempts = client.get("/sim/state").json()["callbacks_sent"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 500), (2, 503), (3, 200)]


def test_undeliverable_callback_gives_up_after_the_retries(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/result"
    sim.configure(callback_retries=2)
    assert pay(client, auth, b2c_body(receiver, ResultURL=dead)).status_code == 200
    assert sim.wait_for_callbacks(WAIT)
    attempts = client.get("/sim/state").json()["callbacks_sent"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, None), (2, None), (3, None)]
    assert all(a["error"].startswith("ConnectError") for a in attempts)


# ---------------------------------------------------------------------------------------------
# Transaction Status


def query_status(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str], **fields: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the HTTP answer, the result POSTed to ResultURL)."""
    before = len(receiver.items)
    response = client.post(
        "/mpesa/transactionstatus/v1/query", json=status_query(receiver, **fields), headers=auth
    )
    assert response.status_code == 200, response.text
    callback = receiver.wait_for(before + 1)[before]
    assert callback.path == "/status"
    return response.json(), callback.body["Result"]


def test_status_of_a_paid_request(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    paid = pay(client, auth, b2c_body(receiver, "paid-1", Amount=320)).json()
    receipt = receiver.wait_for(1)[0].body["Result"]["TransactionID"]

    answer, result = query_status(client, receiver, auth, OriginatorConversationID="paid-1")
    assert answer["ResponseCode"] == "0"
    assert answer["OriginatorConversationID"] != "paid-1"
    assert answer["ConversationID"].startswith("AG_")
    assert result["ResultCode"] == 0
    assert result["OriginatorConversationID"] == answer["OriginatorConversationID"]
    params = parameters(result)
    assert params["ReceiptNo"] == receipt
    assert params["TransactionStatus"] == "Completed"
    assert params["Amount"] == 320
    assert params["OriginatorConversationID"] == "paid-1"
    assert params["ConversationID"] == paid["ConversationID"]
    assert result["ReferenceData"]["ReferenceItem"] == {"Key": "Occasion", "Value": "paid-1"}

    # By receipt alone, too.
    _, by_receipt = query_status(client, receiver, auth, TransactionID=receipt)
    assert parameters(by_receipt)["OriginatorConversationID"] == "paid-1"


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("fail", "The initiator information is invalid."),
        ("timeout", "The service request timed out."),
    ],
)
def test_status_of_a_failed_request(
    sim: DarajaSimulator,
    client: httpx.Client,
    receiver: Receiver,
    auth: dict[str, str],
    outcome: str,
    reason: str,
) -> None:
    client.post("/sim/script", json={"outcomes": [outcome]})
    pay(client, auth, b2c_body(receiver, "failed-1"))
    settled(sim, receiver)
    _, result = query_status(client, receiver, auth, OriginatorConversationID="failed-1")
    assert result["ResultCode"] == 0
    params = parameters(result)
    assert params["TransactionStatus"] == "Failed"
    assert params["ReasonType"] == reason
    assert params["OriginatorConversationID"] == "failed-1"


@pytest.mark.parametrize("refused_first", [False, True])
def test_status_of_a_request_daraja_never_accepted(
    sim: DarajaSimulator,
    client: httpx.Client,
    receiver: Receiver,
    auth: dict[str, str],
    refused_first: bool,
) -> None:
    if refused_first:
        client.post("/sim/script", json={"outcomes": ["refuse"]})
        assert pay(client, auth, b2c_body(receiver, "never")).status_code == 400
    _, result = query_status(client, receiver, auth, OriginatorConversationID="never")
    assert result["ResultCode"] == 1
    assert result["ResultDesc"] == "The transaction could not be found."
    assert parameters(result) == {"OriginatorConversationID": "never"}
    assert client.get("/sim/state").json()["status_queries"][0]["found"] is False


def test_status_query_needs_an_id_and_a_token(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    url = "/mpesa/transactionstatus/v1/query"
    response = client.post(url, json=status_query(receiver), headers=auth)
    assert response.status_code == 400
    assert response.json()["errorMessage"] == "Bad Request - Invalid TransactionID"
    query = status_query(receiver, OriginatorConversationID="x")
    assert client.post(url, json=query).status_code == 401


# ---------------------------------------------------------------------------------------------
# C2B RegisterURL and Account Balance (tuktuk mpesa register-urls / check)


def register_body(receiver: Receiver, **fields: str) -> dict[str, str]:
    return {
        "ShortCode": "600984",
        "ResponseType": "Completed",
        "ConfirmationURL": receiver.url("/c2b/tok/confirmation"),
        "ValidationURL": receiver.url("/c2b/tok/validation"),
        **fields,
    }


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_c2b_register_url_records_the_urls(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str], version: str
) -> None:
    url = f"/mpesa/c2b/{version}/registerurl"
    answer = client.post(url, json=register_body(receiver), headers=auth)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"OriginatorCoversationID", "ResponseCode", "ResponseDescription"}
    assert (body["ResponseCode"], body["ResponseDescription"]) == ("0", "Success")
    assert client.get("/sim/state").json()["c2b_registrations"] == {
        "600984": {
            "short_code": "600984",
            "response_type": "Completed",
            "confirmation_url": receiver.url("/c2b/tok/confirmation"),
            "validation_url": receiver.url("/c2b/tok/validation"),
        }
    }
    assert client.post(url, json=register_body(receiver)).status_code == 401


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ConfirmationURL", "https://example.com/mpesa/confirmation"),
        ("ValidationURL", "https://example.com/M-PESA/validation"),
        ("ConfirmationURL", "https://example.com/Safaricom"),
        ("ValidationURL", "https://example.com/c2b/xSQLx/validation"),
        ("ConfirmationURL", "https://example.com/query"),
        ("ConfirmationURL", "https://example.com/cmd"),
        ("ConfirmationURL", "https://example.com/run.exe"),
        ("ConfirmationURL", "ftp://example.com/confirmation"),
        ("ResponseType", "Pending"),
        ("ResponseType", "completed"),
        ("ShortCode", "60"),
    ],
)
def test_c2b_register_url_refuses_what_daraja_refuses(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str], field: str, value: str
) -> None:
    answer = client.post(
        "/mpesa/c2b/v1/registerurl", json=register_body(receiver, **{field: value}), headers=auth
    )
    assert answer.status_code == 400
    assert answer.json()["errorMessage"] == f"Bad Request - Invalid {field}"
    assert client.get("/sim/state").json()["c2b_registrations"] == {}


def test_payments_go_to_the_registered_confirmation_url(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    payment = {"trans_id": "REG0000001", "amount": "150", "account": "TUK001"}
    refused = client.post(
        "/sim/c2b-payments", json={"payments": [payment], "confirmation_url": "registered"}
    )
    assert refused.status_code == 400  # nothing registered for the shortcode yet
    assert "no C2B URLs registered" in refused.json()["errorMessage"]
    client.post("/mpesa/c2b/v1/registerurl", json=register_body(receiver), headers=auth)
    client.post("/sim/c2b-payments", json={"payments": [payment], "confirmation_url": "registered"})
    (delivered,) = settled(sim, receiver)
    assert delivered.path == "/c2b/tok/confirmation"
    assert delivered.body["TransID"] == "REG0000001" and delivered.body["TransAmount"] == "150.00"


def balance_body(receiver: Receiver, **fields: str) -> dict[str, str]:
    return {
        "Initiator": "tuktuk-api",
        "SecurityCredential": "c2ltLWNyZWRlbnRpYWw=",
        "CommandID": "AccountBalance",
        "PartyA": "600984",
        "IdentifierType": "4",
        "Remarks": "check",
        "QueueTimeOutURL": receiver.url("/balance-timeout"),
        "ResultURL": receiver.url("/balance"),
        **fields,
    }


def test_account_balance_answers_then_posts_the_balances(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    answer = client.post(
        "/mpesa/accountbalance/v1/query", json=balance_body(receiver), headers=auth
    )
    assert answer.status_code == 200
    accepted = answer.json()
    assert accepted["ResponseCode"] == "0"
    (result,) = settled(sim, receiver)
    assert result.path == "/balance"
    body = result.body["Result"]
    assert body["ResultCode"] == 0
    assert body["OriginatorConversationID"] == accepted["OriginatorConversationID"]
    assert parameters(body)["AccountBalance"].startswith("Working Account|KES|")
    (query,) = client.get("/sim/state").json()["balance_queries"]
    assert query["initiator"] == "tuktuk-api" and query["result_code"] == 0


def test_account_balance_with_another_initiator_gets_2001(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    config = client.post(
        "/sim/config", json={"initiator_name": "ops", "security_credential": "secret"}
    ).json()
    assert config["initiator_name"] == "ops" and "security_credential" not in config
    for wrong in ({"Initiator": "someone"}, {"Initiator": "ops", "SecurityCredential": "guess"}):
        client.post(
            "/mpesa/accountbalance/v1/query", json=balance_body(receiver, **wrong), headers=auth
        )
    client.post(
        "/mpesa/accountbalance/v1/query",
        json=balance_body(receiver, Initiator="ops", SecurityCredential="secret"),
        headers=auth,
    )
    results = settled(sim, receiver)
    codes = sorted(r.body["Result"]["ResultCode"] for r in results)
    assert codes == [0, 2001, 2001]
    failed = next(r.body["Result"] for r in results if r.body["Result"]["ResultCode"] == 2001)
    assert failed["ResultDesc"] == "The initiator information is invalid."
    assert "ResultParameters" not in failed
    bad = client.post(
        "/mpesa/accountbalance/v1/query",
        json=balance_body(receiver, CommandID="TransactionStatusQuery"),
        headers=auth,
    )
    assert (
        bad.status_code == 400 and bad.json()["errorMessage"] == "Bad Request - Invalid CommandID"
    )


# ---------------------------------------------------------------------------------------------
# Controls


def test_state_and_reset(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    client.post("/sim/config", json={"fail_rate": 1})
    client.post("/sim/script", json={"outcomes": ["ok", "ok", "hang"]})
    pay(client, auth, b2c_body(receiver, "a"))
    settled(sim, receiver)
    state = client.get("/sim/state").json()
    assert state["tokens_issued"] == 1
    assert list(state["payments"]) == ["a"]
    assert len(state["b2c_requests"]) == 1 and len(state["callbacks_sent"]) == 1
    assert state["script"] == ["ok", "hang"]

    assert client.post("/sim/reset").json() == {"reset": True}
    assert client.get("/sim/state").json() == {
        "b2c_requests": [],
        "payments": {},
        "tokens_issued": 0,
        "callbacks_sent": [],
        "callbacks_pending": 0,
        "status_queries": [],
        "script": [],
        "c2b_payments": [],
        "pull_registrations": {},
        "pull_queries": [],
        "c2b_registrations": {},
        "balance_queries": [],
    }
    assert client.get("/sim/config").json()["fail_rate"] == 0.0  # the start-up config again
    assert pay(client, auth, b2c_body(receiver, "a")).status_code == 401  # tokens are gone
    fresh = {"Authorization": f"Bearer {get_token(client)}"}
    assert pay(client, fresh, b2c_body(receiver, "a")).status_code == 200  # "a" is new again


def test_config_rates_and_script_precedence(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    config = client.post("/sim/config", json={"fail_rate": 1.0, "callback_delay_ms": 1}).json()
    assert config["fail_rate"] == 1.0 and config["callback_delay_ms"] == 1
    assert "consumer_secret" not in config
    client.post("/sim/script", json={"outcomes": ["ok"]})
    pay(client, auth, b2c_body(receiver, "forced"))
    pay(client, auth, b2c_body(receiver, "rated"))
    settled(sim, receiver)
    payments = client.get("/sim/state").json()["payments"]
    assert payments["forced"]["outcome"] == "ok" and payments["forced"]["paid"] is True
    assert payments["rated"]["outcome"] == "fail" and payments["rated"]["paid"] is False


def test_rates_are_reproducible_with_a_seed(receiver: Receiver) -> None:
    def outcomes(seed: int) -> list[str]:
        config = SimConfig(seed=seed, fail_rate=0.3, timeout_rate=0.2, duplicate_callback_rate=0.2)
        with (
            DarajaSimulator(config) as sim,
            httpx.Client(base_url=sim.url, timeout=WAIT) as client,
        ):
            auth = {"Authorization": f"Bearer {get_token(client)}"}
            for n in range(30):
                assert pay(client, auth, b2c_body(receiver, f"r{n}")).status_code == 200
            assert sim.wait_for_callbacks(WAIT)
            return [p["outcome"] for p in sim.state()["payments"].values()]

    first = outcomes(11)
    assert first == outcomes(11)
    assert {"ok", "fail", "timeout", "duplicate_callback"} <= set(first)


@pytest.mark.parametrize(
    "changes",
    [
        '{"fail_rate": 2}',
        '{"fail_rate": 0.6, "error_rate": 0.6}',
        '{"fail_rate": "lots"}',
        '{"fail_rate": true}',
        '{"fail_rate": 1' + "0" * 400 + "}",
        '{"hang_seconds": 1e400}',
        '{"seed": "x"}',
        '{"callback_retries": null}',
        '{"token_ttl": 0}',
        '{"hang_seconds": -1}',
        '{"callback_delay_ms": 1.5}',
        '{"consumer_secret": "x"}',
        '{"no_such_setting": 1}',
    ],
)
def test_invalid_config_is_refused_and_changes_nothing(client: httpx.Client, changes: str) -> None:
    before = client.get("/sim/config").json()
    response = client.post("/sim/config", content=changes)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.002.02"
    assert client.get("/sim/config").json() == before


@pytest.mark.parametrize(
    "body", [{"outcomes": ["ok", "explode"]}, {"outcomes": "ok"}, {"outcomes": [1]}, {}]
)
def test_invalid_script_is_refused(client: httpx.Client, body: dict[str, Any]) -> None:
    client.post("/sim/script", json={"outcomes": ["fail"]})
    assert client.post("/sim/script", json=body).status_code == 400
    assert client.get("/sim/script").json() == {"outcomes": ["fail"]}


# ---------------------------------------------------------------------------------------------
# Robustness: any input gets a JSON 4xx, never a 5xx or a dead server


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    response = client.get("/mpesa/stkpush/v1/processrequest")  # not simulated
    assert response.status_code == 404
    assert response.json()["errorCode"] == "404.001.01"
    assert client.get("/mpesa/b2c/v3/paymentrequest").status_code == 405
    assert client.get("/mpesa/c2b/v1/registerurl").status_code == 405
    assert client.delete("/sim/state").status_code == 405


MALFORMED = [
    b"",
    b"{bad json",
    b"[]",
    b"null",
    b'"text"',
    b"\xff\xfe\x00",
    b'{"Amount": NaN}',
    b'{"Amount": ' + b"9" * 5000 + b"}",
    b"[" * 100_000,
    b'{"a": ' * 50_000,
]


@pytest.mark.parametrize(
    "path",
    [
        "/mpesa/b2c/v3/paymentrequest",
        "/mpesa/b2c/v1/paymentrequest",
        "/mpesa/transactionstatus/v1/query",
        "/mpesa/c2b/v1/registerurl",
        "/mpesa/accountbalance/v1/query",
        "/sim/config",
        "/sim/script",
    ],
)
def test_malformed_bodies_get_a_4xx(client: httpx.Client, auth: dict[str, str], path: str) -> None:
    for body in MALFORMED:
        response = client.post(path, content=body, headers=auth)
        assert 400 <= response.status_code < 500, (body[:20], response.status_code)
        assert response.json()["errorCode"].startswith("400")
    assert client.get("/sim/state").json()["payments"] == {}


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=4,
)
# For each B2C field: keep the valid value, leave it out, or put anything JSON can carry there.
FIELD_CHANGE = st.one_of(st.just("keep"), st.just("drop"), JSON_VALUES)


B2C_FIELDS = (
    "OriginatorConversationID",
    "InitiatorName",
    "SecurityCredential",
    "CommandID",
    "Amount",
    "PartyA",
    "PartyB",
    "Remarks",
    "QueueTimeOutURL",
    "ResultURL",
    "Occasion",
)


@given(changes=st.dictionaries(st.sampled_from(B2C_FIELDS), FIELD_CHANGE))
def test_any_b2c_body_gets_a_daraja_answer(
    client: httpx.Client, receiver: Receiver, auth: dict[str, str], changes: dict[str, Any]
) -> None:
    body = b2c_body(receiver, f"fuzz-{time.monotonic_ns()}")
    for key, change in changes.items():
        if change == "drop":
            del body[key]
        elif change != "keep":
            body[key] = change
    response = client.post("/mpesa/b2c/v3/paymentrequest", json=body, headers=auth)
    answer = response.json()
    if response.status_code == 500:  # only a reused id (the fuzzer may repeat one)
        assert answer["errorCode"] == "500.002.1001"
    else:
        assert response.status_code in {200, 400}, answer
        assert response.status_code == 400 or answer["ResponseCode"] == "0"


def raw_exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass  # the server closed with our unread bytes pending; the answer came first
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /sim/state HTTP/9.9\r\n\r\n",
        b"POST /sim/config HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n{}",
        b"POST /sim/config HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n{}",
        b"POST /sim/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        b"POST /sim/config HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{}",
        b"BREW /coffee HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    ],
)
def test_protocol_garbage_gets_a_4xx_and_the_server_lives(
    sim: DarajaSimulator, client: httpx.Client, request_bytes: bytes
) -> None:
    answer = raw_exchange(sim.url, request_bytes)
    status_line = answer.split(b"\r\n", 1)[0]
    match = re.match(rb"HTTP/1\.[01] (\d{3})", status_line)
    if match:  # http.server answers an unparseable request line without a status line
        # 501/505: an HTTP method or version the server does not speak, as HTTP says.
        assert 400 <= int(match.group(1)) < 500 or int(match.group(1)) in {501, 505}
    else:
        assert b"errorCode" in answer
    assert client.get("/sim/state").status_code == 200


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (
            b"POST /sim/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n",
            411,
            "Length Required: send Content-Length, not chunked",
        ),
        (
            b"POST /sim/config HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n{}",
            400,
            "Bad Request - Invalid Content-Length",
        ),
        (
            b"POST /sim/config HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{}",
            413,
            "Request Entity Too Large",
        ),
        (
            # The client says 20 bytes, sends 2 and stops sending (half-close).
            b'POST /sim/config HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{"fail_rate": 1',
            400,
            "Bad Request - Incomplete body",
        ),
    ],
)
def test_bodies_the_simulator_will_not_read_get_a_json_error_and_change_nothing(
    sim: DarajaSimulator, client: httpx.Client, request_bytes: bytes, status: int, message: str
) -> None:
    host, port = sim.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0] == f"HTTP/1.0 {status} {HTTPStatus(status).phrase}".encode()
    assert b"Content-Type: application/json" in head
    error = json.loads(body)
    assert error["errorCode"] == f"{status}.000.00" and error["errorMessage"] == message
    assert client.get("/sim/config").json()["fail_rate"] == 0.0


def test_one_answer_per_connection_with_exact_content_length(sim: DarajaSimulator) -> None:
    host, port = sim.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        for _ in range(3):
            connection.request("GET", "/sim/state")
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            assert response.getheader("Content-Type") == "application/json"
            assert response.getheader("Server") == "DarajaSimulator/1.0"
            assert int(response.getheader("Content-Length") or -1) == len(body)
            # HTTP/1.0: the client knows not to reuse the socket, and reconnects for the next.
            assert response.version == 10 and response.will_close
        connection.request("POST", "/sim/nowhere", body=b"{}")
        response = connection.getresponse()
        assert response.status == 404 and json.loads(response.read())["errorCode"]
        connection.request("HEAD", "/sim/state")
        response = connection.getresponse()
        assert response.status == 405 and response.read() == b""
    finally:
        connection.close()


def test_pooled_httpx_clients_work_from_many_threads(sim: DarajaSimulator) -> None:
    """Our Daraja client keeps connections alive; every request must still get its answer."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    with (
        httpx.Client(base_url=sim.url, timeout=WAIT, limits=limits) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        tokens = list(pool.map(lambda _: get_token(client), range(200)))
        assert client.get("/sim/state").json()["tokens_issued"] == 200
    assert len(set(tokens)) == 200


def test_hanging_requests_do_not_hold_up_the_others(
    sim: DarajaSimulator, client: httpx.Client, receiver: Receiver, auth: dict[str, str]
) -> None:
    sim.configure(hang_seconds=600)
    sim.script(*["hang"] * 4)
    with ThreadPoolExecutor(4) as pool:
        hanging = [
            pool.submit(pay, client, auth, b2c_body(receiver, f"worker-{n}")) for n in range(4)
        ]
        # Each hanging request sends its result while it hangs: all four are in at once.
        assert len(receiver.wait_for(4)) == 4
        assert not any(future.done() for future in hanging)
        state = client.get("/sim/state").json()
        assert sorted(state["payments"]) == [f"worker-{n}" for n in range(4)]
        assert pay(client, auth, b2c_body(receiver, "meanwhile")).status_code == 200
        sim.stop()  # releases the hanging requests at once: they are answered, not dropped
        assert [future.result(timeout=WAIT).status_code for future in hanging] == [200] * 4


def test_the_app_is_a_valid_wsgi_application() -> None:
    service = DarajaService(SimConfig())
    app = validator(SimulatorApp(service))

    def call(method: str, path: str, body: bytes = b"") -> tuple[str, dict[str, str], bytes]:
        path, _, query = path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        setup_testing_defaults(environ)
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            answer.update(status=status, headers=dict(headers))

        result = app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            result.close()  # type: ignore[attr-defined]
        return answer["status"], answer["headers"], data

    try:
        status, headers, data = call("POST", "/sim/config", b'{"fail_rate": 0.5}')
        assert status == "200 OK" and json.loads(data)["fail_rate"] == 0.5
        assert headers["Content-Length"] == str(len(data))
        status, _, data = call("GET", "/oauth/v1/generate?grant_type=password")
        assert status == "400 Bad Request" and json.loads(data)["errorCode"] == "400.008.02"
        status, _, data = call("GET", "/sim/state")
        assert status == "200 OK" and json.loads(data)["tokens_issued"] == 0
    finally:
        service.close()


# ---------------------------------------------------------------------------------------------
# `tuktuk daraja-sim`


@pytest.mark.timeout(60)
def test_daraja_sim_command_serves_until_sigterm() -> None:
    env = child_env(database=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "tuktuk", "daraja-sim", "--port", "0", "--token-ttl", "42"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        response = httpx.get(
            f"{match.group(0)}/oauth/v1/generate?grant_type=client_credentials",
            auth=("sim-key", "sim-secret"),
            timeout=WAIT,
        )
        assert response.json()["expires_in"] == "42"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
