from django.urls import path

from tuktuk.backoffice.portal import views

app_name = "portal"

# No URL here names a driver: the driver is the one logged in.
urlpatterns = [
    path("", views.home, name="home"),
    path("today/live", views.today_live, name="today-live"),
    path("login", views.login_view, name="login"),
    path("logout", views.logout_view, name="logout"),
    path("code", views.code_request, name="code"),
    path("code/login", views.code_login, name="code-login"),
    path("pin", views.pin_change, name="pin"),
    path("fares/<str:trans_id>", views.fare, name="fare"),
    path("deposit", views.deposit, name="deposit"),
    path("statement", views.statement, name="statement"),
    path("statement.csv", views.statement_csv, name="statement-csv"),
    path("problems", views.problems, name="problems"),
    path("problems/new", views.problem_new, name="problem-new"),
    path("problems/<int:report_id>", views.problem, name="problem"),
]
