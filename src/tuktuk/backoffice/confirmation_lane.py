"""The C2B confirmation's own lane: store and acknowledge without Django's request handling.

With the posting engine (`TUKTUK_POSTING=engine`) a confirmation's request only stores the body
and answers `{"ResultCode": 0}` (docs/posting-engine.md), and that answer is what caps how many
confirmations a two-core server takes in per second (issue 15). Django's handling around it,
the request and response objects, the URL resolver and the webhook lane's two middlewares,
cost about a third of the request's CPU. Here the WSGI call is answered directly when every
check a Django request would make plainly passes:

- a POST to `/c2b/<token>/confirmation` with the right token (compared in constant time);
- a Content-Length within DATA_UPLOAD_MAX_MEMORY_SIZE and the whole body read;
- a Host that ALLOWED_HOSTS accepts (Django's own `validate_host`);
- a caller and a body the confirmation view would accept (`callbacks.confirmation_refusal`,
  the view's own rule);
- and the body stored (`callbacks.confirmation_store`, the view's own store without the model
  instance it would return).

Anything else, a refusal, an error, or settings under which Django would answer differently
(DEBUG, USE_X_FORWARDED_HOST, SECURE_SSL_REDIRECT, HSTS), goes to the webhook lane's Django
handler with the body as read, which answers exactly as before: 400 with the reason stored, 404,
405, 413, 503. The acknowledgement itself is Django's: the view's `accepted()` response as the
webhook lane's middleware leaves it, built once when the lane starts.
tests/backoffice/test_server.py holds the lane to the Django lanes' answers, byte for byte.

Hand-written rather than a framework's: it is one path whose every rule is the view's own; what
it leaves out is only Django's generic machinery around them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host
from django.urls import reverse
from django.utils.http import parse_header_parameters
from django.utils.module_loading import import_string

from tuktuk.core.db import health_check_skip
from tuktuk.mpesa import callbacks, views

logger = logging.getLogger(__name__)
_PLACEHOLDER = "PLACEHOLDER0"


def _no_view(request: HttpRequest) -> None:  # pragma: no cover - only process_response is used
    raise AssertionError("the acknowledgement is built without a view")


def _acknowledgement(middleware: list[str]) -> tuple[str, list[tuple[str, str]], bytes]:
    """The view's answer to a stored confirmation as the webhook lane's middleware leaves it
    (the security headers, Content-Length): status line, headers, body."""
    response = views.accepted()
    request = HttpRequest()
    for path in reversed(middleware):  # responses go back through them in reverse order
        instance = import_string(path)(_no_view)
        if hasattr(instance, "process_response"):
            response = instance.process_response(request, response)
    status = f"{response.status_code} {response.reason_phrase}"
    return status, [*response.items()], response.content


class ConfirmationLane:
    """A WSGI application for the confirmation path; `fallback` (the webhook lane's Django
    handler) answers whatever this does not."""

    def __init__(self, *, fallback: WSGIHandler, middleware: list[str]) -> None:
        self.fallback = fallback
        prefix, suffix = reverse("c2b-confirmation", kwargs={"token": _PLACEHOLDER}).split(
            _PLACEHOLDER
        )
        self.prefix, self.suffix = prefix, suffix
        self.status, self.headers, self.body = _acknowledgement(middleware)

    def _token(self, path: str) -> str:
        return path[len(self.prefix) : len(path) - len(self.suffix)]

    def matches(self, path: str) -> bool:
        """A confirmation path, with any token (a wrong one is the view's 404)."""
        token = self._token(path)
        return (
            path.startswith(self.prefix)
            and path.endswith(self.suffix)
            and bool(token)
            and "/" not in token
        )

    @staticmethod
    def enabled() -> bool:
        """Only where Django would answer a stored confirmation with exactly these bytes."""
        return (
            settings.POSTING_MODE == callbacks.POSTING_ENGINE
            and not settings.DEBUG
            and not settings.USE_X_FORWARDED_HOST
            and not settings.SECURE_SSL_REDIRECT
            and not settings.SECURE_HSTS_SECONDS
        )

    def _host_allowed(self, environ: WSGIEnvironment) -> bool:
        # HttpRequest._get_raw_host without X-Forwarded-Host (enabled() requires it off).
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if not environ.get("HTTP_HOST"):
            port = str(environ.get("SERVER_PORT", ""))
            scheme_port = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
            if port != scheme_port:
                host = f"{host}:{port}"
        domain, _ = split_domain_port(host)
        return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)

    def _body(self, environ: WSGIEnvironment) -> bytes | None:
        """The whole body when its declared length is within the limit, else None (unread)."""
        declared = environ.get("CONTENT_LENGTH") or ""
        if not declared.isascii() or not declared.isdigit():
            return None
        length = int(declared)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length == 0 or (limit is not None and length > limit):
            return None
        body: bytes = environ["wsgi.input"].read(length)
        return body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[Any]:
        token = self._token(environ.get("PATH_INFO", ""))
        if not (
            self.enabled()
            and environ.get("REQUEST_METHOD") == "POST"
            and views.token_matches(token)
            and self._host_allowed(environ)
        ):
            return self.fallback(environ, start_response)
        body = self._body(environ)
        if body is None:
            return self.fallback(environ, start_response)
        if self._acknowledged(environ, body):
            start_response(self.status, list(self.headers))
            return [self.body]
        # Refused, or not stored: Django's lane stores and answers it, from the body as read.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.fallback(environ, start_response)

    def _acknowledged(self, environ: WSGIEnvironment, body: bytes) -> bool:
        """Stored when the view would accept it; False (nothing stored) otherwise."""
        content_type, _ = parse_header_parameters(environ.get("CONTENT_TYPE", ""))
        remote_addr = views.remote_address_of(environ)
        if len(body) != int(environ["CONTENT_LENGTH"]):
            return False  # the sender stopped short: the view's reading of it applies
        try:
            refusal = callbacks.confirmation_refusal(
                body=body, content_type=content_type, remote_addr=remote_addr
            )
        except Exception:  # a bug in a rule: the view stores the body first, then finds it
            logger.exception("the confirmation lane could not check a body")
            return False
        if refusal is not None:
            return False
        # Django's connection handling around a request (close_old_connections), as the
        # handlers send it; the store needs no health check first (webhook_wsgi says why).
        request_started.send(sender=self.__class__, environ=environ)
        try:
            health_check_skip()  # the view's first statement is the store
            callbacks.confirmation_store(
                body=body, content_type=content_type, remote_addr=remote_addr
            )
        except Exception:
            # Django's lane stores it again, or answers 503 if it cannot either.
            logger.warning("the confirmation lane could not store a body", exc_info=True)
            return False
        finally:
            request_finished.send(sender=self.__class__)
        return True
