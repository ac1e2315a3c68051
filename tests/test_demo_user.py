"""manage.py demo_user: a fresh `admin` gets a random password printed once; an existing user
of that name is never touched."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def demo_user(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("demo_user", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_fresh_admin_is_a_superuser_whose_random_password_is_printed_once():
    out, err = demo_user()

    password = out.strip()
    assert out == password + "\n" and err == ""
    assert len(password) >= 16
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert admin.check_password(password)


def test_two_fresh_users_get_different_passwords():
    first, _ = demo_user("--username", "demo1")
    second, _ = demo_user("--username", "demo2")
    assert first != second


def test_an_existing_admin_keeps_its_password_and_flags_and_is_told_so():
    users = get_user_model().objects
    users.create_user("admin", "ops@example.com", "the-real-password", is_staff=False)
    before = users.values().get(username="admin")

    out, err = demo_user()

    assert out == ""  # no password: nothing was set
    assert "user 'admin' already exists: left unchanged" in err
    assert users.values().get(username="admin") == before
    assert users.get(username="admin").check_password("the-real-password")


def test_an_existing_superuser_is_not_reset_either():
    users = get_user_model().objects
    users.create_superuser("admin", "ops@example.com", "kept-password")
    demo_user()
    assert users.get(username="admin").check_password("kept-password")
    assert users.count() == 1
