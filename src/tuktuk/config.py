"""Configuration read from the environment (TUKTUK_*), with generated secrets in the data dir.

`read_settings(environ)` turns a mapping of variables (os.environ when none is given) into the
Django settings that depend on it; settings.py adds the fixed ones. The variables, their
defaults and meanings are the configuration table in README.md.

Reading goes through django-environ's `Env`, with three differences on purpose (see `Env`):
a variable set to an empty string counts as unset, a value starting with "$" is taken as it is,
and a value that cannot be read stops the start with an `ImproperlyConfigured` error naming the
variable and the value (never the value of a secret: secrets are plain strings, which cannot be
wrong, and URLs are shown with their password masked).

Secrets (the Django secret key, the callback token) are generated once into the data directory
when they are not given in the environment; they are never stored in the database or logged.
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import environ as django_environ
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

T = TypeVar("T")

SQLITE = "django.db.backends.sqlite3"
POSTGRESQL = "django.db.backends.postgresql"
MYSQL = "django.db.backends.mysql"
# Only the URL schemes django-environ maps to the three databases we run on.
DATABASE_SCHEMES = {
    scheme: engine
    for scheme, engine in django_environ.Env.DB_SCHEMES.items()
    if engine in {SQLITE, POSTGRESQL, MYSQL}
}
EMAIL_SCHEMES = ("smtp", "smtp+tls", "smtps")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class BadValue(ValueError):
    """Raised by a cast: what the variable must be, and the (part of the) value that is not."""

    def __init__(self, expected: str, value: str) -> None:
        super().__init__(expected, value)
        self.expected = expected
        self.value = value


class Env(django_environ.Env):
    """django-environ's Env over an explicit mapping, strict about bad values.

    `get_value` is replaced (the rest of the Env API calls it) because django-environ's own:
    - reads a value starting with "$" as the name of another variable to read instead, so a
      secret key starting with "$" (Django's generator uses that character) would be silently
      swapped for the default;
    - casts an empty string (`TUKTUK_X=` in a compose file) instead of using the default;
    - lets a cast's ValueError through without saying which variable it was about.
    Casts are the callables below rather than `bool`/`float`, which django-environ reads
    leniently: any unknown word is False, and "4h" is 4.0.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__()
        self.ENVIRON = environ  # the instance's mapping, not the class-wide os.environ

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = django_environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        raw = (self.ENVIRON.get(var) or "").strip()
        if not raw:
            if default is self.NOTSET:
                raise ImproperlyConfigured(f"{var} must be set")
            return default  # defaults are given already parsed
        try:
            return self.parse_value(raw, cast)
        except BadValue as exc:
            raise ImproperlyConfigured(f"{var} must be {exc.expected}, not {exc.value!r}") from None


# ---------------------------------------------------------------------------------------------
# Casts: each takes the stripped, non-empty text and returns the value or raises BadValue.


def boolean(value: str) -> bool:
    word = value.lower()
    if word in {"true", "1", "yes", "on"}:
        return True
    if word in {"false", "0", "no", "off"}:
        return False
    raise BadValue("true or false (also 1/0, yes/no, on/off)", value)


def integer(*, minimum: int) -> Callable[[str], int]:
    def cast(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise BadValue("an integer", value) from None
        if number < minimum:
            raise BadValue(f"an integer of at least {minimum}", value)
        return number

    return cast


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise BadValue("a number", value) from None


def positive_number(value: str) -> float:
    number = _number(value)
    if not math.isfinite(number) or number <= 0:
        raise BadValue("a number more than 0", value)
    return number


def non_negative_number(value: str) -> float:
    number = _number(value)
    if not math.isfinite(number) or number < 0:
        raise BadValue("a number of at least 0", value)
    return number


def positive_amount(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise BadValue("an amount (e.g. 250000)", value) from None
    if not amount.is_finite() or amount <= 0:
        raise BadValue("an amount more than 0", value)
    return amount


def comma_list(item: Callable[[str], Any] = str) -> Callable[[str], list[Any]]:
    """Comma-separated items, each stripped; blank items are dropped."""

    def cast(value: str) -> list[Any]:
        return [item(part.strip()) for part in value.split(",") if part.strip()]

    return cast


def ip_network(value: str) -> str:
    """An IP address or CIDR network, kept as written (the callback views parse it)."""
    try:
        # strict=False, as the callback views read it: 196.201.214.7/24 is that /24.
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise BadValue("a comma-separated list of IP addresses or networks (CIDR)", value) from None
    return value


def email_address(value: str) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise BadValue("a comma-separated list of email addresses", value) from None
    return value


def time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BadValue("a time zone name like Africa/Nairobi", value) from None
    return value


def log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise BadValue("one of " + ", ".join(LOG_LEVELS), value)
    return value.upper()


def url_path(value: str) -> str:
    if not value.startswith("/"):
        raise BadValue("a path starting with /", value)
    return value


def http_url(value: str) -> str:
    """An http(s) base URL, without the trailing slash (paths are appended to it)."""
    try:
        parts = urlsplit(value)
    except ValueError:  # a malformed [IPv6] host
        raise BadValue("an http:// or https:// URL", value) from None
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise BadValue("an http:// or https:// URL", value)
    return value.rstrip("/")


def url_for_messages(url: str) -> str:
    """The URL for an error message, with its password, or what may be one, masked.

    Works on the text, not on urllib's fields, so a malformed URL is masked too: the
    password (user:***@), a port that is not a number (postgres://user:secret/db forgot
    the @host) and the query (?password=...).
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    userinfo, at, rest = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    rest, question, _ = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    host, colon, port = netloc.rpartition(":")
    if colon and not netloc.endswith("]") and not port.isdigit():
        netloc = f"{host}:***"
    return f"{scheme}{separator}{userinfo}{at}{netloc}{slash}{path}" + ("?…" if question else "")


# ---------------------------------------------------------------------------------------------
# The settings


DATA_DIR_VARIABLE = "TUKTUK_DATA_DIR"
DEFAULT_DATA_DIR = "var"


def data_dir_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the data dir is (not created): TUKTUK_DATA_DIR, else ./var. The CLI asks this
    before Django starts, to refuse to create an empty one silently."""
    mapping = os.environ if environ is None else environ
    raw = mapping.get(DATA_DIR_VARIABLE, "").strip()  # empty counts as unset, as everywhere
    return Path(raw or DEFAULT_DATA_DIR).expanduser().resolve()


def data_dir(env: Env) -> Path:
    path = data_dir_path(env.ENVIRON)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"TUKTUK_DATA_DIR: cannot create the directory {str(path)!r}: {exc.strerror or exc}"
        ) from None
    return path


def archive_dir(env: Env, data_dir: Path) -> Path:
    """TUKTUK_ARCHIVE_DIR, else <data dir>/archive. Not created here: only the archive job
    writes there, and an unwritable directory must fail that job, not every command."""
    raw: str = env.str("TUKTUK_ARCHIVE_DIR", default="")
    return Path(raw).expanduser().resolve() if raw else data_dir / "archive"


def generated_secret(env: Env, env_name: str, path: Path) -> str:
    """Return the secret from the environment, else from (or newly into) the file at path."""
    value: str = env.str(env_name, default="")
    if value:
        return value
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    # O_EXCL: when two processes start together, one writes and the other reads its value.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def postgres_hosts(url: str) -> tuple[str, str] | None:
    """(HOST, PORT) as libpq lists for a multi-host URL (`postgres://u@h1:p1,h2:p2/db`), else None.

    django-environ takes multi-host URLs apart wrongly: `h1:5433,h2` gives port 5433 to both
    hosts (libpq reads it as h2 on the default port), and `h1,h2:x` keeps "h2:x" as a host
    name. libpq's own rule is kept: each host has its own port, an empty one is the default.
    """
    rest = url.partition("://")[2]
    authority = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if "," not in authority:
        return None
    hosts: list[str] = []
    ports: list[str] = []
    for item in authority.split(","):
        if item.startswith("["):  # [IPv6]:port; libpq's keyword form wants it bare
            host, bracket, after = item[1:].partition("]")
            if not bracket or (after and not after.startswith(":")):
                raise ValueError(item)
            port = after[1:]
        else:
            host, _, port = item.partition(":")
        if not host or not (port == "" or port.isdigit()):
            raise ValueError(item)
        hosts.append(unquote(host))
        ports.append(port)
    return ",".join(hosts), ",".join(ports) if any(ports) else ""


def database_config(env: Env, data_dir: Path) -> dict[str, Any]:
    url: str = env.str("TUKTUK_DATABASE_URL", default=f"sqlite:///{data_dir / 'tuktuk.sqlite3'}")
    scheme = url.partition("://")[0]
    if scheme not in DATABASE_SCHEMES:
        # Checked first: django-environ warns with the whole parsed config (password included)
        # about a scheme it does not know.
        raise ImproperlyConfigured(
            "TUKTUK_DATABASE_URL must be a sqlite://, postgres:// or mysql:// URL, "
            f"not {url_for_messages(url)!r}"
        )
    try:
        config: dict[str, Any] = env.db_url_config(url)
    except ValueError:  # the port is not a number (the message would show it: a password?)
        raise ImproperlyConfigured(
            "TUKTUK_DATABASE_URL is not a valid database URL (the port must be a number): "
            f"{url_for_messages(url)!r}"
        ) from None
    try:
        hosts = postgres_hosts(url) if config["ENGINE"] == POSTGRESQL else None
    except ValueError:
        raise ImproperlyConfigured(
            "TUKTUK_DATABASE_URL has a bad list of hosts (each needs a name, each port must be "
            f"a number): {url_for_messages(url)!r}"
        ) from None
    # django-environ leaves a percent-encoded socket directory as the host encoded
    # (postgres://user@%2Frun%2Fpostgresql/tuktuk); dj-database-url, used before, decoded it.
    config["HOST"] = unquote(str(config.get("HOST", "")))
    config["CONN_MAX_AGE"] = env("TUKTUK_DB_CONN_MAX_AGE", cast=integer(minimum=0), default=60)
    # A persistent connection to a database server that has since gone away (a failover, a
    # restart) is found dead before the request uses it, and replaced, instead of failing the
    # request: one "SELECT 1" per request that reuses a connection.
    config["CONN_HEALTH_CHECKS"] = env("TUKTUK_DB_CONN_HEALTH_CHECKS", cast=boolean, default=True)
    engine = config["ENGINE"]
    options: dict[str, Any] = config.setdefault("OPTIONS", {})
    if hosts is not None:
        # A primary and its standbys (docs/high-availability.md): libpq tries the hosts in
        # turn. Only the primary may take writes, and an unreachable host must not hang every
        # new connection (libpq waits forever by default), so both have a default here.
        config["HOST"], config["PORT"] = hosts
        options.setdefault("target_session_attrs", "read-write")
        options.setdefault("connect_timeout", 5)
    test_name: str = env.str("TUKTUK_TEST_DATABASE_NAME", default="")
    prepared = env("TUKTUK_DB_PREPARED", cast=boolean, default=True)  # read (checked) everywhere
    if engine == SQLITE:
        # BEGIN IMMEDIATE takes the write lock when a transaction starts, so concurrent
        # postings queue on the busy timeout instead of failing with "database is locked"
        # when a reader tries to upgrade to a writer.
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", 30)
        options.setdefault("init_command", "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;")
        config["CONN_MAX_AGE"] = 0
        # A file, not ":memory:", so a live server in another process sees the test data.
        config["TEST"] = {"NAME": test_name or str(data_dir / "test.sqlite3")}
    elif engine == POSTGRESQL and prepared:
        # Server-side binding + prepared statements: the hot path repeats the same dozen
        # statements, and preparing them saves PostgreSQL about a third of its CPU per
        # confirmation (bench/results-c2b.md). Turn off behind PgBouncer in transaction mode.
        options.setdefault("server_side_binding", True)
        options.setdefault("prepare_threshold", 2)
    elif engine == MYSQL:
        options.setdefault("charset", "utf8mb4")
        options.setdefault("isolation_level", "read committed")
        options.setdefault("init_command", "SET sql_mode='STRICT_TRANS_TABLES'")
        config["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    if test_name and engine != SQLITE:
        config["TEST"] = {**config.get("TEST", {}), "NAME": test_name}
    return config


def email_config(env: Env) -> dict[str, Any]:
    """Django EMAIL_* settings from TUKTUK_EMAIL_URL; no URL means emails go to the log.

    django-environ's email_url_config cannot express our schemes: it reads smtps:// as STARTTLS
    (EMAIL_USE_TLS) and leaves the port unset, where ours are smtp:// (plain, port 25),
    smtp+tls:// (STARTTLS, port 25) and smtps:// (TLS from the first byte, port 465). So it
    only takes the URL apart; the scheme's meaning and the defaults are ours.
    """
    url: str = env.str("TUKTUK_EMAIL_URL", default="")
    if not url:
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    scheme = url.partition("://")[0]
    if scheme not in EMAIL_SCHEMES:
        raise ImproperlyConfigured(
            "TUKTUK_EMAIL_URL must start with smtp://, smtp+tls:// or smtps://, "
            f"not {url_for_messages(url)!r}"
        )
    try:
        parts = env.email_url_config(url)
    except ValueError:  # the port is not a number (the message would show it: a password?)
        raise ImproperlyConfigured(
            "TUKTUK_EMAIL_URL is not a valid URL (the port must be a number): "
            f"{url_for_messages(url)!r}"
        ) from None
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts["EMAIL_HOST"] or "localhost",
        "EMAIL_PORT": parts["EMAIL_PORT"] or (465 if scheme == "smtps" else 25),
        "EMAIL_HOST_USER": parts["EMAIL_HOST_USER"] or "",
        "EMAIL_HOST_PASSWORD": parts["EMAIL_HOST_PASSWORD"] or "",
        "EMAIL_USE_TLS": scheme == "smtp+tls",
        "EMAIL_USE_SSL": scheme == "smtps",
        "EMAIL_TIMEOUT": 15,
    }


def read_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Django settings read from the environment (os.environ unless a mapping is given)."""
    env = Env(os.environ if environ is None else environ)
    directory = data_dir(env)
    return {
        "DATA_DIR": directory,
        "SECRET_KEY": generated_secret(env, "TUKTUK_SECRET_KEY", directory / "secret_key"),
        "DEBUG": env("TUKTUK_DEBUG", cast=boolean, default=False),
        "ALLOWED_HOSTS": env(
            "TUKTUK_ALLOWED_HOSTS", cast=comma_list(), default=["localhost", "127.0.0.1", "[::1]"]
        ),
        "CSRF_TRUSTED_ORIGINS": env("TUKTUK_CSRF_TRUSTED_ORIGINS", cast=comma_list(), default=[]),
        "DATABASES": {"default": database_config(env, directory)},
        "TIME_ZONE": env("TUKTUK_TIME_ZONE", cast=time_zone, default="Africa/Nairobi"),
        # Daraja posts a few hundred bytes; anything far larger is refused before it is parsed.
        "DATA_UPLOAD_MAX_MEMORY_SIZE": env(
            "TUKTUK_MAX_BODY_BYTES", cast=integer(minimum=1), default=64 * 1024
        ),
        # C2B callbacks. Safaricom does not sign callbacks: the secret path token and an
        # optional IP allowlist are the only ways to tell its calls from forgeries.
        "CALLBACK_TOKEN": generated_secret(
            env, "TUKTUK_CALLBACK_TOKEN", directory / "callback_token"
        ),
        "CALLBACK_ALLOWED_IPS": env(
            "TUKTUK_CALLBACK_ALLOWED_IPS", cast=comma_list(ip_network), default=[]
        ),
        "CALLBACK_TRUST_FORWARDED_FOR": env(
            "TUKTUK_TRUST_X_FORWARDED_FOR", cast=boolean, default=False
        ),
        # GET /metrics (Prometheus) answers only `Authorization: Bearer <this>`; unset: 404.
        "METRICS_TOKEN": env.str("TUKTUK_METRICS_TOKEN", default=""),
        "MAX_PAYMENT_AMOUNT": env(
            "TUKTUK_MAX_PAYMENT_AMOUNT", cast=positive_amount, default=Decimal("250000")
        ),
        "POSTING_MAX_ATTEMPTS": env(
            "TUKTUK_POSTING_MAX_ATTEMPTS", cast=integer(minimum=1), default=8
        ),
        # A business day closes no sooner than this after its cutoff, so a confirmation stored
        # a moment before the cutoff (its commit still in flight) is seen by the close.
        "DAY_CLOSE_SETTLE_SECONDS": env(
            "TUKTUK_DAY_CLOSE_SETTLE_SECONDS", cast=integer(minimum=0), default=5
        ),
        # How long a posting that must close the previous day waits (holding no lock) for the
        # confirmations received before that day's cutoff; then it is left for the worker.
        "POSTING_CLOSE_WAIT_SECONDS": env(
            "TUKTUK_POSTING_CLOSE_WAIT_SECONDS", cast=positive_number, default=10.0
        ),
        # engine: the confirmation endpoint stores and acknowledges, the posting engine
        # (`tuktuk engine`, started by `tuktuk serve`) credits in batches; inline: the request
        # posts before it answers (one process, no engine).
        "POSTING_MODE": env("TUKTUK_POSTING", cast=posting_mode, default="engine"),
        # The most stored confirmations the engine posts in one transaction (group commit).
        "ENGINE_BATCH_SIZE": env("TUKTUK_ENGINE_BATCH_SIZE", cast=integer(minimum=1), default=200),
        # Where no LISTEN/NOTIFY wakes it (SQLite, MariaDB): how often an idle engine looks.
        "ENGINE_POLL_SECONDS": env(
            "TUKTUK_ENGINE_POLL_SECONDS", cast=positive_number, default=0.05
        ),
        # After a pass that claimed less than a full batch, how long the engine lets more
        # confirmations arrive before the next pass, so they share its locks and its commit.
        "ENGINE_GATHER_SECONDS": env(
            "TUKTUK_ENGINE_GATHER_SECONDS", cast=non_negative_number, default=0.005
        ),
        # The confirmation lane's stores written together when several request threads of a
        # web worker store at once (core.group_insert), on PostgreSQL. Off by default: it
        # pays under many concurrent senders with more request threads (tuktuk serve
        # --threads 16: +40 % at 32 senders), and costs 3-5 % at 8 (docs/posting-engine.md).
        "STORE_GROUPING": env("TUKTUK_STORE_GROUPING", cast=boolean, default=False),
        # Each process keeps the fleet settings row this long (fleet.settings_cache): a change
        # made in another process (an operator in the admin, seen by the web workers and the
        # engines) applies within this time. 0: read on every use.
        "FLEET_SETTINGS_CACHE_SECONDS": env(
            "TUKTUK_SETTINGS_CACHE_SECONDS", cast=integer(minimum=0), default=5
        ),
        # Daraja (M-Pesa) credentials come from the environment only: never stored, never
        # logged.
        "MPESA_BASE_URL": env(
            "TUKTUK_MPESA_BASE_URL", cast=http_url, default="https://sandbox.safaricom.co.ke"
        ),
        "MPESA_CONSUMER_KEY": env.str("TUKTUK_MPESA_CONSUMER_KEY", default=""),
        "MPESA_CONSUMER_SECRET": env.str("TUKTUK_MPESA_CONSUMER_SECRET", default=""),
        "MPESA_SHORTCODE": env.str("TUKTUK_MPESA_SHORTCODE", default=""),
        "MPESA_INITIATOR_NAME": env.str("TUKTUK_MPESA_INITIATOR_NAME", default=""),
        "MPESA_SECURITY_CREDENTIAL": env.str("TUKTUK_MPESA_SECURITY_CREDENTIAL", default=""),
        "MPESA_B2C_PATH": env(
            "TUKTUK_MPESA_B2C_PATH", cast=url_path, default="/mpesa/b2c/v3/paymentrequest"
        ),
        "MPESA_TIMEOUT_SECONDS": env(
            "TUKTUK_MPESA_TIMEOUT_SECONDS", cast=positive_number, default=15.0
        ),
        # Where Safaricom reaches us (for ResultURL / QueueTimeOutURL).
        "PUBLIC_URL": env("TUKTUK_PUBLIC_URL", cast=http_url, default="http://127.0.0.1:8000"),
        "PAYOUT_MAX_ATTEMPTS": env(
            "TUKTUK_PAYOUT_MAX_ATTEMPTS", cast=integer(minimum=1), default=5
        ),
        "PAYOUT_BATCH_SIZE": env("TUKTUK_PAYOUT_BATCH_SIZE", cast=integer(minimum=1), default=50),
        # A claimed payout still "sending" after this long: its worker died mid-request.
        "PAYOUT_SENDING_STALE_SECONDS": env(
            "TUKTUK_PAYOUT_SENDING_STALE_SECONDS", cast=integer(minimum=1), default=120
        ),
        "PAYOUT_STATUS_QUERY": env("TUKTUK_MPESA_STATUS_QUERY", cast=boolean, default=True),
        # Alerts.
        "ALERT_EMAILS": env("TUKTUK_ALERT_EMAILS", cast=comma_list(email_address), default=[]),
        "DEFAULT_FROM_EMAIL": env.str(
            "TUKTUK_EMAIL_FROM", default="TukTuk Ledger <ledger@localhost>"
        ),
        **email_config(env),
        "RECONCILE_EVERY_HOURS": env(
            "TUKTUK_RECONCILE_EVERY_HOURS", cast=positive_number, default=4.0
        ),
        # Retention: stored callbacks and events older than this many days are archived to
        # files in ARCHIVE_DIR, then deleted (docs/design.md, "Retention").
        "RETENTION_DAYS": env("TUKTUK_RETENTION_DAYS", cast=integer(minimum=1), default=400),
        "ARCHIVE_DIR": archive_dir(env, directory),
        # The Pull Transactions reconciliation (missed C2B confirmations). Unset: on when
        # Daraja is configured (tuktuk.mpesa.daraja.is_configured).
        "PULL_ENABLED": env("TUKTUK_PULL_ENABLED", cast=boolean, default=None),
        "PULL_EVERY_MINUTES": env("TUKTUK_PULL_EVERY_MINUTES", cast=integer(minimum=1), default=60),
        "PULL_OVERLAP_MINUTES": env(
            "TUKTUK_PULL_OVERLAP_MINUTES", cast=integer(minimum=0), default=15
        ),
        "MPESA_PULL_NOMINATED_NUMBER": env.str("TUKTUK_MPESA_PULL_NOMINATED_NUMBER", default=""),
        "LOG_LEVEL": env("TUKTUK_LOG_LEVEL", cast=log_level, default="INFO"),
        **sms_and_portal_config(env),
    }


SMS_GATEWAYS = ("log", "africastalking")
POSTING_MODES = ("engine", "inline")


def posting_mode(value: str) -> str:
    if value.lower() not in POSTING_MODES:
        raise BadValue("one of " + ", ".join(POSTING_MODES), value)
    return value.lower()


def sms_gateway(value: str) -> str:
    if value.lower() not in SMS_GATEWAYS:
        raise BadValue("one of " + ", ".join(SMS_GATEWAYS), value)
    return value.lower()


def sms_and_portal_config(env: Env) -> dict[str, Any]:
    """Driver SMS (docs/driver-portal-and-sms.md) and the driver portal's lockout. The Africa's
    Talking API key comes from the environment only: never stored in the database, never
    logged."""
    username: str = env.str("TUKTUK_AT_USERNAME", default="")
    api_key: str = env.str("TUKTUK_AT_API_KEY", default="")
    # Unset: Africa's Talking when its username and key are given, else the log-only gateway.
    default_gateway = "africastalking" if username and api_key else "log"
    return {
        "SMS_GATEWAY": env("TUKTUK_SMS_GATEWAY", cast=sms_gateway, default=default_gateway),
        "AT_USERNAME": username,
        "AT_API_KEY": api_key,
        "AT_SENDER_ID": env.str("TUKTUK_AT_SENDER_ID", default=""),
        "AT_BASE_URL": env(
            "TUKTUK_AT_BASE_URL", cast=http_url, default="https://api.africastalking.com"
        ),
        "SMS_TIMEOUT_SECONDS": env(
            "TUKTUK_SMS_TIMEOUT_SECONDS", cast=positive_number, default=15.0
        ),
        "SMS_BATCH_SIZE": env("TUKTUK_SMS_BATCH_SIZE", cast=integer(minimum=1), default=100),
        # A message still "sending" after this long: its worker died mid-request; the message
        # may have reached the provider, so it becomes "unknown", never sent again by itself.
        "SMS_SENDING_STALE_SECONDS": env(
            "TUKTUK_SMS_SENDING_STALE_SECONDS", cast=integer(minimum=1), default=120
        ),
        # Operators are emailed once the gateway has refused this many attempts in a row.
        "SMS_ALERT_AFTER_ATTEMPTS": env(
            "TUKTUK_SMS_ALERT_AFTER_ATTEMPTS", cast=integer(minimum=1), default=3
        ),
        # A message still not sent this long after it was queued is given up (a reminder of
        # yesterday's target helps nobody).
        "SMS_EXPIRE_HOURS": env("TUKTUK_SMS_EXPIRE_HOURS", cast=positive_number, default=24.0),
        "PORTAL_LOCKOUT_FAILURES": env(
            "TUKTUK_PORTAL_LOCKOUT_FAILURES", cast=integer(minimum=1), default=5
        ),
        "PORTAL_LOCKOUT_MINUTES": env(
            "TUKTUK_PORTAL_LOCKOUT_MINUTES", cast=integer(minimum=1), default=30
        ),
    }
