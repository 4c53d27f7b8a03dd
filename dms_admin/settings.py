"""Settings, read from the environment (12-factor). Every variable is listed in README.md.

`DJANGO_ENV=production` switches on the HTTPS-only settings that `manage.py check --deploy` asks for;
the default (development) keeps plain HTTP so that `make run` and the tests work on loopback.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def development_key(run_dir: Path) -> str:
    """The development encryption key, made once and kept (mode 0600) in the run folder, so that the
    web app, the workers and every later `manage.py` of the demo read what the others wrote."""
    path = run_dir / "field-encryption-key"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        draft = run_dir / f".field-encryption-key.{os.getpid()}"
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(Fernet.generate_key().decode() + "\n")
        try:
            os.link(draft, path)  # atomic: of processes starting together, one key wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


PRODUCTION = os.environ.get("DJANGO_ENV", "development") == "production"
# Off unless asked for by name (`make run` asks for itself): Django's debug pages show code, settings
# and the request's environment. Never with the production settings.
DEBUG = env_bool("DJANGO_DEBUG", False)
if DEBUG and PRODUCTION:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when DJANGO_ENV=production")
# Even a debug page shows no credentials: URLs (database, Redis, broker) carry passwords.
DEFAULT_EXCEPTION_REPORTER_FILTER = "dms_admin.errors.SecretsHidingFilter"

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
    # Development only: a fresh key per process is fine because sessions need not survive restarts.
    SECRET_KEY = "dev-" + secrets.token_urlsafe(48)

# Keys of the secrets stored in the database (dms_admin/encryption.py): comma-separated Fernet keys,
# the first encrypts, all decrypt. Production refuses to start without them; development keeps a
# generated key in the run folder (`make run`'s, or $DMS_RUN_DIR), the tests take a fixed one (Makefile).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", "")
if not FIELD_ENCRYPTION_KEYS:
    if PRODUCTION:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set when DJANGO_ENV=production")
    FIELD_ENCRYPTION_KEYS = [development_key(Path(os.environ.get("DMS_RUN_DIR") or BASE_DIR / "run"))]

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "audit",
    "licensing",
    "alerts",
    "cluster",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "dms_admin.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a lockout found while signing in into the login page's refusal (dms_admin/login.py).
    "axes.middleware.AxesMiddleware",
]

# Axes first: it refuses a locked-out (username, address) pair before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "dms_admin.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "libraries": {"dms": "dms_admin.templatetags"},
        },
    },
]

WSGI_APPLICATION = "dms_admin.wsgi.application"

# SQLite is only the zero-setup default of `make run`; PostgreSQL is the database of record.
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'run' / 'dms.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and immediate transactions let the web app, the workers and beat share one file.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Without collectstatic (development, tests) WhiteNoise serves straight from the apps' folders.
WHITENOISE_USE_FINDERS = True
FORMS_URLFIELD_ASSUME_HTTPS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Redis: broker for Celery and home of the heartbeat state (DESIGN §4.6).
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Heartbeats and failovers never wait behind replication or notification work (DESIGN §5, §4a);
# notifications and configuration never wait behind a replication job, which follows a copy for as
# long as it takes (minutes for a large library): each long job holds a `replication` worker's
# process, never a `default` one's (docs/decisions.md, "A queue for replication jobs").
CELERY_TASK_ROUTES = {
    "cluster.tasks.dispatch_heartbeats": {"queue": "heartbeat"},
    "cluster.tasks.probe_batch": {"queue": "heartbeat"},
    "cluster.tasks.run_failover": {"queue": "failover"},
    "cluster.tasks.replicate": {"queue": "replication"},
    "cluster.tasks.*": {"queue": "default"},
    "licensing.tasks.*": {"queue": "default"},
    "alerts.tasks.*": {"queue": "default"},
}
# Periodic tasks; django-celery-beat's database scheduler copies these into its tables, where
# administrators can see and tune them.
CELERY_BEAT_SCHEDULE: dict = {
    "dispatch-heartbeats": {"task": "cluster.tasks.dispatch_heartbeats", "schedule": 1.0},
    "dispatch-replication": {"task": "cluster.tasks.dispatch_replication", "schedule": 5.0},
    "flush-last-seen": {"task": "cluster.tasks.flush_last_seen", "schedule": 10.0},
}
# How long a failover task's claim lasts without renewal before another worker takes over (§4a.6).
FAILOVER_CLAIM_S = float(os.environ.get("FAILOVER_CLAIM_S", "5.0"))
# Tests only: the failover task stops before the step named by a cluster's `fault_pause` (one query
# per step). Off in production, which never pays for it.
FAILOVER_TEST_PAUSES = os.environ.get("FAILOVER_TEST_PAUSES", "") == "1"
# A running replication job that reported no progress for this long lost its worker (DESIGN §5).
REPLICATION_STALE_S = float(os.environ.get("REPLICATION_STALE_S", "30"))
# Notification outbox sweeper: re-queues deliveries whose task was lost (alerts/delivery.py).
CELERY_BEAT_SCHEDULE["alerts-sweep-deliveries"] = {
    "task": "alerts.tasks.sweep_deliveries",
    "schedule": float(os.environ.get("NOTIFICATION_SWEEP_INTERVAL_S", "30")),
}
# Retention (cluster/retention.py): rows older than this many days are deleted every day at 03:30
# (CELERY_TIMEZONE), in batches; 0 keeps them for ever. Open incidents and undelivered
# notifications are kept whatever their age.
RETENTION_EVENTS_DAYS = int(os.environ.get("RETENTION_EVENTS_DAYS", "365"))
RETENTION_DELIVERIES_DAYS = int(os.environ.get("RETENTION_DELIVERIES_DAYS", "90"))
RETENTION_REPLICATION_JOBS_DAYS = int(os.environ.get("RETENTION_REPLICATION_JOBS_DAYS", "90"))
RETENTION_LOGIN_LOGS_DAYS = int(os.environ.get("RETENTION_LOGIN_LOGS_DAYS", "90"))
CELERY_BEAT_SCHEDULE["prune-old-rows"] = {
    "task": "cluster.tasks.prune_old_rows",
    "schedule": crontab(hour=3, minute=30),
}
CELERY_TIMEZONE = TIME_ZONE

# Email (Django's mail framework).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "DMS Failover <dms-failover@localhost>")

# The address of this web app as users reach it, for links in notifications.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# Notifications (alerts/delivery.py): retries with exponential backoff (base, 2 × base, … up to the
# maximum) until delivered or expired; a claimed delivery not finished within the claim is re-queued.
NOTIFICATION_EXPIRY_S = float(os.environ.get("NOTIFICATION_EXPIRY_S", "86400"))
NOTIFICATION_RETRY_BASE_S = float(os.environ.get("NOTIFICATION_RETRY_BASE_S", "30"))
NOTIFICATION_RETRY_MAX_S = float(os.environ.get("NOTIFICATION_RETRY_MAX_S", "3600"))
NOTIFICATION_CLAIM_S = float(os.environ.get("NOTIFICATION_CLAIM_S", "120"))
NOTIFICATION_SWEEP_GRACE_S = float(os.environ.get("NOTIFICATION_SWEEP_GRACE_S", "30"))
SNMP_INFORM_TIMEOUT_S = float(os.environ.get("SNMP_INFORM_TIMEOUT_S", "3"))
# The product's SNMP engine ID (hex); empty: generated once and stored in the database (DESIGN §9).
SNMP_ENGINE_ID = os.environ.get("SNMP_ENGINE_ID", "")

# Token that Prometheus sends as a bearer credential to /metrics (DESIGN §4.7).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# CA bundle used to verify agents' TLS certificates (DESIGN §4.7); plain HTTP only on loopback.
AGENT_CA_FILE = os.environ.get("AGENT_CA_FILE", "")

# Login lockout (dms_admin/login.py, django-axes): failures counted in the database per (username,
# address) pair; at the limit, that pair is refused (429) for the lockout period.
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_LOCKOUT_S = int(os.environ.get("LOGIN_LOCKOUT_S", "900"))
# Behind a reverse proxy, count per client address from the last X-Forwarded-For entry.
LOGIN_IP_FROM_FORWARDED_FOR = env_bool("LOGIN_IP_FROM_FORWARDED_FOR", False)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT_S)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # nobody can keep a pair locked out for ever
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # every failure, not only the counters (the admin shows both)
AXES_CLIENT_IP_CALLABLE = "dms_admin.login.client_ip"
AXES_LOCKOUT_CALLABLE = "dms_admin.login.lockout_response"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so that a refused API client gets 401 with a WWW-Authenticate header.
        "dms_admin.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dms_admin.permissions.RolePermission"],
    # JSON bodies only, as the schema says: form and multipart bodies read checkboxes, blanks and
    # numbers their own way (a missing `maintenance` meant false), which no generated client expects.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "dms_admin.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "dms_admin.schema.ApiSchema",
    "EXCEPTION_HANDLER": "dms_admin.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "DMS Failover API",
    "DESCRIPTION": "REST API v1 for monitoring tools: clusters, servers, events and notifications.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["dms_admin.permissions.RolePermission"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One enum per vocabulary, whichever serializer field uses it.
    "ENUM_NAME_OVERRIDES": {
        "EventTypeEnum": "alerts.choices.EventType",
        "SeverityEnum": "alerts.choices.Severity",
        "SourceEnum": "licensing.models.Source",  # the licensing one kept its name
        "AuditSourceEnum": "audit.models.Source",
        "AuditActionEnum": "audit.models.Action",
        "IncidentStateEnum": "cluster.choices.INCIDENT_STATES",
    },
}

# Requests bodies above this size are refused before parsing (a 100 kB string is fine).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes: failures and lockouts are warnings; its INFO lines repeat them for every attempt.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
