"""DEBUG is off unless asked for by name, no error page shows a credential (not even the debug page
`make run` turns on for itself), and nobody can reset a password anonymously (issue 13)."""

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from tests.support.agents import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
# Credentials as a deployment's URLs carry them. The test PostgreSQL trusts loopback, so the password
# in the database URL is ignored there (the pages below read no table); Redis is never reached.
SECRETS = {
    "DATABASE_URL": "postgres://postgres:db-hunter2@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://:redis-hunter2@127.0.0.1:1/0",
    "CELERY_BROKER_URL": "redis://:broker-hunter2@127.0.0.1:1/0",
}
PASSWORDS = ("db-hunter2", "redis-hunter2", "broker-hunter2")


def environment(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_DEBUG", "DJANGO_ENV"}}
    return {**env, **changes}


def debug_setting(**env: str) -> subprocess.CompletedProcess:
    code = "from django.conf import settings; print(settings.DEBUG)"
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_debug_is_off_unless_turned_on_by_name():
    assert debug_setting().stdout.strip() == "False"
    assert debug_setting(DEBUG="1").stdout.strip() == "False"  # a generic name is not enough
    assert debug_setting(DJANGO_DEBUG="1").stdout.strip() == "True"


def test_production_refuses_debug():
    refused = debug_setting(DJANGO_ENV="production", SECRET_KEY="x" * 60, DJANGO_DEBUG="1")

    assert refused.returncode != 0 and "DJANGO_DEBUG must be off" in refused.stderr


@pytest.fixture
def web_server():
    """The web app as an administrator starts it, with the default settings and secret URLs."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=environment(**SECRETS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _answers(port), timeout=30, interval=0.1, message="runserver")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=1).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_404_from_the_default_settings_is_the_plain_page(web_server):
    status, page = _get(web_server + "/no-such-page/")

    assert status == 404 and "There is nothing at this address." in page
    assert "DEBUG = True" not in page and "URLconf" not in page
    for password in PASSWORDS:
        assert password not in page


def test_the_debug_500_page_hides_every_credential(db, settings):
    settings.DEBUG = True  # as under `make run`
    settings.ROOT_URLCONF = "tests.security.failing_urls"
    for name, value in SECRETS.items():
        setattr(settings, name, value)
    client = Client(raise_request_exception=False)

    response = client.get("/boom/", **SECRETS)  # runserver and gunicorn put the environment in META

    page = response.content.decode()
    assert response.status_code == 500 and "RuntimeError" in page  # the debug page, really
    for password in PASSWORDS:
        assert password not in page


@pytest.mark.parametrize(
    "url", ["/password_reset/", "/password_reset/done/", "/reset/MQ/set-password/", "/reset/done/"]
)
def test_there_is_no_anonymous_password_reset(anonymous_api, url):
    assert Client().get(url).status_code == 404
    assert Client().post(url, {"email": "alice@example.com"}).status_code == 404


def test_a_signed_in_user_still_changes_their_password_and_logs_out(admin_user):
    client = Client()
    client.force_login(admin_user)

    assert client.get("/password_change/").status_code == 200
    assert client.post("/logout/").status_code == 302
