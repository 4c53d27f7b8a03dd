"""Login lockout per (username, address) pair, kept by django-axes (dms_admin/login.py): 5 failures
for one username from one address refuse that pair for 15 minutes (429, a clear message); the same
username from another address still signs in with the right password; `manage.py axes_reset*`
lifts a lockout; every attempt is recorded and shown in the admin; API tokens are not affected."""

from io import StringIO

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # tests only


@pytest.fixture
def alice(db):
    return UserFactory(username="alice-admin", role="admin", is_staff=True, is_superuser=True)


def attempt(username, password="wrong", ip="10.0.0.1"):
    return Client().post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def lock_out(username, ip="10.6.6.6"):
    answers = [attempt(username, ip=ip).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 200, 429]  # the form again, "didn't match"; then refused


def test_five_failures_refuse_the_pair_even_with_the_right_password(alice):
    lock_out("alice-admin", ip="10.6.6.6")

    response = attempt("alice-admin", PASSWORD, ip="10.6.6.6")

    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "15 minutes" in response.content.decode()
    assert 840 < int(response["Retry-After"]) <= 900
    assert "_auth_user_id" not in response.client.session


def test_the_right_password_from_another_address_still_signs_in(alice):
    lock_out("alice-admin", ip="10.6.6.6")

    response = attempt("alice-admin", PASSWORD, ip="192.168.1.20")

    assert response.status_code == 302 and response["Location"] == "/"
    assert attempt("alice-admin", PASSWORD, ip="10.6.6.6").status_code == 429  # the attacker's pair still is


def test_failures_spread_over_addresses_lock_nobody_out(alice):
    for n in range(10):
        attempt("alice-admin", ip=f"10.0.0.{n}")

    assert attempt("alice-admin", PASSWORD, ip="10.0.0.1").status_code == 302


def test_other_usernames_from_the_same_address_still_sign_in(alice):
    lock_out("mallory", ip="10.0.0.1")

    assert attempt("alice-admin", PASSWORD, ip="10.0.0.1").status_code == 302


@pytest.mark.parametrize(
    "command, args",
    [
        ("axes_reset_username", ["alice-admin"]),
        ("axes_reset_ip_username", ["10.6.6.6", "alice-admin"]),
        ("axes_reset", []),
    ],
)
def test_the_unlock_commands_lift_a_lockout(alice, command, args):
    lock_out("alice-admin", ip="10.6.6.6")

    call_command(command, *args, stdout=StringIO())

    assert attempt("alice-admin", PASSWORD, ip="10.6.6.6").status_code == 302


def test_refused_attempts_do_not_extend_the_lockout(alice):
    lock_out("alice-admin", ip="10.6.6.6")
    before = AccessAttempt.objects.get(username="alice-admin").attempt_time

    attempt("alice-admin", ip="10.6.6.6")
    attempt("alice-admin", PASSWORD, ip="10.6.6.6")

    assert AccessAttempt.objects.get(username="alice-admin").attempt_time == before


def test_a_successful_login_clears_the_pairs_failures(alice):
    for _ in range(4):
        attempt("alice-admin")
    assert attempt("alice-admin", PASSWORD).status_code == 302

    for _ in range(4):
        attempt("alice-admin")

    assert attempt("alice-admin", PASSWORD).status_code == 302


def test_attempts_are_recorded_without_the_password_and_shown_in_the_admin(alice):
    attempt("alice-admin", "guess-1", ip="10.6.6.6")
    attempt("alice-admin", PASSWORD, ip="192.168.1.20")

    failures = list(AccessFailureLog.objects.values_list("username", "ip_address"))
    assert failures == [("alice-admin", "10.6.6.6")]
    assert list(AccessLog.objects.values_list("username", "ip_address")) == [("alice-admin", "192.168.1.20")]
    assert "guess-1" not in AccessAttempt.objects.get().post_data

    admin = Client()
    admin.force_login(alice)
    page = admin.get("/admin/axes/accessfailurelog/")
    assert page.status_code == 200 and "10.6.6.6" in page.content.decode()
    assert admin.get("/admin/axes/accesslog/").status_code == 200


def test_a_proxy_s_forwarded_address_is_the_pair_s_address(alice, settings):
    settings.LOGIN_IP_FROM_FORWARDED_FOR = True
    for _ in range(5):
        Client().post("/login/", {"username": "alice-admin", "password": "x"}, HTTP_X_FORWARDED_FOR="10.6.6.6")

    assert AccessAttempt.objects.get().ip_address == "10.6.6.6"
    assert (
        Client()
        .post("/login/", {"username": "alice-admin", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="192.168.1.20")
        .status_code
        == 302
    )


def test_an_api_token_still_works_for_a_locked_out_pair(alice):
    lock_out("alice-admin", ip="10.6.6.6")
    out = StringIO()
    call_command("create_api_token", "alice-admin", stdout=out)
    client = APIClient(REMOTE_ADDR="10.6.6.6", HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")

    assert client.get("/api/v1/clusters/").status_code == 200


def test_the_admin_login_goes_through_the_same_page(db):
    response = Client().get("/admin/login/?next=/admin/cluster/")

    assert response.status_code == 302 and response["Location"] == "/login/?next=%2Fadmin%2Fcluster%2F"
    assert Client().get("/admin/")["Location"].startswith("/admin/login/")
