"""Bearer tokens for the JSON API, and the legacy app's API keys (`Authorization: token
<api_key>:<api_secret>`, for /api/method/): created once, stored only as a SHA-256 hash.

A token is 32 random bytes (`secrets.token_urlsafe`), so a fast unsalted hash is enough: there
is nothing to brute-force, and a hash lookup keeps authentication at one indexed query. A Frappe
key pair is stored the same way, as the hash of `api_key:api_secret`; each kind authenticates
only its own scheme.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import secrets

from django.contrib.auth.models import User
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from tuktuk.backoffice.models import ApiToken, ApiTokenKind
from tuktuk.core import events

PREFIX_LENGTH = 8
# Writing last_used_at on every request would turn every API read into a write on the token
# row (and, on SQLite, a database-wide write lock); minute precision is all an operator needs.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _token_store(*, user: User, name: str, raw: str, kind: str, actor: str) -> ApiToken:
    name = name.strip()
    max_name = ApiToken._meta.get_field("name").max_length or 0
    if len(name) > max_name:
        raise ValueError(f"the token name is longer than {max_name} characters")
    token = ApiToken.objects.create(
        user=user, name=name, kind=kind, key_hash=token_hash(raw), prefix=raw[:PREFIX_LENGTH]
    )
    what = "API token" if kind == ApiTokenKind.BEARER else "Frappe API key"
    events.event_record(
        title=events.EventTitle.API_TOKEN_CREATED,
        actor=actor or user.get_username(),
        message=f"{what} {token.prefix}… created for {user.get_username()}",
        data={"token_id": token.pk, "prefix": token.prefix, "name": token.name, "kind": kind},
    )
    return token


def api_token_create(*, user: User, name: str = "", actor: str = "") -> tuple[ApiToken, str]:
    """Create a token for `user` (`actor`: who asked, by default the user); returns the row and
    the raw token, which is never stored and cannot be recovered: the caller shows it once."""
    raw = secrets.token_urlsafe(32)
    token = _token_store(user=user, name=name, raw=raw, kind=ApiTokenKind.BEARER, actor=actor)
    return token, raw


# Frappe's keys are 15 characters; ours are longer, from the same alphabet as its hashes.
FRAPPE_KEY_LENGTH = 16
FRAPPE_SECRET_BYTES = 24


def frappe_api_key_create(
    *, user: User, name: str = "", actor: str = ""
) -> tuple[ApiToken, str, str]:
    """An API key and secret for the legacy calls (`Authorization: token key:secret`), as
    Frappe issues them per user. Returns the row, the key and the secret; only the hash of
    `key:secret` is stored, so the caller shows the pair once."""
    api_key = secrets.token_hex(FRAPPE_KEY_LENGTH // 2)
    api_secret = secrets.token_urlsafe(FRAPPE_SECRET_BYTES)  # never contains ':'
    token = _token_store(
        user=user, name=name, raw=f"{api_key}:{api_secret}", kind=ApiTokenKind.FRAPPE, actor=actor
    )
    return token, api_key, api_secret


def api_tokens_revoke(*, token_ids: list[int], actor: str) -> int:
    """Revoke the given tokens; an already revoked token keeps its first revocation time."""
    revoked = 0
    for token in ApiToken.objects.select_related("user").filter(
        pk__in=token_ids, revoked_at__isnull=True
    ):
        # Compare-and-swap, so two operators revoking at once log one revocation, not two.
        if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        ):
            revoked += 1
            events.event_record(
                title=events.EventTitle.API_TOKEN_REVOKED,
                actor=actor,
                message=f"API token {token.prefix}… of {token.user.get_username()} revoked",
                data={"token_id": token.pk, "prefix": token.prefix},
            )
    return revoked


def user_for_token(raw: str, *, kind: str = ApiTokenKind.BEARER) -> User | None:
    """The active user owning this live token (of this kind), or None."""
    raw = raw.strip()
    if not raw:
        return None
    presented = token_hash(raw)
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=presented, kind=kind, revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    # The lookup already matched on the hash; the constant-time comparison guards against a
    # database collation that compares case- or padding-insensitively.
    if token is None or not hmac.compare_digest(token.key_hash, presented):
        return None
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    return token.user


class BearerTokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; sets request.auth to the token's user."""

    def __call__(self, request: HttpRequest) -> User | None:
        # Parsed here rather than by ninja, which logs the whole header on a scheme mismatch
        # when DEBUG is on: a token sent as "Token <token>" would end up in the log.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme:
            return None
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        return user_for_token(token)


def user_for_frappe_authorization(header: str) -> User | None:
    """The user of a Frappe-style `Authorization` header, as the legacy app's clients send it:
    `token <api_key>:<api_secret>`, or HTTP Basic with the key and secret; None otherwise."""
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "basic":
        try:
            credentials = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
    elif scheme.lower() != "token":
        return None
    api_key, colon, api_secret = credentials.partition(":")
    if not colon or not api_key.strip() or not api_secret.strip():
        return None
    return user_for_token(f"{api_key.strip()}:{api_secret.strip()}", kind=ApiTokenKind.FRAPPE)
