from django.contrib import admin
from django.urls import include, path

from tuktuk.backoffice.api import api
from tuktuk.backoffice.dashboard_views import dashboard_index, root_redirect
from tuktuk.backoffice.frappe import frappe_method
from tuktuk.backoffice.views import health

urlpatterns = [
    # The dashboard is the admin's index; / leads there (or, signed out, to the login).
    path("admin/", admin.site.admin_view(dashboard_index), name="dashboard"),
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("", include("tuktuk.backoffice.metrics")),  # GET /metrics (Prometheus)
    path("api/v1/", api.urls),
    # The legacy app's calls, as Frappe serves them (tuktuk_management.api.tuktuk.*).
    path("api/method/<str:path>", frappe_method, name="frappe-method"),
    path("", include("tuktuk.mpesa.urls")),
    # The driver portal, and the SMS provider's delivery reports (issue 14).
    path("portal/", include("tuktuk.backoffice.portal.urls")),
    path("", include("tuktuk.backoffice.sms.urls")),
    path("", root_redirect, name="root"),
]
