"""What error reports (the debug page of `make run`, error mails) may show."""

import re

from django.views.debug import SafeExceptionReporterFilter


class SecretsHidingFilter(SafeExceptionReporterFilter):
    """Django's filter hides settings and request variables named like API, TOKEN, KEY, SECRET, PASS;
    this one also hides every URL, DSN and broker setting (DATABASE_URL, REDIS_URL,
    CELERY_BROKER_URL hold passwords) and SNMP communities."""

    hidden_settings = re.compile("API|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|URL|DSN|BROKER|COMMUNITY", flags=re.I)
