"""API tokens, stored hashed."""

import hashlib
import secrets

from django.conf import settings
from django.db import models, transaction


def token_digest(key: str) -> str:
    """What the database keeps of an API token: its SHA-256. The token is 256 random bits, so a fast
    hash suffices (no password to guess), and a lookup by digest is one index probe."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A user's API token (`Authorization: Token <key>`), stored hashed: the key is shown once, when
    made (`manage.py create_api_token`), and a database dump holds nothing that authenticates."""

    digest = models.CharField(max_length=64, unique=True, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    prefix = models.CharField(max_length=8, editable=False, help_text="The key's first characters, to recognise it.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user) -> str:
        """A new token for `user`, replacing any it had; returns the key, which is not kept."""
        key = secrets.token_urlsafe(32)
        with transaction.atomic():
            cls.objects.filter(user=user).delete()
            cls.objects.create(user=user, digest=token_digest(key), prefix=key[:8])
        return key
