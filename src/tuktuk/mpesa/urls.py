from django.urls import path

from tuktuk.mpesa import views

urlpatterns = [
    path("c2b/<str:token>/validation", views.c2b_validation, name="c2b-validation"),
    path("c2b/<str:token>/confirmation", views.c2b_confirmation, name="c2b-confirmation"),
]
