"""Configuration read from the environment (TUKTUK_*), with generated secrets in the data dir.

Secrets (the Django secret key, the callback token) are generated once into the data directory
when they are not given in the environment; they are never stored in the database.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import dj_database_url


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def data_dir() -> Path:
    path = Path(env_str("TUKTUK_DATA_DIR", "var")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def generated_secret(env_name: str, file_name: str) -> str:
    """Return the secret from the environment, else from (or newly into) the data dir."""
    value = env_str(env_name)
    if value:
        return value
    path = data_dir() / file_name
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


def database_config() -> dict[str, Any]:
    default_url = f"sqlite:///{data_dir() / 'tuktuk.sqlite3'}"
    url = env_str("TUKTUK_DATABASE_URL", default_url)
    config: dict[str, Any] = dj_database_url.parse(
        url, conn_max_age=env_int("TUKTUK_DB_CONN_MAX_AGE", 60)
    )
    engine = config["ENGINE"]
    options: dict[str, Any] = config.setdefault("OPTIONS", {})
    if engine == "django.db.backends.sqlite3":
        # BEGIN IMMEDIATE takes the write lock when a transaction starts, so concurrent
        # postings queue on the busy timeout instead of failing with "database is locked"
        # when a reader tries to upgrade to a writer.
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", 30)
        options.setdefault("init_command", "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;")
        config["CONN_MAX_AGE"] = 0
        test_name = env_str("TUKTUK_TEST_DATABASE_NAME")
        # A file, not ":memory:", so a live server in another process sees the test data.
        config["TEST"] = {"NAME": test_name or str(data_dir() / "test.sqlite3")}
    elif engine == "django.db.backends.postgresql" and env_bool("TUKTUK_DB_PREPARED", True):
        # Server-side binding + prepared statements: the hot path repeats the same dozen
        # statements, and preparing them saves PostgreSQL about a third of its CPU per
        # confirmation (bench/results-c2b.md). Turn off behind PgBouncer in transaction mode.
        options.setdefault("server_side_binding", True)
        options.setdefault("prepare_threshold", 2)
    elif engine == "django.db.backends.mysql":
        options.setdefault("charset", "utf8mb4")
        options.setdefault("isolation_level", "read committed")
        options.setdefault("init_command", "SET sql_mode='STRICT_TRANS_TABLES'")
        config["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    if env_str("TUKTUK_TEST_DATABASE_NAME") and engine != "django.db.backends.sqlite3":
        config["TEST"] = {**config.get("TEST", {}), "NAME": env_str("TUKTUK_TEST_DATABASE_NAME")}
    return config


def email_config(url: str) -> dict[str, Any]:
    """Django EMAIL_* settings from one URL; no URL means emails go to the log (console)."""
    if not url:
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtp+tls", "smtps"}:
        raise ValueError("TUKTUK_EMAIL_URL must start with smtp://, smtp+tls:// or smtps://")
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or (465 if parts.scheme == "smtps" else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": parts.scheme == "smtp+tls",
        "EMAIL_USE_SSL": parts.scheme == "smtps",
        "EMAIL_TIMEOUT": 15,
    }
