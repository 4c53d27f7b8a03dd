"""Login attempts are throttled (DESIGN §4.7, dms_admin/login.py): 5 failures for a username or 20
from one address within 15 minutes refuse further attempts for 15 minutes (429, a clear message),
counted in Redis with a TTL; a success clears the username's counter; without Redis, logins work."""

import logging

import pytest
from django.test import Client

from dms_admin.login import PREFIX
from dms_admin.redis import redis_client
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # tests only


@pytest.fixture(autouse=True)
def clean_counters():
    def clean():
        client = redis_client()
        for key in client.scan_iter(f"{PREFIX}*"):
            client.delete(key)

    clean()
    yield
    clean()


@pytest.fixture
def victor(db):
    return UserFactory(username="victor-viewer", role="viewer")


def attempt(username, password="wrong", ip="10.0.0.1", client=None):
    return (client or Client()).post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_it_refuses_a_username_after_five_failures(victor):
    for _ in range(5):
        assert attempt("victor-viewer").status_code == 200  # the form again, "didn't match"

    response = attempt("victor-viewer", PASSWORD)

    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "15 minutes" in response.content.decode()
    assert 840 < int(response["Retry-After"]) <= 900
    assert "_auth_user_id" not in response.client.session


def test_the_username_limit_ignores_case_and_other_addresses(victor):
    for n in range(5):
        attempt("Victor-Viewer " if n % 2 else "victor-viewer", ip=f"10.0.0.{n}")

    assert attempt("victor-viewer", PASSWORD, ip="10.9.9.9").status_code == 429


def test_other_usernames_from_the_same_address_still_sign_in(victor):
    for _ in range(5):
        attempt("mallory")

    response = attempt("victor-viewer", PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/"


def test_it_refuses_an_address_after_twenty_failures(victor):
    for n in range(20):
        attempt(f"guess-{n}", ip="10.6.6.6")

    assert attempt("victor-viewer", PASSWORD, ip="10.6.6.6").status_code == 429
    assert attempt("victor-viewer", PASSWORD, ip="10.7.7.7").status_code == 302


def test_counters_live_in_redis_with_a_ttl_and_store_no_username(victor):
    attempt("victor-viewer")

    keys = [key.decode() for key in redis_client().scan_iter(f"{PREFIX}*")]

    assert sorted(k.split(":")[2] for k in keys) == ["ip", "user"]
    assert not any("victor" in key for key in keys)
    assert all(0 < redis_client().ttl(key) <= 900 for key in keys)


def test_refused_attempts_do_not_extend_the_lockout(victor):
    for _ in range(5):
        attempt("victor-viewer")
    key = next(k for k in redis_client().scan_iter(f"{PREFIX}user:*"))
    redis_client().expire(key, 100)

    attempt("victor-viewer")
    attempt("victor-viewer", PASSWORD)

    assert redis_client().ttl(key) <= 100
    redis_client().delete(key)  # the lockout ended
    assert attempt("victor-viewer", PASSWORD, ip="10.0.0.2").status_code == 302


def test_a_successful_login_clears_the_username_counter(victor):
    for _ in range(4):
        attempt("victor-viewer")
    assert attempt("victor-viewer", PASSWORD).status_code == 302

    for _ in range(4):
        attempt("victor-viewer")

    assert attempt("victor-viewer", PASSWORD).status_code == 302


def test_without_redis_logins_go_through_with_a_warning(victor, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    redis_client.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="dms_admin.login"):
            for _ in range(6):
                attempt("victor-viewer")
            response = attempt("victor-viewer", PASSWORD)
    finally:
        redis_client.cache_clear()

    assert response.status_code == 302
    assert "login throttle unavailable" in caplog.text and "let through" in caplog.text


def test_the_admin_login_goes_through_the_throttled_page(db):
    response = Client().get("/admin/login/?next=/admin/cluster/")

    assert response.status_code == 302 and response["Location"] == "/login/?next=%2Fadmin%2Fcluster%2F"
    assert Client().get("/admin/")["Location"].startswith("/admin/login/")
