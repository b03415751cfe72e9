"""Helpers shared by the tests of the operator edges (CLI, API, admin): users in a role,
a logged-in admin client, a snapshot of what a tool could change, and "did this actor do it"."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.db.models import Model
from django.test import Client

from tuktuk.core.models import Event


def user_in_role(username: str, group: str) -> User:
    user = User.objects.create_user(username, is_staff=True)  # no password: force_login
    user.groups.add(Group.objects.get(name=group))
    return user


def logged_in(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def snapshot(models: list[type[Model]]) -> dict[str, list[dict[str, Any]]]:
    """Every row of these models, to compare before and after a refused call."""
    return {m._meta.label: list(m._default_manager.order_by("pk").values()) for m in models}


def by(title: str, actor: str) -> bool:
    return Event.objects.filter(title=title, actor=actor).exists()
