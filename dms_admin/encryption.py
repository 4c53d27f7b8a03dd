"""Secrets encrypted at rest: a model field that stores Fernet tokens and reads back plain text.

Fernet (the `cryptography` package: AES-128-CBC with HMAC-SHA256, a random IV per value) under a
MultiFernet of `FIELD_ENCRYPTION_KEYS`: the first key encrypts, every key decrypts, so a new key is
put first, `manage.py rotate_encryption_key` re-encrypts, and only then is the old one dropped
(docs/operator-guide.md, "Keys and tokens"). A database dump or backup holds tokens only.

An empty value stays empty: "no secret set" is not a secret, and blank checks keep working.
Equality lookups on these fields cannot work (every encryption differs) and nothing does them.
"""

from __future__ import annotations

from functools import cache, lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.validators import MaxLengthValidator
from django.db import models
from django.utils.functional import cached_property


class SecretUnreadable(ImproperlyConfigured):
    """A stored secret that none of the configured keys decrypts."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: secrets cannot be encrypted or read")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a key that is not a Fernet key (32 url-safe base64-encoded bytes, "
            "as `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` prints)"
        ) from error


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return _decrypt(tuple(settings.FIELD_ENCRYPTION_KEYS), token)


@lru_cache(maxsize=65536)
def _decrypt(keys: tuple[str, ...], token: str) -> str:
    """Cached by token: the heartbeat worker reads every probed server's token each interval, and a
    Fernet decryption costs ~80 µs on this 2-core machine, a hit ~2.5 µs (a token changes only when
    its secret is saved again). Failures are not cached."""
    try:
        return _fernet(keys).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with any key of FIELD_ENCRYPTION_KEYS: the key that "
            'encrypted it is missing (see docs/operator-guide.md, "Backups of encrypted data")'
        ) from None


def is_encrypted(value: str) -> bool:
    """Whether a stored value is a token of one of the configured keys (the data migration and the
    rotation command meet plain values only in a database written before encryption)."""
    try:
        fernet().decrypt(value.encode())
    except InvalidToken:
        return False
    return True


def rotate(token: str) -> str:
    """The same secret encrypted with the first key, whichever configured key encrypted it."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("A stored secret cannot be decrypted with any key of FIELD_ENCRYPTION_KEYS") from None


class EncryptedTextField(models.TextField):
    """Encrypts on the way to the database, decrypts on the way back; the model sees plain text.
    `max_length` bounds the plain text (the stored token is about 1.4 × longer plus 100 bytes)."""

    @cached_property
    def validators(self):
        validators = super().validators
        return [*validators, MaxLengthValidator(self.max_length)] if self.max_length else validators

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)


def encrypted_fields() -> list[tuple[type[models.Model], list[str]]]:
    """Every installed model with encrypted fields, and those fields' column names."""
    found = []
    for model in apps.get_models():
        columns = [f.column for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if columns:
            found.append((model, columns))
    return found


def encrypt_columns(connection, table: str, columns: list[str], *, change) -> int:
    """Rewrite every non-empty value of `columns` in `table` through `change` (raw SQL: the data
    migrations meet plain values that the field itself would refuse to read). Returns the count."""
    quote = connection.ops.quote_name
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""  # a save meanwhile waits
    changed = 0
    with connection.cursor() as cursor:
        for column in columns:
            cursor.execute(f"SELECT id, {quote(column)} FROM {quote(table)} WHERE {quote(column)} <> ''{lock}")
            for pk, value in cursor.fetchall():
                new = change(value)
                if new != value:
                    cursor.execute(f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE id = %s", [new, pk])
                    changed += 1
    return changed


def encrypt_plain(value: str) -> str:
    """A data migration's forward step: plain values are encrypted, tokens left as they are."""
    return value if is_encrypted(value) else encrypt(value)


def decrypt_token(value: str) -> str:
    """A data migration's backward step: back to plain text."""
    return decrypt(value) if is_encrypted(value) else value
