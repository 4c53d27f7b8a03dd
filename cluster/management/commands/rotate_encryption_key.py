"""Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS, so that the keys after
it can be dropped (docs/operator-guide.md, "Keys and tokens")."""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from dms_admin.encryption import SecretUnreadable, encrypt_columns, encrypted_fields, rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret in the database with the first key of FIELD_ENCRYPTION_KEYS "
        "(all listed keys decrypt). Run after putting a new key first; then drop the old key."
    )

    def handle(self, *args, **options):
        total = 0
        try:
            with transaction.atomic():
                for model, columns in encrypted_fields():
                    count = encrypt_columns(connection, model._meta.db_table, columns, change=rotate)
                    self.stdout.write(f"{model._meta.label}: {count} value(s) re-encrypted")
                    total += count
        except SecretUnreadable as error:
            raise CommandError(f"{error}; nothing was changed.") from None
        self.stdout.write(f"Done: {total} secret(s) now encrypted with the first key.")
