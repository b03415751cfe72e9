from django.contrib import admin
from django.urls import include, path

from tuktuk.operations.views import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("", include("tuktuk.mpesa.urls")),
]
