"""Vigie's one settings module: every value comes from the environment, checked strictly.

With no variable set Vigie runs embedded: SQLite and a filesystem broker under VIGIE_DATA_DIR,
nothing to install. DATABASE_URL and CELERY_BROKER_URL switch to PostgreSQL and Redis/RabbitMQ.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from statuspage.env import env_bool, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("VIGIE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("VIGIE_DEBUG", False)


def _secret_key() -> str:
    """The key from VIGIE_SECRET_KEY, else one made once and kept in the data folder."""
    key = env_str("VIGIE_SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("VIGIE_SECRET_KEY must be at least 32 characters long.")
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Platform tokens are encrypted at rest with this key (Fernet); it defaults to one derived from
# SECRET_KEY, so rotating SECRET_KEY without setting this makes stored tokens unreadable.
VIGIE_ENCRYPTION_KEY = env_str("VIGIE_ENCRYPTION_KEY")
if VIGIE_ENCRYPTION_KEY:
    try:
        Fernet(VIGIE_ENCRYPTION_KEY.encode())
    except ValueError:
        raise ImproperlyConfigured("VIGIE_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); "
                                   "make one with: python -c \"from cryptography.fernet import Fernet; "
                                   "print(Fernet.generate_key().decode())\"") from None

ALLOWED_HOSTS = env_list("VIGIE_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "probes",
    "sandbox",
    "statuspage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "statuspage.urls"

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
        },
    },
]

WSGI_APPLICATION = "statuspage.wsgi.application"

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{DATA_DIR / 'vigie.sqlite3'}",
    schemes=("sqlite", "postgres", "postgresql", "pgsql"),
)
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several worker processes write at once: WAL lets readers go on, IMMEDIATE takes the write
    # lock at BEGIN (no lock upgrade deadlocks), and a generous timeout waits instead of failing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = env_str("VIGIE_TIME_ZONE", "UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"VIGIE_TIME_ZONE={TIME_ZONE!r} is not a time zone name (e.g. UTC, Europe/Paris).") \
        from None
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# --- Celery -----------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL",
    "filesystem://localhost//",
    schemes=("filesystem", "redis", "rediss", "amqp", "amqps", "pyamqp"),
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    # The embedded broker: messages are files in one folder shared by every local process.
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "vigie"
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_TIMEZONE = "UTC"
DISPATCH_EVERY_SECONDS = env_int("VIGIE_DISPATCH_EVERY", 2, minimum=1, maximum=60)
CELERY_BEAT_SCHEDULE = {
    "dispatch-due-probes": {
        "task": "probes.tasks.dispatch_due",
        "schedule": float(DISPATCH_EVERY_SECONDS),
        "options": {"expires": float(DISPATCH_EVERY_SECONDS)},
    },
    "watchdog": {
        "task": "probes.tasks.watchdog",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
    "retry-pending-cleanups": {
        "task": "probes.tasks.cleanup_pending",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}

# --- Vigie ------------------------------------------------------------------------------------
VIGIE_PAGE_NAME = env_str("VIGIE_PAGE_NAME", "Vigie")
VIGIE_PUBLIC_URL = env_url("VIGIE_PUBLIC_URL", "http://127.0.0.1:8000", schemes=("http", "https")).rstrip("/")
# A hostile platform response is cut off past this many bytes.
VIGIE_MAX_RESPONSE_BYTES = env_int("VIGIE_MAX_RESPONSE_BYTES", 2_000_000, minimum=10_000)
# Runs past the failure threshold with no success in between before an automatic incident opens:
# the component shows the outage at once, the incident waits for confirmation (flap damping).
VIGIE_INCIDENT_CONFIRM_RUNS = env_int("VIGIE_INCIDENT_CONFIRM_RUNS", 2, minimum=0, maximum=20)
SANDBOX_PORT = env_int("SANDBOX_PORT", 8001, minimum=1, maximum=65535)
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

LOG_LEVEL = env_str("VIGIE_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"VIGIE_LOG_LEVEL={LOG_LEVEL!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
