"""dmsctl against a running control plane: the web app as a real process on a loopback port
(its rows committed by transactional tests), dmsctl as a subprocess, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.models import ApiToken
from tests.factories import UserFactory
from tests.support.processes import REPO_ROOT, web_server


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        process, url = web_server(tmp_path_factory.mktemp("web"))
    yield url
    process.stop()


def token_for(role: str | None, username: str) -> str:
    return ApiToken.issue(UserFactory(username=username, role=role))


@pytest.fixture
def operator_token(transactional_db) -> str:
    return token_for("operator", "oscar-operator")


@pytest.fixture
def viewer_token(transactional_db) -> str:
    return token_for("viewer", "victor-viewer")


class Dmsctl:
    """Runs `python -m dmsctl` with a clean environment: a private HOME (no config file unless a
    test writes one), the URL and token given."""

    def __init__(self, home: Path, url: str, token: str | None):
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DMSCTL_")}
        self.env.update(HOME=str(home), DMSCTL_URL=url, PYTHONUNBUFFERED="1")
        if token:
            self.env["DMSCTL_TOKEN"] = token

    def __call__(self, *args: str, timeout: float = 90, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dmsctl", *args],
            cwd=REPO_ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "dmsctl", *args],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def dmsctl(web, operator_token, tmp_path) -> Dmsctl:
    return Dmsctl(tmp_path, web, operator_token)
