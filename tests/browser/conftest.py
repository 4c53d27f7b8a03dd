"""Chromium (Debian's, driven by Playwright) against a real web server on the test database.

The server is started once per module; each test's data is committed (transactional_db) so the
server sees it, and flushed afterwards. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from tests.support.processes import web_server

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
PASSWORD = "correct-horse-battery"
ENGINE_ID = "80007ed905627277736572"  # "browser"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server_url(django_db_setup, django_db_blocker, smtp_for_web):
    with django_db_blocker.unblock():
        connection.ensure_connection()
        web, url = web_server(
            ARTIFACTS / "browser" / os.environ.get("PYTEST_XDIST_WORKER", ""),
            SNMP_ENGINE_ID=ENGINE_ID,
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp_for_web.port),
        )
    yield url
    web.stop()


@pytest.fixture(scope="module")
def smtp_for_web():
    from tests.support.smtp import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("chromium is not installed (Debian package chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are fine.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def users(transactional_db):
    """The personas with passwords (groups made again: a flush between tests removes them)."""
    made = {}
    for name, role in (("alice-admin", "admin"), ("oscar-operator", "operator"), ("victor-viewer", "viewer")):
        group, _ = Group.objects.get_or_create(name=role)
        user = get_user_model().objects.create_user(name, password=PASSWORD, is_staff=role == "admin")
        user.groups.add(group)
        made[role] = user
    return made


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, base_url: str, username: str, *, shot: str | None = None) -> None:
    page.goto(base_url + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    if shot:
        screenshot(page, shot)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
