"""Settings read from TUKTUK_* variables (tuktuk.config), from explicit mappings: os.environ is
never touched, except by the one test that starts a process with a bad value."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.support import live_server
from tuktuk.config import read_settings

SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;",
}


@pytest.fixture
def read(tmp_path: Path) -> Any:
    """read_settings over the given variables, with a data dir of the test's own."""

    def read(**variables: str) -> dict[str, Any]:
        return read_settings({"TUKTUK_DATA_DIR": str(tmp_path), **variables})

    return read


def refused(read: Any, **variables: str) -> str:
    with pytest.raises(ImproperlyConfigured) as caught:
        read(**variables)
    return str(caught.value)


# ----------------------------------------------------------------------------- defaults


def test_defaults(read: Any, tmp_path: Path) -> None:
    settings = read()
    assert settings["DATA_DIR"] == tmp_path
    assert settings["DEBUG"] is False
    assert settings["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert settings["CSRF_TRUSTED_ORIGINS"] == []
    assert settings["TIME_ZONE"] == "Africa/Nairobi"
    assert settings["DATA_UPLOAD_MAX_MEMORY_SIZE"] == 65536
    assert settings["CALLBACK_ALLOWED_IPS"] == []
    assert settings["CALLBACK_TRUST_FORWARDED_FOR"] is False
    assert settings["MAX_PAYMENT_AMOUNT"] == Decimal("250000")
    assert settings["POSTING_MAX_ATTEMPTS"] == 8
    assert settings["FLEET_SETTINGS_CACHE_SECONDS"] == 5
    assert settings["STORE_GROUPING"] is False  # off: it costs a little at few senders
    assert settings["MPESA_BASE_URL"] == "https://sandbox.safaricom.co.ke"
    for name in [
        "MPESA_CONSUMER_KEY",
        "MPESA_CONSUMER_SECRET",
        "MPESA_SHORTCODE",
        "MPESA_INITIATOR_NAME",
        "MPESA_SECURITY_CREDENTIAL",
    ]:
        assert settings[name] == "", name
    assert settings["MPESA_B2C_PATH"] == "/mpesa/b2c/v3/paymentrequest"
    assert settings["MPESA_TIMEOUT_SECONDS"] == 15.0
    assert settings["PUBLIC_URL"] == "http://127.0.0.1:8000"
    assert settings["PAYOUT_MAX_ATTEMPTS"] == 5
    assert settings["PAYOUT_BATCH_SIZE"] == 50
    assert settings["PAYOUT_SENDING_STALE_SECONDS"] == 120
    assert settings["PAYOUT_STATUS_QUERY"] is True
    assert settings["ALERT_EMAILS"] == []
    assert settings["DEFAULT_FROM_EMAIL"] == "TukTuk Ledger <ledger@localhost>"
    assert settings["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert settings["RECONCILE_EVERY_HOURS"] == 4.0
    assert settings["LOG_LEVEL"] == "INFO"
    assert settings["DATABASES"]["default"] == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(tmp_path / "tuktuk.sqlite3"),
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": SQLITE_OPTIONS,
        "TEST": {"NAME": str(tmp_path / "test.sqlite3")},
    }


def test_the_default_data_dir_is_var_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = read_settings({})
    assert settings["DATA_DIR"] == tmp_path / "var"
    assert (tmp_path / "var").is_dir()
    assert settings["DATABASES"]["default"]["NAME"] == str(tmp_path / "var" / "tuktuk.sqlite3")


def test_an_empty_value_is_the_default(read: Any) -> None:
    settings = read(TUKTUK_PAYOUT_MAX_ATTEMPTS="", TUKTUK_DEBUG="  ", TUKTUK_TIME_ZONE="")
    assert settings["PAYOUT_MAX_ATTEMPTS"] == 5
    assert settings["DEBUG"] is False
    assert settings["TIME_ZONE"] == "Africa/Nairobi"


def test_secrets_are_generated_once_into_the_data_dir(read: Any, tmp_path: Path) -> None:
    first = read()
    assert len(first["SECRET_KEY"]) >= 40 and len(first["CALLBACK_TOKEN"]) >= 40
    assert first["SECRET_KEY"] != first["CALLBACK_TOKEN"]
    for name, setting in [("secret_key", "SECRET_KEY"), ("callback_token", "CALLBACK_TOKEN")]:
        path = tmp_path / name
        assert path.read_text() == first[setting]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = read()
    assert (second["SECRET_KEY"], second["CALLBACK_TOKEN"]) == (
        first["SECRET_KEY"],
        first["CALLBACK_TOKEN"],
    )


def test_secrets_from_the_environment_win_and_are_not_written(read: Any, tmp_path: Path) -> None:
    # "$" first: django-environ alone would read that as the name of another variable.
    settings = read(TUKTUK_SECRET_KEY="$not-a-reference", TUKTUK_CALLBACK_TOKEN=" tok ")
    assert settings["SECRET_KEY"] == "$not-a-reference"
    assert settings["CALLBACK_TOKEN"] == "tok"
    assert not (tmp_path / "secret_key").exists() and not (tmp_path / "callback_token").exists()


# ----------------------------------------------------------------------------- each type


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(word, True) for word in ["true", "TRUE", "True", "1", "yes", "Yes", "on", " true "]],
        *[(word, False) for word in ["false", "FALSE", "0", "no", "NO", "off"]],
    ],
)
def test_booleans(read: Any, raw: str, expected: bool) -> None:
    settings = read(
        TUKTUK_DEBUG=raw,
        TUKTUK_TRUST_X_FORWARDED_FOR=raw,
        TUKTUK_MPESA_STATUS_QUERY=raw,
        TUKTUK_DATABASE_URL="postgres://postgres@127.0.0.1:5432/tuktuk",
        TUKTUK_DB_PREPARED=raw,
        TUKTUK_STORE_GROUPING=raw,
    )
    assert settings["DEBUG"] is expected
    assert settings["STORE_GROUPING"] is expected
    assert settings["CALLBACK_TRUST_FORWARDED_FOR"] is expected
    assert settings["PAYOUT_STATUS_QUERY"] is expected
    assert ("server_side_binding" in settings["DATABASES"]["default"]["OPTIONS"]) is expected


def test_integers_and_numbers(read: Any) -> None:
    settings = read(
        TUKTUK_MAX_BODY_BYTES="1024",
        TUKTUK_POSTING_MAX_ATTEMPTS="3",
        TUKTUK_PAYOUT_MAX_ATTEMPTS=" 7 ",
        TUKTUK_PAYOUT_BATCH_SIZE="10",
        TUKTUK_PAYOUT_SENDING_STALE_SECONDS="1",
        TUKTUK_MPESA_TIMEOUT_SECONDS="2.5",
        TUKTUK_RECONCILE_EVERY_HOURS="0.25",
        TUKTUK_MAX_PAYMENT_AMOUNT="150000.50",
        TUKTUK_SETTINGS_CACHE_SECONDS="0",
        TUKTUK_ENGINE_GATHER_SECONDS="0",
    )
    assert settings["DATA_UPLOAD_MAX_MEMORY_SIZE"] == 1024
    assert settings["POSTING_MAX_ATTEMPTS"] == 3
    assert settings["PAYOUT_MAX_ATTEMPTS"] == 7
    assert settings["PAYOUT_BATCH_SIZE"] == 10
    assert settings["PAYOUT_SENDING_STALE_SECONDS"] == 1
    assert settings["MPESA_TIMEOUT_SECONDS"] == 2.5
    assert settings["RECONCILE_EVERY_HOURS"] == 0.25
    assert settings["MAX_PAYMENT_AMOUNT"] == Decimal("150000.50")
    assert settings["FLEET_SETTINGS_CACHE_SECONDS"] == 0  # 0 turns the cache off
    assert settings["ENGINE_GATHER_SECONDS"] == 0  # 0: the next pass at once
    assert isinstance(settings["MAX_PAYMENT_AMOUNT"], Decimal)


def test_lists_are_comma_separated_and_trimmed(read: Any) -> None:
    settings = read(
        TUKTUK_ALLOWED_HOSTS=" ledger.example.co.ke , localhost,,",
        TUKTUK_CSRF_TRUSTED_ORIGINS="https://ledger.example.co.ke",
        TUKTUK_CALLBACK_ALLOWED_IPS="196.201.214.0/24, 196.201.213.114 ,2001:db8::/32",
        TUKTUK_ALERT_EMAILS="ops@fleet.example, yuda@fleet.example",
    )
    assert settings["ALLOWED_HOSTS"] == ["ledger.example.co.ke", "localhost"]
    assert settings["CSRF_TRUSTED_ORIGINS"] == ["https://ledger.example.co.ke"]
    assert settings["CALLBACK_ALLOWED_IPS"] == [
        "196.201.214.0/24",
        "196.201.213.114",
        "2001:db8::/32",
    ]
    assert settings["ALERT_EMAILS"] == ["ops@fleet.example", "yuda@fleet.example"]


def test_strings_urls_and_names(read: Any) -> None:
    settings = read(
        TUKTUK_TIME_ZONE="UTC",
        TUKTUK_LOG_LEVEL="warning",
        TUKTUK_PUBLIC_URL="https://ledger.example.co.ke/",
        TUKTUK_MPESA_BASE_URL="http://127.0.0.1:8089/",
        TUKTUK_MPESA_B2C_PATH="/mpesa/b2c/v1/paymentrequest",
        TUKTUK_MPESA_CONSUMER_KEY="key",
        TUKTUK_MPESA_CONSUMER_SECRET="secret",
        TUKTUK_MPESA_SHORTCODE="600984",
        TUKTUK_MPESA_INITIATOR_NAME="testapi",
        TUKTUK_MPESA_SECURITY_CREDENTIAL="credential==",
        TUKTUK_EMAIL_FROM="Fleet <fleet@example.co.ke>",
    )
    assert settings["TIME_ZONE"] == "UTC"
    assert settings["LOG_LEVEL"] == "WARNING"
    assert settings["PUBLIC_URL"] == "https://ledger.example.co.ke"
    assert settings["MPESA_BASE_URL"] == "http://127.0.0.1:8089"
    assert settings["MPESA_B2C_PATH"] == "/mpesa/b2c/v1/paymentrequest"
    assert [settings[f"MPESA_{name}"] for name in ["CONSUMER_KEY", "CONSUMER_SECRET"]] == [
        "key",
        "secret",
    ]
    assert settings["MPESA_SHORTCODE"] == "600984"
    assert settings["MPESA_INITIATOR_NAME"] == "testapi"
    assert settings["MPESA_SECURITY_CREDENTIAL"] == "credential=="
    assert settings["DEFAULT_FROM_EMAIL"] == "Fleet <fleet@example.co.ke>"


# ----------------------------------------------------------------------------- databases


def test_sqlite_url(read: Any, tmp_path: Path) -> None:
    database = read(
        TUKTUK_DATABASE_URL=f"sqlite:///{tmp_path}/other.sqlite3",
        TUKTUK_DB_CONN_MAX_AGE="600",
        TUKTUK_TEST_DATABASE_NAME=str(tmp_path / "t.sqlite3"),
    )["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == f"{tmp_path}/other.sqlite3"
    assert database["OPTIONS"] == SQLITE_OPTIONS
    assert database["CONN_MAX_AGE"] == 0  # SQLite: always
    assert database["TEST"] == {"NAME": str(tmp_path / "t.sqlite3")}


def test_postgresql_url(read: Any) -> None:
    database = read(
        TUKTUK_DATABASE_URL="postgres://ledger:p%40ss@db.example:6543/tuktuk?sslmode=require",
        TUKTUK_TEST_DATABASE_NAME="test_tuktuk_1",
    )["DATABASES"]["default"]
    assert database == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "tuktuk",
        "USER": "ledger",
        "PASSWORD": "p@ss",
        "HOST": "db.example",
        "PORT": 6543,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"sslmode": "require", "server_side_binding": True, "prepare_threshold": 2},
        "TEST": {"NAME": "test_tuktuk_1"},
    }


def test_postgresql_without_prepared_statements_and_persistent_connections(read: Any) -> None:
    database = read(
        TUKTUK_DATABASE_URL="postgresql://postgres@127.0.0.1/tuktuk",
        TUKTUK_DB_PREPARED="false",
        TUKTUK_DB_CONN_MAX_AGE="0",
        TUKTUK_DB_CONN_HEALTH_CHECKS="false",
    )["DATABASES"]["default"]
    assert database["OPTIONS"] == {}
    assert database["CONN_MAX_AGE"] == 0
    assert database["CONN_HEALTH_CHECKS"] is False
    assert "TEST" not in database


def test_postgresql_socket_directory_as_host(read: Any) -> None:
    database = read(TUKTUK_DATABASE_URL="postgres://ledger@%2Frun%2Fpostgresql/tuktuk")
    assert database["DATABASES"]["default"]["HOST"] == "/run/postgresql"


@pytest.mark.parametrize(
    ("netloc", "host", "port"),
    [
        # What `pg_autoctl show uri --formation default` prints: a port per host.
        ("127.0.0.1:55433,127.0.0.1:55434", "127.0.0.1,127.0.0.1", "55433,55434"),
        # libpq's rule: each host has its own port, a missing one is the default (5432);
        # django-environ would give 6432 to both.
        ("db-a:6432,db-b", "db-a,db-b", "6432,"),
        ("db-a,db-b:6432", "db-a,db-b", ",6432"),
        ("db-a,db-b,db-c", "db-a,db-b,db-c", ""),
        ("[::1]:5433,[fd00::2]:5434", "::1,fd00::2", "5433,5434"),
        ("%2Frun%2Fpostgresql,db-b:5433", "/run/postgresql,db-b", ",5433"),
    ],
)
def test_postgresql_multi_host_url(read: Any, netloc: str, host: str, port: str) -> None:
    database = read(TUKTUK_DATABASE_URL=f"postgres://ledger:p%40ss,word@{netloc}/tuktuk")[
        "DATABASES"
    ]["default"]
    assert (database["HOST"], database["PORT"]) == (host, port)
    assert (database["USER"], database["PASSWORD"], database["NAME"]) == (
        "ledger",
        "p@ss,word",
        "tuktuk",
    )
    # Only the primary takes writes; a dead host must not hang a new connection forever.
    assert database["OPTIONS"] == {
        "target_session_attrs": "read-write",
        "connect_timeout": 5,
        "server_side_binding": True,
        "prepare_threshold": 2,
    }
    assert database["CONN_HEALTH_CHECKS"] is True


def test_postgresql_multi_host_url_keeps_the_options_it_is_given(read: Any) -> None:
    database = read(
        TUKTUK_DATABASE_URL="postgresql://ledger@db-a,db-b/tuktuk"
        "?target_session_attrs=primary&connect_timeout=2&sslmode=verify-full",
        TUKTUK_DB_PREPARED="false",
    )["DATABASES"]["default"]
    assert database["OPTIONS"] == {
        "target_session_attrs": "primary",
        "connect_timeout": 2,
        "sslmode": "verify-full",
    }


def test_postgresql_multi_host_url_connects_through_libpq(read: Any) -> None:
    """The HOST/PORT lists are what libpq itself makes of the same URL."""
    from psycopg.conninfo import conninfo_to_dict

    netloc = "db-a:6432,db-b,[::1]:5433"
    database = read(TUKTUK_DATABASE_URL=f"postgres://ledger@{netloc}/tuktuk")["DATABASES"][
        "default"
    ]
    libpq = conninfo_to_dict(f"postgresql://ledger@{netloc}/tuktuk")
    assert (database["HOST"], database["PORT"]) == (libpq["host"], libpq["port"])


@pytest.mark.parametrize(
    "netloc",
    ["db-a:5433,db-b:x", "db-a,,db-b", "db-a,:5433", "[::1:5433,db-b", "[::1]x,db-b"],
)
def test_postgresql_bad_host_list(read: Any, netloc: str) -> None:
    error = refused(read, TUKTUK_DATABASE_URL=f"postgres://ledger:hunter2@{netloc}/tuktuk")
    assert error.startswith("TUKTUK_DATABASE_URL has a bad list of hosts")
    assert "hunter2" not in error


def test_mariadb_url(read: Any) -> None:
    database = read(
        TUKTUK_DATABASE_URL="mysql://root@127.0.0.1:3306/tuktuk",
        TUKTUK_TEST_DATABASE_NAME="test_tuktuk_1",
    )["DATABASES"]["default"]
    assert database == {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "tuktuk",
        "USER": "root",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": 3306,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "charset": "utf8mb4",
            "isolation_level": "read committed",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        },
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci", "NAME": "test_tuktuk_1"},
    }


# ----------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://mail.example",
            {"EMAIL_HOST": "mail.example", "EMAIL_PORT": 25, "EMAIL_USE_TLS": False},
        ),
        (
            "smtp+tls://alerts%40fleet.example:p%2Fw%3Ad@mail.example:587",
            {
                "EMAIL_HOST": "mail.example",
                "EMAIL_PORT": 587,
                "EMAIL_HOST_USER": "alerts@fleet.example",
                "EMAIL_HOST_PASSWORD": "p/w:d",
                "EMAIL_USE_TLS": True,
            },
        ),
        (
            "smtps://user:pw@mail.example",
            {
                "EMAIL_HOST": "mail.example",
                "EMAIL_PORT": 465,
                "EMAIL_HOST_USER": "user",
                "EMAIL_HOST_PASSWORD": "pw",
                "EMAIL_USE_SSL": True,
            },
        ),
    ],
)
def test_email_urls(read: Any, url: str, expected: dict[str, Any]) -> None:
    settings = read(TUKTUK_EMAIL_URL=url)
    email = {name: value for name, value in settings.items() if name.startswith("EMAIL_")}
    assert email == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 15,
        **expected,
    }


# ----------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TUKTUK_PAYOUT_MAX_ATTEMPTS", "abc", "must be an integer, not 'abc'"),
        ("TUKTUK_PAYOUT_MAX_ATTEMPTS", "2.5", "must be an integer, not '2.5'"),
        ("TUKTUK_PAYOUT_MAX_ATTEMPTS", "0", "must be an integer of at least 1, not '0'"),
        ("TUKTUK_PAYOUT_BATCH_SIZE", "-5", "must be an integer of at least 1, not '-5'"),
        ("TUKTUK_PAYOUT_SENDING_STALE_SECONDS", "2m", "must be an integer, not '2m'"),
        ("TUKTUK_POSTING_MAX_ATTEMPTS", "eight", "must be an integer, not 'eight'"),
        ("TUKTUK_MAX_BODY_BYTES", "64k", "must be an integer, not '64k'"),
        ("TUKTUK_DB_CONN_MAX_AGE", "-1", "must be an integer of at least 0, not '-1'"),
        ("TUKTUK_SETTINGS_CACHE_SECONDS", "-1", "must be an integer of at least 0, not '-1'"),
        ("TUKTUK_DEBUG", "maybe", "must be true or false (also 1/0, yes/no, on/off), not 'maybe'"),
        ("TUKTUK_TRUST_X_FORWARDED_FOR", "2", "must be true or false"),
        ("TUKTUK_MPESA_STATUS_QUERY", "enabled", "must be true or false"),
        ("TUKTUK_DB_PREPARED", "nope", "must be true or false"),
        ("TUKTUK_MPESA_TIMEOUT_SECONDS", "15s", "must be a number, not '15s'"),
        ("TUKTUK_MPESA_TIMEOUT_SECONDS", "0", "must be a number more than 0, not '0'"),
        ("TUKTUK_RECONCILE_EVERY_HOURS", "nan", "must be a number more than 0, not 'nan'"),
        ("TUKTUK_ENGINE_GATHER_SECONDS", "-0.01", "must be a number of at least 0, not '-0.01'"),
        ("TUKTUK_ENGINE_GATHER_SECONDS", "inf", "must be a number of at least 0, not 'inf'"),
        ("TUKTUK_MAX_PAYMENT_AMOUNT", "250k", "must be an amount (e.g. 250000), not '250k'"),
        ("TUKTUK_MAX_PAYMENT_AMOUNT", "Infinity", "must be an amount more than 0"),
        (
            "TUKTUK_CALLBACK_ALLOWED_IPS",
            "196.201.214.0/24, 196.201.214.300",
            "must be a comma-separated list of IP addresses or networks (CIDR), "
            "not '196.201.214.300'",
        ),
        ("TUKTUK_CALLBACK_ALLOWED_IPS", "10.0.0.0/33", "not '10.0.0.0/33'"),
        ("TUKTUK_CALLBACK_ALLOWED_IPS", "safaricom.co.ke", "not 'safaricom.co.ke'"),
        (
            "TUKTUK_ALERT_EMAILS",
            "ops@fleet.example, yuda",
            "must be a comma-separated list of email addresses, not 'yuda'",
        ),
        ("TUKTUK_TIME_ZONE", "Nairobi", "must be a time zone name like Africa/Nairobi"),
        ("TUKTUK_LOG_LEVEL", "verbose", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("TUKTUK_PUBLIC_URL", "ledger.example.co.ke", "must be an http:// or https:// URL"),
        ("TUKTUK_PUBLIC_URL", "http://[::1", "must be an http:// or https:// URL"),
        ("TUKTUK_MPESA_BASE_URL", "ftp://x", "must be an http:// or https:// URL, not 'ftp://x'"),
        ("TUKTUK_MPESA_B2C_PATH", "mpesa/b2c", "must be a path starting with /"),
        (
            "TUKTUK_DATABASE_URL",
            "redis://localhost/0",
            "must be a sqlite://, postgres:// or mysql:// URL, not 'redis://localhost/0'",
        ),
        ("TUKTUK_DATABASE_URL", "/var/db.sqlite3", "must be a sqlite://, postgres:// or mysql://"),
        (
            "TUKTUK_DATABASE_URL",
            "postgres://db:port/tuktuk",
            "is not a valid database URL (the port must be a number): 'postgres://db:***/tuktuk'",
        ),
        ("TUKTUK_EMAIL_URL", "mail.example", "must start with smtp://, smtp+tls:// or smtps://"),
        ("TUKTUK_EMAIL_URL", "smtp://mail.example:abc", "is not a valid URL (the port must be"),
    ],
)
def test_bad_values_name_the_variable_and_the_value(
    read: Any, variable: str, value: str, message: str
) -> None:
    error = refused(read, **{variable: value})
    assert error.startswith(f"{variable} ")
    assert message in error


def test_the_data_dir_must_be_creatable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ImproperlyConfigured, match="TUKTUK_DATA_DIR: cannot create"):
        read_settings({"TUKTUK_DATA_DIR": str(tmp_path / "file" / "sub")})


@pytest.mark.parametrize(
    ("variable", "url", "shown"),
    [
        (
            "TUKTUK_DATABASE_URL",
            "oracle://ledger:hunter2-db@db.example/tuktuk",
            "'oracle://ledger:***@db.example/tuktuk'",
        ),
        (
            "TUKTUK_DATABASE_URL",
            "postgres://ledger:hunter2-db@db.example:x/tuktuk",
            "'postgres://ledger:***@db.example:***/tuktuk'",
        ),
        (
            "TUKTUK_DATABASE_URL",
            "postgres://ledger:hunter2-db/tuktuk",
            "'postgres://ledger:***/tuktuk'",
        ),
        (
            "TUKTUK_DATABASE_URL",
            "ledger:hunter2-db@db.example/tuktuk",
            "'ledger:***@db.example/tuktuk'",
        ),
        (
            "TUKTUK_DATABASE_URL",
            "mysql2x://db.example/tuktuk?password=hunter2-db",
            "'mysql2x://db.example/tuktuk?…'",
        ),
        (
            "TUKTUK_EMAIL_URL",
            "smtp+ssl://alerts:hunter2-mail@mail.example",
            "'smtp+ssl://alerts:***@mail.example'",
        ),
        (
            "TUKTUK_EMAIL_URL",
            "smtps://alerts:hunter2-mail@mail.example:4x5",
            "'smtps://alerts:***@mail.example:***'",
        ),
    ],
)
def test_errors_about_urls_mask_the_password(
    read: Any, variable: str, url: str, shown: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a warning that would print it
        error = refused(read, **{variable: url})
    assert "hunter2" not in error
    assert error.startswith(f"{variable} ") and error.endswith(shown)


def test_secrets_are_never_logged(read: Any, caplog: pytest.LogCaptureFixture) -> None:
    secrets = {
        "TUKTUK_SECRET_KEY": "hunter2-secret-key",
        "TUKTUK_CALLBACK_TOKEN": "hunter2-callback-token",
        "TUKTUK_MPESA_CONSUMER_KEY": "hunter2-consumer-key",
        "TUKTUK_MPESA_CONSUMER_SECRET": "hunter2-consumer-secret",
        "TUKTUK_MPESA_SECURITY_CREDENTIAL": "hunter2-credential",
        "TUKTUK_DATABASE_URL": "postgres://ledger:hunter2-db@db.example/tuktuk",
        "TUKTUK_EMAIL_URL": "smtp+tls://alerts:hunter2-mail@mail.example:587",
    }
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read(**secrets)
    assert "hunter2" not in caplog.text
    assert not [w for w in caught if "hunter2" in str(w.message)]


def test_a_bad_value_stops_the_command_with_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "TUKTUK_DATA_DIR": str(tmp_path), "TUKTUK_PAYOUT_MAX_ATTEMPTS": "abc"}
    env.pop("TUKTUK_TEST_DATABASE_NAME", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tuktuk"), "check"],
        env=env,
        cwd=live_server.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert (
        "ImproperlyConfigured: TUKTUK_PAYOUT_MAX_ATTEMPTS must be an integer, not 'abc'"
        in done.stderr
    )


def test_data_dir_rule_is_the_one_the_cli_uses(tmp_path: Path) -> None:
    from tuktuk import cli, config

    assert cli.data_dir_path is config.data_dir_path  # one rule for the CLI and the settings
    assert config.data_dir_path({"TUKTUK_DATA_DIR": "  "}) == Path("var").resolve()
    assert config.data_dir_path({"TUKTUK_DATA_DIR": str(tmp_path)}) == tmp_path.resolve()
    assert not (tmp_path / "x").exists()
    config.data_dir_path({"TUKTUK_DATA_DIR": str(tmp_path / "x")})
    assert not (tmp_path / "x").exists()  # asking creates nothing
