"""Page clients for the personas of tests/conftest.py (Django's test client, logged in)."""

import pytest
from django.test import Client


def _page_client(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def admin_pages(admin_user):
    return _page_client(admin_user)


@pytest.fixture
def operator_pages(operator_user):
    return _page_client(operator_user)


@pytest.fixture
def viewer_pages(viewer_user):
    return _page_client(viewer_user)


@pytest.fixture
def outsider_pages(outsider_user):
    return _page_client(outsider_user)


@pytest.fixture
def anonymous_pages(db):
    return Client()
