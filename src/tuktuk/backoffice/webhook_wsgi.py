"""The WSGI application: the webhooks take a short lane, everything else the whole middleware.

Daraja's callbacks (C2B validation and confirmation, B2C results and timeouts, status
results), Africa's Talking's SMS delivery reports and the load balancers' `/health` are
machine-to-machine requests: no browser, no cookie, no user, no form, and the views are
csrf_exempt. Yet every request ran the whole MIDDLEWARE list, sessions, CSRF, auth, messages,
clickjacking and django-axes included (issue 15: the webhook is the hot path). Here those
paths go to a Django handler whose chain keeps only what still applies to them (the security
headers and redirect, and CommonMiddleware's host check, DISALLOWED_USER_AGENTS and
Content-Length); every other path goes to the ordinary handler, so the admin, the API and the
driver portal keep all of it. Both handlers are WSGIHandlers: request_started and
request_finished (database connection handling) are sent for every request either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.types import StartResponse, WSGIEnvironment

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse
from django.utils.module_loading import import_string

from tuktuk.core.db import health_check_skip

if TYPE_CHECKING:
    from tuktuk.backoffice.confirmation_lane import ConfirmationLane

# The middleware the webhook lane keeps, in the order settings.MIDDLEWARE has them (a
# middleware removed from the settings is removed here too).
WEBHOOK_MIDDLEWARE_KEPT = frozenset(
    {
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    }
)

_PLACEHOLDER = "PLACEHOLDER0"  # letters and digits only: re.escape leaves it as it is


def webhook_middleware() -> list[str]:
    return [path for path in settings.MIDDLEWARE if path in WEBHOOK_MIDDLEWARE_KEPT]


def webhook_url_names() -> list[str]:
    """Every M-Pesa callback URL and the SMS delivery reports: each has the token in its path."""
    # Imported here: the views need the app registry, ready only after django.setup().
    from tuktuk.backoffice.sms import urls as sms_urls
    from tuktuk.mpesa import urls as mpesa_urls

    return [p.name for p in (*mpesa_urls.urlpatterns, *sms_urls.urlpatterns) if p.name]


def _token_paths(names: list[str]) -> list[str]:
    """The URLs of these names with any token, as regular expressions."""
    one_segment = "[^/]+"
    return [
        re.escape(reverse(name, kwargs={"token": _PLACEHOLDER})).replace(_PLACEHOLDER, one_segment)
        for name in names
    ]


def _exactly(alternatives: list[str]) -> re.Pattern[str]:
    return re.compile("(?:{})\\Z".format("|".join(alternatives)))


def webhook_paths() -> re.Pattern[str]:
    """The webhook URLs with any token (a wrong one is answered 404 by the view, as before) and
    /health; nothing else, not even with a trailing slash, so that no page lands in the lane."""
    return _exactly([*_token_paths(webhook_url_names()), re.escape(reverse("health"))])


def stored_first_paths() -> re.Pattern[str]:
    """The M-Pesa callbacks whose views store the body before anything else touches the
    database (mpesa.views._stored_callback_view: the C2B confirmation, the B2C and status
    results and timeouts), through callbacks.callback_store, which replaces a dead connection
    itself."""
    from tuktuk.mpesa import urls as mpesa_urls
    from tuktuk.mpesa.views import STORED_FIRST

    return _exactly(
        _token_paths(
            [p.name for p in mpesa_urls.urlpatterns if p.name and p.callback in STORED_FIRST]
        )
    )


class WebhookWSGIHandler(WSGIHandler):
    """Django's WSGI handler with the short middleware chain of webhook_middleware()."""

    # BaseHandler's private attributes and method, left out of django-stubs.
    _view_middleware: list[Callable[..., Any]]
    _template_response_middleware: list[Callable[..., Any]]
    _exception_middleware: list[Callable[..., Any]]
    _middleware_chain: Callable[..., Any]
    _get_response: Callable[[HttpRequest], HttpResponseBase]

    def __init__(self, *, stored_first: re.Pattern[str] | None = None) -> None:
        super().__init__()
        self.stored_first = stored_first or stored_first_paths()

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        if self.stored_first.match(request.path_info):
            health_check_skip()  # the view's first statement is the store
        return super().get_response(request)

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler.load_middleware, for synchronous middleware only, over our list rather
        # than settings.MIDDLEWARE (which it reads directly).
        if is_async:
            raise ImproperlyConfigured("the webhook lane is a WSGI handler only")
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        for middleware_path in reversed(webhook_middleware()):
            try:
                middleware = import_string(middleware_path)(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(middleware, "process_view"):
                self._view_middleware.insert(0, middleware.process_view)
            if hasattr(middleware, "process_template_response"):
                self._template_response_middleware.append(middleware.process_template_response)
            if hasattr(middleware, "process_exception"):
                self._exception_middleware.append(middleware.process_exception)
            handler = convert_exception_to_response(middleware)
        self._middleware_chain = handler


class WebhookDispatcher:
    """Sends the C2B confirmations to their own lane (backoffice.confirmation_lane, which hands
    what it does not answer to the webhook lane), the other webhook paths to the short lane,
    every other request to the full handler."""

    def __init__(
        self,
        *,
        full: WSGIHandler,
        webhooks: WSGIHandler,
        paths: re.Pattern[str],
        confirmations: ConfirmationLane | None = None,
    ) -> None:
        # Imported here: the lane's rules need the app registry, ready only after django.setup().
        from tuktuk.backoffice.confirmation_lane import ConfirmationLane

        self.full = full
        self.webhooks = webhooks
        self.paths = paths
        self.confirmations = confirmations or ConfirmationLane(
            fallback=webhooks, middleware=webhook_middleware()
        )

    def handler_for(self, path_info: str) -> WSGIHandler | ConfirmationLane:
        if not self.paths.match(path_info):
            return self.full
        if self.confirmations.matches(path_info):
            return self.confirmations
        return self.webhooks

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[Any]:
        # PATH_INFO, like Django's own routing (SCRIPT_NAME, a mount point, is not in it).
        return self.handler_for(environ.get("PATH_INFO", ""))(environ, start_response)


def wsgi_application() -> WebhookDispatcher:
    """What django.core.wsgi.get_wsgi_application() does, with the webhook lane."""
    django.setup(set_prefix=False)
    return WebhookDispatcher(
        full=WSGIHandler(), webhooks=WebhookWSGIHandler(), paths=webhook_paths()
    )
