"""Vigie's one settings module: every value comes from the environment, checked strictly.

With no variable set Vigie runs embedded: SQLite and a filesystem broker under VIGIE_DATA_DIR,
nothing to install. DATABASE_URL and CELERY_BROKER_URL switch to PostgreSQL and Redis/RabbitMQ.
"""
from __future__ import annotations

from datetime import timedelta
import ipaddress
import re
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from vigie.env import env_bool, env_int, env_list, env_str, env_url

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
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: /api/docs/ needs no CDN
    "django_filters",
    "probes",
    "detection",
    "official",
    "sandbox",
    "statuspage",
    "notifications",
    "oncall",
    "axes",  # login throttling (docs/security.md)
]

# Login throttling on every login form (/oncall/login/, /admin/login/): django-axes counts failures
# per address and per account name; past VIGIE_LOGIN_FAILURE_LIMIT within the cool-off, that address
# or account is refused (HTTP 429, templates/oncall/locked.html) until VIGIE_LOGIN_COOLOFF_MINUTES pass.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "statuspage.security.ContentSecurityPolicyMiddleware",
    "statuspage.fallback.LastGoodCopyMiddleware",  # the database down: pages from their last good copy
    "django.contrib.sessions.middleware.SessionMiddleware",
    "statuspage.i18n.LanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "vigie.urls"

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
                "statuspage.context.site",
            ],
        },
    },
]

WSGI_APPLICATION = "vigie.wsgi.application"

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
else:
    # An unreachable server must fail a connection attempt, not hang it: runs waiting for the
    # database retry within VIGIE_DB_RETRY_SECONDS (probes/spool.py). `?connect_timeout=` overrides.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("VIGIE_TIME_ZONE", "UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"VIGIE_TIME_ZONE={TIME_ZONE!r} is not a time zone name (e.g. UTC, Europe/Paris).") \
        from None
USE_I18N = True
USE_TZ = True

# The on-call dashboard signs people in (Django's LoginView); the admin keeps its own login page.
LOGIN_URL = "/oncall/login/"
LOGIN_REDIRECT_URL = "/oncall/"

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# --- Celery -----------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL",
    "filesystem://localhost//",
    schemes=("filesystem", "redis", "rediss", "amqp", "amqps", "pyamqp"),
)
# A task taken by a worker that then died (kill -9, machine lost) goes back to its queue this long
# after it was taken. Keep it above the longest task time limit (a run message's: 200 s at most, plus
# VIGIE_DB_RETRY_SECONDS) and the longest retry countdown (about 10 min), or a task still running,
# or waiting for its countdown, would run twice.
BROKER_VISIBILITY_TIMEOUT = env_int("VIGIE_BROKER_VISIBILITY_TIMEOUT", 3600, minimum=1, maximum=86_400)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    # The embedded broker: messages are files in one folder shared by every local process.
    for sub in ("queue", "processed", "control", "unacked"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "unacked_folder": str(BROKER_DIR / "unacked"),  # vigie/broker.py: redelivery
        "visibility_timeout": BROKER_VISIBILITY_TIMEOUT,
        "store_processed": False,
        "polling_interval": 0.2,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    # Time limits on the socket, so that a broker gone silent fails a send (a web request's too)
    # within seconds instead of hanging it; refused connections fail at once.
    # An idle worker re-issues its blocking BRPOP every `polling_interval` seconds (kombu's default:
    # every second, a fifth of an idle install's CPU); a message arriving meanwhile still wakes it at
    # once. Below socket_timeout, which a BRPOP must answer within.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT,
                                       "socket_connect_timeout": 3, "socket_timeout": 10, "polling_interval": 5}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers and beat keep trying to reach a broker that went away, however long it takes.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "vigie"
# Keep a task's database connection for the next task (Celery closes it after each one otherwise:
# a new connection per run). Django's own rules still close old or broken ones (vigie/celery.py).
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_TIMEZONE = "UTC"
DISPATCH_EVERY_SECONDS = env_int("VIGIE_DISPATCH_EVERY", 2, minimum=1, maximum=60)
# Several `celery -A vigie beat` may run (two machines): only the holder of the scheduler lease
# schedules, the others take over when it dies (probes/lease.py, vigie/beat.py). A renewal holds it
# this long; standbys poll four times as often, so a dead leader is replaced within two intervals.
CELERY_BEAT_SCHEDULER = "vigie.beat:LeasedScheduler"
SCHEDULER_LEASE_SECONDS = env_int("VIGIE_SCHEDULER_LEASE_MS", DISPATCH_EVERY_SECONDS * 1250, minimum=200) / 1000
# How often beat's watchdog re-judges staleness, maintenance boundaries and on-call problems, and
# how often due official sources are claimed: what a quiet install spends most of its idle CPU on.
# Vigie's defaults suit a large install; a small one may take 30 s (docs/performance.md).
VIGIE_WATCHDOG_EVERY = env_int("VIGIE_WATCHDOG_EVERY", 10, minimum=1, maximum=300)
VIGIE_OFFICIAL_CLAIM_EVERY = env_int("VIGIE_OFFICIAL_CLAIM_EVERY", 10, minimum=1, maximum=300)
CELERY_BEAT_SCHEDULE = {
    "dispatch-due-probes": {
        "task": "probes.tasks.dispatch_due",
        "schedule": float(DISPATCH_EVERY_SECONDS),
        "options": {"expires": float(DISPATCH_EVERY_SECONDS)},
    },
    "watchdog": {
        "task": "probes.tasks.watchdog",
        "schedule": float(VIGIE_WATCHDOG_EVERY),
        "options": {"expires": float(VIGIE_WATCHDOG_EVERY)},
    },
    "retry-pending-cleanups": {
        "task": "probes.tasks.cleanup_pending",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Vigie's own leftovers on the platforms (probes.sweep), found and removed.
    "sweep-leftovers": {
        "task": "probes.tasks.leftovers_sweep",
        "schedule": 900.0,
        "options": {"expires": 900.0},
    },
    "prune-old-runs": {
        "task": "probes.tasks.runs_prune",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
    # What the platforms declare (official/): each source is read on its own interval; this only
    # claims the ones due.
    "read-official-sources": {
        "task": "official.tasks.read_due",
        "schedule": float(VIGIE_OFFICIAL_CLAIM_EVERY),
        "options": {"expires": float(VIGIE_OFFICIAL_CLAIM_EVERY)},
    },
}

# --- Faults (issue 20): poison messages, the spool's timer -------------------------------------
# A task message acknowledged late is delivered at most this many times (a worker killed mid-task
# counts as a delivery), then set aside as a dead letter for on-call (probes/deadletter.py).
VIGIE_TASK_MAX_DELIVERIES = env_int("VIGIE_TASK_MAX_DELIVERIES", 3, minimum=1, maximum=100)
# Each worker drains its machine's spool when it starts and then this often (a spool is local to a
# machine, so a beat task, taken by whichever worker, could not reach every machine's).
VIGIE_SPOOL_DRAIN_EVERY = env_int("VIGIE_SPOOL_DRAIN_EVERY", 30, minimum=1, maximum=3600)

# --- Cache of the public site ------------------------------------------------------------------
# Shared by every process: the workers announce changes, the web processes serve. Embedded: files
# under VIGIE_DATA_DIR; production: Redis.
CACHE_URL = env_url("VIGIE_CACHE_URL", "file://", schemes=("file", "redis", "rediss"))
if CACHE_URL.startswith("file"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(DATA_DIR / "cache"), "OPTIONS": {"MAX_ENTRIES": 5000}}}
else:
    CACHES = {"default": {"BACKEND": "vigie.redis_cache.RedisCache", "LOCATION": CACHE_URL,
                          "KEY_PREFIX": "vigie"}}
# Longest a public response is served from the cache when nothing changed: bounds what moves with
# the clock alone (the "monitoring delayed" notice).
VIGIE_PUBLIC_CACHE_SECONDS = env_int("VIGIE_PUBLIC_CACHE_SECONDS", 30, minimum=0, maximum=3600)
# After a change, the page is rendered again in the background while requests get the copy from
# before, for at most this long after the render began (statuspage/cache.py); 0: the first request
# after a change renders it in its own turn.
VIGIE_PUBLIC_STALE_SECONDS = env_int("VIGIE_PUBLIC_STALE_SECONDS", 5, minimum=0, maximum=60)
# When set, the static copy of the site is rewritten there after every public change.
VIGIE_PUBLISH_DIR = env_str("VIGIE_PUBLISH_DIR")

# --- Vigie ------------------------------------------------------------------------------------
VIGIE_PAGE_NAME = env_str("VIGIE_PAGE_NAME", "Vigie")
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
VIGIE_PUBLIC_URL = env_url("VIGIE_PUBLIC_URL", f"http://127.0.0.1:{PORT}", schemes=("http", "https")).rstrip("/")
# A hostile platform response is cut off past this many bytes.
VIGIE_MAX_RESPONSE_BYTES = env_int("VIGIE_MAX_RESPONSE_BYTES", 2_000_000, minimum=10_000)
# Raw runs are deleted after this many days; rollups, status changes and incidents stay.
VIGIE_RUN_RETENTION_DAYS = env_int("VIGIE_RUN_RETENTION_DAYS", 30, minimum=1, maximum=3650)
# Runs past the failure threshold with no success in between before an automatic incident opens:
# the component shows the outage at once, the incident waits for confirmation (flap damping).
VIGIE_INCIDENT_CONFIRM_RUNS = env_int("VIGIE_INCIDENT_CONFIRM_RUNS", 2, minimum=0, maximum=20)
# A run has happened on the platform before it is stored: with the database unreachable then, it
# waits in RUN_SPOOL_DIR (local disk) and is retried with backoff this long, then stored by the next
# run recorded on the same machine (probes/spool.py). A run message's time limit includes it.
VIGIE_DB_RETRY_SECONDS = env_int("VIGIE_DB_RETRY_SECONDS", 120, minimum=0, maximum=600)
RUN_SPOOL_DIR = DATA_DIR / "spool"
# Runs a worker process keeps in flight at once (probes/inflight.py): the runs due at a location at
# one moment arrive as one message and are performed side by side, up to this many per process.
# Each run waits on the platform, not the CPU; it is also the size of each platform's connection pool.
VIGIE_RUNS_IN_FLIGHT = env_int("VIGIE_RUNS_IN_FLIGHT", 32, minimum=1, maximum=1000)
SANDBOX_PORT = env_int("SANDBOX_PORT", 8001, minimum=1, maximum=65535)

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

# --- Outbound safety --------------------------------------------------------------------------
# Probes and webhooks connect only to public addresses (SSRF guard, platforms/netguard.py) except
# these: comma-separated CIDRs (10.1.0.0/16, fd00::/8) or `loopback`. `manage.py up` adds loopback
# for the demo sandbox. Public webhook subscribers never get this allowance (see
# VIGIE_WEBHOOK_ALLOW_PRIVATE).
VIGIE_ALLOW_PRIVATE_TARGETS = env_list("VIGIE_ALLOW_PRIVATE_TARGETS", [])
for _target in VIGIE_ALLOW_PRIVATE_TARGETS:
    if _target.lower() != "loopback":
        try:
            ipaddress.ip_network(_target, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"VIGIE_ALLOW_PRIVATE_TARGETS: {_target!r} is neither a CIDR "
                                       "(10.1.0.0/16, fd00::/8) nor `loopback`.") from None

# --- Metrics ----------------------------------------------------------------------------------
# /metrics for Prometheus. With a token, scrapers send it as a bearer token; without one, only
# requests from this machine (loopback, not forwarded by a proxy) are served.
VIGIE_METRICS_ENABLED = env_bool("VIGIE_METRICS_ENABLED", True)
VIGIE_METRICS_TOKEN = env_str("VIGIE_METRICS_TOKEN").strip()
if VIGIE_METRICS_TOKEN and len(VIGIE_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("VIGIE_METRICS_TOKEN must be at least 16 characters long "
                               "(make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\").")

# --- Management API ---------------------------------------------------------------------------
def _api_rate(name: str, default: str) -> str:
    """A DRF throttle rate: requests per second, minute, hour or day ("60/min")."""
    value = env_str(name, default).strip()
    if not re.fullmatch(r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 60/min (per s, min, hour or day).")
    return value


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["oncall.management_api.auth.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["oncall.management_api.auth.TokenScope"],
    # JSON only: one request format to validate (and no "nan" sneaking in through a form field).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PAGINATION_CLASS": "oncall.management_api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Per token (statuspage/security.py); over the rate: 429 with Retry-After.
    "DEFAULT_THROTTLE_CLASSES": ["statuspage.security.ApiReadThrottle", "statuspage.security.ApiWriteThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_read": _api_rate("VIGIE_API_READ_RATE", "60/min"),
                               "api_write": _api_rate("VIGIE_API_WRITE_RATE", "30/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vigie management API",
    "DESCRIPTION": (
        "Components, incidents, maintenances, probes, platforms and runs.\n\n"
        "**Authentication.** Every call needs a token, sent as `Authorization: Bearer vigie_…`. Create one on "
        "the server with `python manage.py apitoken create \"on-call bot\" --scope write` (the token is shown "
        "once), list them with `apitoken list`, revoke one with `apitoken revoke PREFIX`. A `read` token reads "
        "everything; writing needs a `write` token (otherwise 403). A missing, unknown or revoked token gets "
        "401. To try the calls on this page, press **Authorize** and paste the token."),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": True},
    # The schema is public: it describes the API, never its data.
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "ComponentStatus": "detection.models.ComponentStatus",
        "IncidentStatus": "detection.models.IncidentStatus",
        "Impact": "detection.models.Impact",
    },
}

# --- Notifications ----------------------------------------------------------------------------
# Email to subscribers: VIGIE_EMAIL_URL is smtp://user:password@host:587 (STARTTLS),
# smtps://…@host:465 (TLS from the start), console:// (print them: the embedded default) or
# dummy:// (drop them). The user and password are URL-quoted.
EMAIL_URL = env_url("VIGIE_EMAIL_URL", "console://", schemes=("smtp", "smtps", "console", "dummy"))
_email = urlsplit(EMAIL_URL)
if _email.scheme in ("smtp", "smtps"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    try:
        EMAIL_PORT = _email.port or (465 if _email.scheme == "smtps" else 587)
    except ValueError:
        raise ImproperlyConfigured("VIGIE_EMAIL_URL has a port that is not a number.") from None
    if not _email.hostname:
        raise ImproperlyConfigured("VIGIE_EMAIL_URL names no host (smtp://user:password@host:587).")
    EMAIL_HOST = _email.hostname
    EMAIL_HOST_USER = unquote(_email.username or "")
    EMAIL_HOST_PASSWORD = unquote(_email.password or "")
    EMAIL_USE_SSL = _email.scheme == "smtps"
    EMAIL_USE_TLS = not EMAIL_USE_SSL
    EMAIL_TIMEOUT = 20
else:
    EMAIL_BACKEND = f"django.core.mail.backends.{'console' if _email.scheme == 'console' else 'dummy'}.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("VIGIE_EMAIL_FROM", "vigie@localhost")
if "@" not in DEFAULT_FROM_EMAIL:
    raise ImproperlyConfigured(f"VIGIE_EMAIL_FROM={DEFAULT_FROM_EMAIL!r} is not an email address.")
# Public webhook subscribers may not target loopback or private addresses (SSRF) unless this is on
# (tests, or a private deployment); VIGIE_ALLOW_PRIVATE_TARGETS does not extend to them. On-call
# channels, set by staff, may target what VIGIE_ALLOW_PRIVATE_TARGETS allows.
VIGIE_WEBHOOK_ALLOW_PRIVATE = env_bool("VIGIE_WEBHOOK_ALLOW_PRIVATE", False)
# Apprise's own log names service tokens (its DEBUG lines print URLs): it is captured per message,
# redacted, and logged by notifications; urllib3's DEBUG lines print request URLs, which may too.
LOGGING.setdefault("loggers", {}).update({"apprise": {"level": "WARNING", "propagate": False},
                                          "urllib3": {"level": "INFO"}})
CELERY_BEAT_SCHEDULE["deliver-due-notifications"] = {
    "task": "notifications.tasks.deliver_due",
    "schedule": 15.0,
    "options": {"expires": 15.0},
}
# Incidents the platform leaves unacknowledged past its source's threshold, and acknowledgements
# (official/, issue 18): told to on-call once each.
CELERY_BEAT_SCHEDULE["official-acknowledgements-check"] = {
    "task": "notifications.tasks.acknowledgements_check",
    "schedule": 30.0,
    "options": {"expires": 30.0},
}
# Beat's light periodic tasks: those due at one moment travel as one message and run in this order
# (vigie/beat.py, vigie.celery.together), each on its own interval. Carrying a message costs an idle
# install more than most of these tasks do. The dispatcher, the sweep and the prune go alone.
VIGIE_BEAT_TOGETHER = ("probes.tasks.watchdog", "official.tasks.read_due", "notifications.tasks.deliver_due",
                       "notifications.tasks.acknowledgements_check", "probes.tasks.cleanup_pending")

# --- Security ---------------------------------------------------------------------------------
# Headers on every response (SecurityMiddleware; the Content-Security-Policy: statuspage/security.py).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Production behind TLS: a proxy that terminates it and sets X-Forwarded-Proto (and strips any the
# client sent). HTTP is redirected to HTTPS, except /metrics, scraped from this machine.
VIGIE_HTTPS = env_bool("VIGIE_HTTPS", False)
if VIGIE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("VIGIE_HSTS_SECONDS", 31_536_000, minimum=0, maximum=63_072_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Reverse proxies in front that append the client's address to X-Forwarded-For (rate limits read
# it from there); 0 = clients connect directly.
VIGIE_PROXY_HOPS = env_int("VIGIE_PROXY_HOPS", 0, minimum=0, maximum=5)
# Subscription attempts (POST /subscribe/) per client address per hour.
VIGIE_SUBSCRIBE_RATE = env_int("VIGIE_SUBSCRIBE_RATE", 5, minimum=1, maximum=10_000)

# Hardening (docs/security.md). Incoming texts are bounded: an incident update or a maintenance body,
# and a postmortem; the API answers 400 and the forms show an error beyond these.
VIGIE_MAX_BODY_CHARS = env_int("VIGIE_MAX_BODY_CHARS", 10_000, minimum=100, maximum=1_000_000)
VIGIE_MAX_POSTMORTEM_CHARS = env_int("VIGIE_MAX_POSTMORTEM_CHARS", 50_000, minimum=100, maximum=1_000_000)
# The Apprise schemes an on-call channel may use. Each is guarded against loopback and private
# addresses at connect time (HTTP ones through requests, mailto:// through smtplib's socket); schemes
# that send through the local machine or UDP (syslog://, rsyslog://, dbus://, windows://…) are left
# out: add them only knowingly.
VIGIE_NOTIFY_SCHEMES = frozenset(s.lower() for s in env_list("VIGIE_NOTIFY_SCHEMES", [
    "json", "jsons", "xml", "xmls", "form", "forms", "slack", "discord", "msteams", "tgram", "pover", "ntfy", "ntfys",
    "gotify", "gotifys", "matrix", "matrixs", "mmost", "mmosts", "rocket", "rockets", "pagerduty", "opsgenie",
    "signal", "signals", "zulip", "workflow", "workflows", "mailto", "mailtos"]))

# Login throttling (django-axes; see AUTHENTICATION_BACKENDS above).
VIGIE_LOGIN_FAILURE_LIMIT = env_int("VIGIE_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
VIGIE_LOGIN_COOLOFF_MINUTES = env_int("VIGIE_LOGIN_COOLOFF_MINUTES", 15, minimum=1, maximum=7 * 24 * 60)
AXES_FAILURE_LIMIT = VIGIE_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=VIGIE_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # either one reaching the limit locks
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "oncall/locked.html"
AXES_CLIENT_IP_CALLABLE = "statuspage.security.axes_client_ip"  # honours VIGIE_PROXY_HOPS
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = False

# The demo sandbox's control token: random per `sandbox serve` unless SANDBOX_CONTROL_TOKEN is set,
# written to this file (mode 0600) for `manage.py sandbox fault` and `manage.py scenario`.
SANDBOX_CONTROL_TOKEN_FILE = env_str("SANDBOX_CONTROL_TOKEN_FILE", str(DATA_DIR / "sandbox-control-token"))

# A public subscriber whose last this-many deliveries all failed for good is unsubscribed.
VIGIE_SUBSCRIBER_MAX_FAILURES = env_int("VIGIE_SUBSCRIBER_MAX_FAILURES", 5, minimum=1, maximum=1000)
