"""Django settings for TukTuk Ledger. Everything an operator sets comes from TUKTUK_* variables."""

from __future__ import annotations

from decimal import Decimal

import pymysql

from tuktuk import config

# Lets Django's MySQL backend use PyMySQL (pure Python) in place of mysqlclient.
pymysql.install_as_MySQLdb()

DATA_DIR = config.data_dir()
SECRET_KEY = config.generated_secret("TUKTUK_SECRET_KEY", "secret_key")
DEBUG = config.env_bool("TUKTUK_DEBUG", False)
ALLOWED_HOSTS = config.env_list("TUKTUK_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = config.env_list("TUKTUK_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Our layers, lowest first; each imports only those above it in this list.
    "tuktuk.core",
    "tuktuk.fleet",
    "tuktuk.ledger",
    "tuktuk.payouts",
    "tuktuk.mpesa",
    "tuktuk.backoffice",
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
]

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

DATABASES = {"default": config.database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = config.env_str("TUKTUK_TIME_ZONE", "Africa/Nairobi")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing directory
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Daraja posts a few hundred bytes; anything far larger is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = config.env_int("TUKTUK_MAX_BODY_BYTES", 64 * 1024)

# C2B callbacks. Safaricom does not sign callbacks: the secret path token and an optional
# IP allowlist are the only ways to tell its calls from forgeries.
CALLBACK_TOKEN = config.generated_secret("TUKTUK_CALLBACK_TOKEN", "callback_token")
CALLBACK_ALLOWED_IPS = config.env_list("TUKTUK_CALLBACK_ALLOWED_IPS")
CALLBACK_TRUST_FORWARDED_FOR = config.env_bool("TUKTUK_TRUST_X_FORWARDED_FOR", False)
MAX_PAYMENT_AMOUNT = Decimal(config.env_str("TUKTUK_MAX_PAYMENT_AMOUNT", "250000"))
POSTING_MAX_ATTEMPTS = config.env_int("TUKTUK_POSTING_MAX_ATTEMPTS", 8)

# Daraja (M-Pesa) credentials come from the environment only: never stored, never logged.
MPESA_BASE_URL = config.env_str("TUKTUK_MPESA_BASE_URL", "https://sandbox.safaricom.co.ke").rstrip(
    "/"
)
MPESA_CONSUMER_KEY = config.env_str("TUKTUK_MPESA_CONSUMER_KEY")
MPESA_CONSUMER_SECRET = config.env_str("TUKTUK_MPESA_CONSUMER_SECRET")
MPESA_SHORTCODE = config.env_str("TUKTUK_MPESA_SHORTCODE")
MPESA_INITIATOR_NAME = config.env_str("TUKTUK_MPESA_INITIATOR_NAME")
MPESA_SECURITY_CREDENTIAL = config.env_str("TUKTUK_MPESA_SECURITY_CREDENTIAL")
MPESA_B2C_PATH = config.env_str("TUKTUK_MPESA_B2C_PATH", "/mpesa/b2c/v3/paymentrequest")
MPESA_TIMEOUT_SECONDS = float(config.env_str("TUKTUK_MPESA_TIMEOUT_SECONDS", "15"))
# Where Safaricom reaches us (for ResultURL / QueueTimeOutURL).
PUBLIC_URL = config.env_str("TUKTUK_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
PAYOUT_MAX_ATTEMPTS = config.env_int("TUKTUK_PAYOUT_MAX_ATTEMPTS", 5)
PAYOUT_BATCH_SIZE = config.env_int("TUKTUK_PAYOUT_BATCH_SIZE", 50)
# A claimed payout still "sending" after this long: its worker died mid-request.
PAYOUT_SENDING_STALE_SECONDS = config.env_int("TUKTUK_PAYOUT_SENDING_STALE_SECONDS", 120)
PAYOUT_STATUS_QUERY = config.env_bool("TUKTUK_MPESA_STATUS_QUERY", True)

# Alerts. TUKTUK_EMAIL_URL: smtp://user:pass@host:25, smtp+tls://… (STARTTLS) or smtps://… (TLS).
ALERT_EMAILS = config.env_list("TUKTUK_ALERT_EMAILS")
DEFAULT_FROM_EMAIL = config.env_str("TUKTUK_EMAIL_FROM", "TukTuk Ledger <ledger@localhost>")
globals().update(config.email_config(config.env_str("TUKTUK_EMAIL_URL")))
RECONCILE_EVERY_HOURS = float(config.env_str("TUKTUK_RECONCILE_EVERY_HOURS", "4"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "tuktuk.core.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stderr"], "level": config.env_str("TUKTUK_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
