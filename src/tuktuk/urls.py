from django.contrib import admin
from django.urls import include, path

from tuktuk.backoffice.api import api
from tuktuk.backoffice.views import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("api/v1/", api.urls),
    path("", include("tuktuk.mpesa.urls")),
]
