from django.urls import path

from tuktuk.backoffice.sms import views

urlpatterns = [
    path("sms/<str:token>/delivery-report", views.delivery_report, name="sms-delivery-report"),
]
