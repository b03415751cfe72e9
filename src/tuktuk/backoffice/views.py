from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse


def health(request: HttpRequest) -> JsonResponse:
    """Liveness plus a database round trip; used by load balancers and the test harness."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok", "database": connection.vendor})
    except Exception as exc:  # any database failure means "not healthy", never a 500 page
        return JsonResponse({"status": "error", "error": type(exc).__name__}, status=503)
