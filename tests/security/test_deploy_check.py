"""`manage.py check --deploy` finds nothing with the production settings (DESIGN §4.7), and the
development defaults are what it would complain about — so the check is really looking."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

REPO_ROOT = Path(__file__).resolve().parents[2]


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in {"DJANGO_DEBUG", "DJANGO_ENV"}}
    environment.update(DJANGO_SETTINGS_MODULE="dms_admin.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check():
    result = check_deploy(
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="dms.example.com",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_settings_do_not():
    result = check_deploy(DJANGO_ENV="development")

    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # no HSTS: the check is really looking


def test_production_refuses_to_start_without_a_secret_key():
    result = check_deploy(DJANGO_ENV="production", SECRET_KEY="", ALLOWED_HOSTS="dms.example.com")

    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_an_encryption_key():
    result = check_deploy(
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="dms.example.com",
        FIELD_ENCRYPTION_KEYS="",
    )

    assert result.returncode != 0 and "FIELD_ENCRYPTION_KEYS must be set" in result.stderr
