"""Bearer tokens for the JSON API: created once, stored only as a SHA-256 hash.

A token is 32 random bytes (`secrets.token_urlsafe`), so a fast unsalted hash is enough: there
is nothing to brute-force, and a hash lookup keeps authentication at one indexed query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.contrib.auth.models import User
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from tuktuk.backoffice.models import ApiToken
from tuktuk.core import events

PREFIX_LENGTH = 8
# Writing last_used_at on every request would turn every API read into a write on the token
# row (and, on SQLite, a database-wide write lock); minute precision is all an operator needs.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def api_token_create(*, user: User, name: str = "", actor: str = "") -> tuple[ApiToken, str]:
    """Create a token for `user` (`actor`: who asked, by default the user); returns the row and
    the raw token, which is never stored and cannot be recovered: the caller shows it once."""
    name = name.strip()
    max_name = ApiToken._meta.get_field("name").max_length or 0
    if len(name) > max_name:
        raise ValueError(f"the token name is longer than {max_name} characters")
    raw = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=token_hash(raw), prefix=raw[:PREFIX_LENGTH]
    )
    events.event_record(
        title=events.EventTitle.API_TOKEN_CREATED,
        actor=actor or user.get_username(),
        message=f"API token {token.prefix}… created for {user.get_username()}",
        data={"token_id": token.pk, "prefix": token.prefix, "name": token.name},
    )
    return token, raw


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


def user_for_token(raw: str) -> User | None:
    """The active user owning this live token, or None."""
    raw = raw.strip()
    if not raw:
        return None
    presented = token_hash(raw)
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=presented, revoked_at__isnull=True, user__is_active=True)
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
