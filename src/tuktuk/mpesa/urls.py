from django.urls import path

from tuktuk.mpesa import views

urlpatterns = [
    path("c2b/<str:token>/validation", views.c2b_validation, name="c2b-validation"),
    path("c2b/<str:token>/confirmation", views.c2b_confirmation, name="c2b-confirmation"),
    path("b2c/<str:token>/result", views.b2c_result, name="b2c-result"),
    path("b2c/<str:token>/timeout", views.b2c_timeout, name="b2c-timeout"),
    path("b2c/<str:token>/status-result", views.status_result, name="b2c-status-result"),
    path("b2c/<str:token>/status-timeout", views.status_timeout, name="b2c-status-timeout"),
]
