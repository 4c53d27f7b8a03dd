"""Secrets encrypted at rest (dms_admin/encryption.py): the column becomes text (a Fernet token is
longer than the secret) and the values already stored are encrypted with the first key of
FIELD_ENCRYPTION_KEYS; backwards, they are decrypted again."""

import dms_admin.encryption
from django.db import migrations


COLUMNS = ['community', 'auth_key', 'priv_key']


def encrypt_stored(apps, schema_editor):
    dms_admin.encryption.encrypt_columns(
        schema_editor.connection, "alerts_notificationrule", COLUMNS, change=dms_admin.encryption.encrypt_plain
    )


def decrypt_stored(apps, schema_editor):
    dms_admin.encryption.encrypt_columns(
        schema_editor.connection, "alerts_notificationrule", COLUMNS, change=dms_admin.encryption.decrypt_token
    )


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0003_role_permissions'),
    ]

    operations = [
        migrations.AlterField(
            model_name='notificationrule',
            name='auth_key',
            field=dms_admin.encryption.EncryptedTextField(blank=True, max_length=100),
        ),
        migrations.AlterField(
            model_name='notificationrule',
            name='community',
            field=dms_admin.encryption.EncryptedTextField(blank=True, max_length=100),
        ),
        migrations.AlterField(
            model_name='notificationrule',
            name='priv_key',
            field=dms_admin.encryption.EncryptedTextField(blank=True, max_length=100),
        ),
        migrations.RunPython(encrypt_stored, decrypt_stored),
    ]
