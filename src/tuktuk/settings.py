"""Django settings for TukTuk Ledger. Everything an operator sets comes from TUKTUK_* variables."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql

from tuktuk import config
from tuktuk.backoffice.admin_theme import UNFOLD_SETTINGS

# Lets Django's MySQL backend use PyMySQL (pure Python) in place of mysqlclient.
pymysql.install_as_MySQLdb()

# Everything read from the environment (README.md, "Configuration"): DATA_DIR, SECRET_KEY,
# DEBUG, ALLOWED_HOSTS, DATABASES, TIME_ZONE, the callback, M-Pesa, payout and alert settings,
# EMAIL_*, LOG_LEVEL. A bad value stops here with ImproperlyConfigured naming the variable.
_env = config.read_settings()
# The Django EMAIL_* settings depend on the URL's scheme (see config.email_settings).
globals().update({key: value for key, value in _env.items() if key.startswith("EMAIL_")})

# Named one by one (not a globals() update) so that type checkers know every setting we read.
DATA_DIR: Path = _env["DATA_DIR"]
SECRET_KEY: str = _env["SECRET_KEY"]
DEBUG: bool = _env["DEBUG"]
ALLOWED_HOSTS: list[str] = _env["ALLOWED_HOSTS"]
CSRF_TRUSTED_ORIGINS: list[str] = _env["CSRF_TRUSTED_ORIGINS"]
DATABASES: dict[str, Any] = _env["DATABASES"]
TIME_ZONE: str = _env["TIME_ZONE"]
DATA_UPLOAD_MAX_MEMORY_SIZE: int = _env["DATA_UPLOAD_MAX_MEMORY_SIZE"]
CALLBACK_TOKEN: str = _env["CALLBACK_TOKEN"]
CALLBACK_ALLOWED_IPS: list[Any] = _env["CALLBACK_ALLOWED_IPS"]
CALLBACK_TRUST_FORWARDED_FOR: bool = _env["CALLBACK_TRUST_FORWARDED_FOR"]
METRICS_TOKEN: str = _env["METRICS_TOKEN"]
MAX_PAYMENT_AMOUNT: Decimal = _env["MAX_PAYMENT_AMOUNT"]
POSTING_MAX_ATTEMPTS: int = _env["POSTING_MAX_ATTEMPTS"]
DAY_CLOSE_SETTLE_SECONDS: int = _env["DAY_CLOSE_SETTLE_SECONDS"]
POSTING_CLOSE_WAIT_SECONDS: float = _env["POSTING_CLOSE_WAIT_SECONDS"]
POSTING_MODE: str = _env["POSTING_MODE"]
ENGINE_BATCH_SIZE: int = _env["ENGINE_BATCH_SIZE"]
ENGINE_POLL_SECONDS: float = _env["ENGINE_POLL_SECONDS"]
ENGINE_GATHER_SECONDS: float = _env["ENGINE_GATHER_SECONDS"]
STORE_GROUPING: bool = _env["STORE_GROUPING"]
FLEET_SETTINGS_CACHE_SECONDS: int = _env["FLEET_SETTINGS_CACHE_SECONDS"]
MPESA_BASE_URL: str = _env["MPESA_BASE_URL"]
MPESA_CONSUMER_KEY: str = _env["MPESA_CONSUMER_KEY"]
MPESA_CONSUMER_SECRET: str = _env["MPESA_CONSUMER_SECRET"]
MPESA_SHORTCODE: str = _env["MPESA_SHORTCODE"]
MPESA_INITIATOR_NAME: str = _env["MPESA_INITIATOR_NAME"]
MPESA_SECURITY_CREDENTIAL: str = _env["MPESA_SECURITY_CREDENTIAL"]
MPESA_B2C_PATH: str = _env["MPESA_B2C_PATH"]
MPESA_TIMEOUT_SECONDS: float = _env["MPESA_TIMEOUT_SECONDS"]
PUBLIC_URL: str = _env["PUBLIC_URL"]
PAYOUT_MAX_ATTEMPTS: int = _env["PAYOUT_MAX_ATTEMPTS"]
PAYOUT_BATCH_SIZE: int = _env["PAYOUT_BATCH_SIZE"]
PAYOUT_SENDING_STALE_SECONDS: int = _env["PAYOUT_SENDING_STALE_SECONDS"]
PAYOUT_STATUS_QUERY: bool = _env["PAYOUT_STATUS_QUERY"]
ALERT_EMAILS: list[str] = _env["ALERT_EMAILS"]
DEFAULT_FROM_EMAIL: str = _env["DEFAULT_FROM_EMAIL"]
RECONCILE_EVERY_HOURS: float = _env["RECONCILE_EVERY_HOURS"]
RETENTION_DAYS: int = _env["RETENTION_DAYS"]
ARCHIVE_DIR: Path = _env["ARCHIVE_DIR"]
PULL_ENABLED: bool | None = _env["PULL_ENABLED"]
PULL_EVERY_MINUTES: int = _env["PULL_EVERY_MINUTES"]
PULL_OVERLAP_MINUTES: int = _env["PULL_OVERLAP_MINUTES"]
MPESA_PULL_NOMINATED_NUMBER: str = _env["MPESA_PULL_NOMINATED_NUMBER"]
LOG_LEVEL: str = _env["LOG_LEVEL"]
SMS_GATEWAY: str = _env["SMS_GATEWAY"]
AT_USERNAME: str = _env["AT_USERNAME"]
AT_API_KEY: str = _env["AT_API_KEY"]
AT_SENDER_ID: str = _env["AT_SENDER_ID"]
AT_BASE_URL: str = _env["AT_BASE_URL"]
SMS_TIMEOUT_SECONDS: float = _env["SMS_TIMEOUT_SECONDS"]
SMS_BATCH_SIZE: int = _env["SMS_BATCH_SIZE"]
SMS_SENDING_STALE_SECONDS: int = _env["SMS_SENDING_STALE_SECONDS"]
SMS_ALERT_AFTER_ATTEMPTS: int = _env["SMS_ALERT_AFTER_ATTEMPTS"]
SMS_EXPIRE_HOURS: float = _env["SMS_EXPIRE_HOURS"]
PORTAL_LOCKOUT_FAILURES: int = _env["PORTAL_LOCKOUT_FAILURES"]
PORTAL_LOCKOUT_MINUTES: int = _env["PORTAL_LOCKOUT_MINUTES"]
_named = {key for key in globals() if key.isupper()}
_missing = set(_env) - _named
assert not _missing, f"settings read but not named here: {sorted(_missing)}"

INSTALLED_APPS = [
    # The admin's theme (docs/back-office.md): before django.contrib.admin, so its templates
    # win; its app config makes admin.site an UnfoldAdminSite.
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Our layers, lowest first: each imports only those listed before it (import-linter).
    "tuktuk.core",
    "tuktuk.fleet",
    "tuktuk.ledger",
    "tuktuk.payouts",
    "tuktuk.mpesa",
    "tuktuk.backoffice",
    # Inside the back office layer, as apps of their own (their own migrations): the driver
    # portal and driver SMS (docs/driver-portal-and-sms.md).
    "tuktuk.backoffice.portal",
    "tuktuk.backoffice.sms",
    # The stored daily and weekly reports (docs/back-office.md).
    "tuktuk.backoffice.reports",
    # Lockout after repeated failed driver PINs; its models stay out of the admin
    # (AXES_ENABLE_ADMIN), operators unlock a driver with `tuktuk portal unlock`.
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out portal login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

# The portal's lockout backend first (django-axes; it only looks at driver logins, see
# tuktuk.backoffice.portal.auth), then operators by username and password (Django's
# ModelBackend, never a driver's login), then drivers by M-Pesa number and PIN (or a one-time
# code sent by SMS).
AUTHENTICATION_BACKENDS = [
    "tuktuk.backoffice.portal.auth.PortalLockoutBackend",
    "tuktuk.backoffice.portal.auth.OperatorBackend",
    "tuktuk.backoffice.portal.auth.DriverPinBackend",
]
# django-axes: a driver's number is locked after this many failed PINs or codes in a row, for
# this long (by number, not by IP address: Kenyan mobile networks put many phones behind one).
AXES_FAILURE_LIMIT = PORTAL_LOCKOUT_FAILURES
AXES_COOLOFF_TIME = dt.timedelta(minutes=PORTAL_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_USERNAME_CALLABLE = "tuktuk.backoffice.portal.auth.lockout_username"
AXES_WHITELIST_CALLABLE = "tuktuk.backoffice.portal.auth.not_a_driver_login"
AXES_LOCKOUT_CALLABLE = "tuktuk.backoffice.portal.views.locked_out"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ADMIN = False
AXES_PASSWORD_FORM_FIELD = "pin"  # noqa: S105 - the name of a form field, not a secret
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "pin", "code", "new_pin", "new_pin_again"]
AXES_VERBOSE = False
# axes.W006 asks for the IP address among the lockout parameters; by number alone, failures
# are summed over every address and browser that tried it, so rotating them gains nothing,
# and an address shared by a whole mobile network must not lock every driver behind it.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

# Branding and the sidebar of the admin (django-unfold).
UNFOLD = UNFOLD_SETTINGS

ROOT_URLCONF = "tuktuk.urls"
WSGI_APPLICATION = "tuktuk.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = _env["DATA_DIR"] / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing directory
# Serve the apps' static files (the bundled Chart.js and Swagger UI, the admin's CSS) even
# where `collectstatic` has not run, e.g. a server started by the tests.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "tuktuk.core.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stderr"], "level": _env["LOG_LEVEL"]},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
