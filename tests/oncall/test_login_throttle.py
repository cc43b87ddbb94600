"""Login throttling on every login form (issue 17, finding 5): django-axes, per address and per
account, VIGIE_LOGIN_FAILURE_LIMIT failures within VIGIE_LOGIN_COOLOFF_MINUTES, then a 429 page."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff(db):
    return User.objects.create_user("ada", password=PASSWORD, is_staff=True, is_superuser=True)


def attempt(path: str, username: str, password: str, address: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


@pytest.mark.parametrize("path", ["/oncall/login/", "/admin/login/"])
def test_the_sixth_try_after_five_failures_is_refused_even_with_the_right_password(staff, path, settings):
    assert settings.VIGIE_LOGIN_FAILURE_LIMIT == 5 and settings.VIGIE_LOGIN_COOLOFF_MINUTES == 15
    for _ in range(4):
        assert attempt(path, "ada", "wrong").status_code == 200  # the form again, with its error
    locked = attempt(path, "ada", "wrong")
    assert locked.status_code == 429
    refused = attempt(path, "ada", PASSWORD)
    assert refused.status_code == 429
    assert b"Too many failed logins" in refused.content and b"0:15:00" in refused.content
    assert "_auth_user_id" not in refused.wsgi_request.session


def test_an_account_is_locked_from_every_address_and_an_address_for_every_account(staff):
    for _ in range(5):
        attempt("/oncall/login/", "ada", "wrong", address="203.0.113.7")
    assert attempt("/oncall/login/", "ada", PASSWORD, address="198.51.100.9").status_code == 429
    User.objects.create_user("bob", password=PASSWORD)
    assert attempt("/oncall/login/", "bob", PASSWORD, address="203.0.113.7").status_code == 429


def test_a_success_before_the_limit_resets_the_count(staff):
    for _ in range(4):
        attempt("/oncall/login/", "ada", "wrong")
    assert attempt("/oncall/login/", "ada", PASSWORD).status_code == 302
    for _ in range(4):
        assert attempt("/oncall/login/", "ada", "wrong").status_code == 200


@pytest.mark.parametrize(("remote", "stored"), [("203.0.113.7", "203.0.113.7"), ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
                                                ("", None), ("not-an-address", None)])
def test_the_address_axes_stores_fits_an_ip_address_column(rf, remote, stored):
    """PostgreSQL's inet column refused 'unknown' and '2001:db8::/64': every login through
    force_login failed there."""
    from statuspage.security import axes_client_ip

    request = rf.get("/oncall/login/", REMOTE_ADDR=remote)
    assert axes_client_ip(request) == stored
