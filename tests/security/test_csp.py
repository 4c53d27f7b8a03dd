"""A Content-Security-Policy on the pages and the API docs, and no inline script left on them (the
browser test, tests/browser/test_csp_browser.py, checks that they still work under it)."""

import re

import pytest
from django.test import Client

from tests.factories import ClusterFactory

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


@pytest.fixture
def admin_pages(admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    return client


def test_the_pages_carry_the_policy_and_no_inline_script(admin_pages):
    cluster = ClusterFactory()
    for url in ["/", f"/clusters/{cluster.pk}/", "/alerts/", "/alerts/rules/new/snmp/", "/api/docs/", "/login/"]:
        response = admin_pages.get(url)

        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert not INLINE_SCRIPT.search(response.content.decode()), url


def test_the_swagger_ui_loads_its_setup_as_a_script_file(admin_pages):
    script = admin_pages.get("/api/docs/?script=")

    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
