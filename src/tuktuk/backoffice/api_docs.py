"""The API docs page (/api/v1/docs) from our own static files.

django-ninja serves Swagger UI from a CDN unless "ninja" is an installed app (then from its own
copy); ours is the swagger-ui-dist release bundled under static/backoffice/vendor/swagger-ui,
rendered by our template, so the page works without internet and sends nothing elsewhere.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja.openapi.docs import Swagger

if TYPE_CHECKING:
    from ninja import NinjaAPI


class OfflineSwagger(Swagger):
    template = "backoffice/swagger.html"

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {"swagger_settings": json.dumps(self.settings), "api": api}
        return render(request, self.template, context)
