"""Secrets encrypted at rest (dms_admin/encryption.py): the column becomes text (a Fernet token is
longer than the secret) and the values already stored are encrypted with the first key of
FIELD_ENCRYPTION_KEYS; backwards, they are decrypted again.

API tokens are stored hashed from now on (cluster.models.ApiToken): the tokens of DRF's authtoken
table, where they lay in plain text, are moved over as hashes (they keep working) and deleted there."""

import django.db.models.deletion
import dms_admin.encryption
from django.conf import settings
from django.db import migrations, models

from cluster.models import token_digest


COLUMNS = ['agent_token']


def encrypt_stored(apps, schema_editor):
    dms_admin.encryption.encrypt_columns(
        schema_editor.connection, "cluster_server", COLUMNS, change=dms_admin.encryption.encrypt_plain
    )


def decrypt_stored(apps, schema_editor):
    dms_admin.encryption.encrypt_columns(
        schema_editor.connection, "cluster_server", COLUMNS, change=dms_admin.encryption.decrypt_token
    )

def hash_drf_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("cluster", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        for key, user_id, created in cursor.fetchall():
            token = ApiToken.objects.create(user_id=user_id, digest=token_digest(key), prefix=key[:8])
            ApiToken.objects.filter(pk=token.pk).update(created_at=created)
        cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):

    dependencies = [
        ('cluster', '0005_failover_convergence'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='server',
            name='agent_token',
            field=dms_admin.encryption.EncryptedTextField(blank=True, help_text='Bearer token of the agent (write-only, encrypted at rest).', max_length=200),
        ),
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.CharField(editable=False, max_length=64, unique=True)),
                ('prefix', models.CharField(editable=False, help_text="The key's first characters, to recognise it.", max_length=8)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='api_token', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.RunPython(encrypt_stored, decrypt_stored),
        migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop),
    ]
