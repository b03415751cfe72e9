"""Django settings for TukTuk Ledger. Everything an operator sets comes from TUKTUK_* variables."""

from __future__ import annotations

import pymysql

from tuktuk import config

# Lets Django's MySQL backend use PyMySQL (pure Python) in place of mysqlclient.
pymysql.install_as_MySQLdb()

# Everything read from the environment (README.md, "Configuration"): DATA_DIR, SECRET_KEY,
# DEBUG, ALLOWED_HOSTS, DATABASES, TIME_ZONE, the callback, M-Pesa, payout and alert settings,
# EMAIL_*, LOG_LEVEL. A bad value stops here with ImproperlyConfigured naming the variable.
_env = config.read_settings()
globals().update(_env)

INSTALLED_APPS = [
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = _env["DATA_DIR"] / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing directory
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
