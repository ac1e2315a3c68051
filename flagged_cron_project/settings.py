"""Settings for flagged-cron, read from the environment (and `.env` in the project root).

Every variable is documented in README.md ("Configuration"). Parsing is strict: a value that
cannot be understood stops start-up with a message naming the variable, rather than silently
becoming a default. Cron runs jobs with a bare environment, so the `.env` file is read here, by
the settings themselves, and nothing depends on the login shell.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from cronjobs.schedules import system_time_zone

# Django's generic classes take their model at run time as the type checker sees them
# (`admin.ModelAdmin[Task]`), as django-stubs documents.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

# Values already in the environment win over the files, so a test or a crontab line can override.
# CRONJOBS_ENV_FILE names a second file, read first (`manage.py crontab add --env-file PATH` puts
# it on the installed lines, so cron reads the same settings without any secret in the crontab).
CRONJOBS_ENV_FILE = os.environ.get("CRONJOBS_ENV_FILE", "").strip()
if CRONJOBS_ENV_FILE:
    load_dotenv(CRONJOBS_ENV_FILE, override=False)
load_dotenv(BASE_DIR / ".env", override=False)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is neither true (1/yes/on) nor false (0/no/off)")


def envint(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    return value


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def envpath(name: str, default: Path) -> Path:
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser().resolve() if raw else default


DEBUG = envbool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required unless DEBUG is on (see README.md)")
    SECRET_KEY = "insecure-local-demo-key-only-used-with-DEBUG-on"
elif len(SECRET_KEY) < 50 and not DEBUG:
    raise ImproperlyConfigured(
        f"SECRET_KEY is {len(SECRET_KEY)} characters; use at least 50 random ones, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))' (docs/deploy.md)"
    )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "cronjobs.apps.ControlRoomAdminConfig",  # django.contrib.admin with the overview as its index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "import_export",
    "rangefilter",
    "cronjobs",
    # After cronjobs: the first app wins a command name, and cronjobs overrides `crontab`.
    "django_crontab",
    "flagged_products",
    "axes",  # login throttling (docs/deploy.md)
]
INSTALLED_APPS += envlist("EXTRA_APPS")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "flagged_cron_project.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it answers a locked-out login with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "flagged_cron_project.urls"
WSGI_APPLICATION = "flagged_cron_project.wsgi.application"

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


def mask_password(url: str) -> str:
    """The URL with the password of its `user:password@` part hidden."""
    scheme, sep, rest = url.rpartition("://")
    if "@" not in rest:
        return url
    # A badly quoted password may itself contain "/" or "@": cut at the last "@".
    userinfo, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}"


def database_config(url: str) -> dj_database_url.DBConfig:
    try:
        config = dj_database_url.parse(url)
    except Exception as exc:  # dj-database-url raises several types for one kind of mistake
        # The message names the URL without its password, and not the parser's text, which
        # may quote the whole URL.
        raise ImproperlyConfigured(
            f"DATABASE_URL={mask_password(url)!r} cannot be parsed ({type(exc).__name__}): "
            "expected engine://user:password@host:port/name"
        ) from None
    if config["ENGINE"] == "django.db.backends.mysql":
        config["OPTIONS"] = {
            "charset": "utf8mb4",
            # The lease and circuit compare-and-set rely on seeing other hosts' commits.
            "isolation_level": "read committed",
            "connect_timeout": 5,
            # reporting.stats joins a month of a task's duration histograms with GROUP_CONCAT
            # (MySQL's default limit is 1 KB, MariaDB's 1 MB; longer is cut without an error).
            "init_command": "SET SESSION group_concat_max_len = 67108864",
            **config.get("OPTIONS", {}),
        }
    elif config["ENGINE"] == "django.db.backends.sqlite3":
        # Several runjob processes write at once; wait for the lock instead of failing.
        config["OPTIONS"] = {"timeout": 30, **config.get("OPTIONS", {})}
    # Tests create their own database; TEST_DB_SUFFIX keeps parallel test runs apart.
    suffix = os.environ.get("TEST_DB_SUFFIX", "")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Per checkout too, so two clones' suites never share one file.
        tmp = Path(os.environ.get("TMPDIR", "/tmp"))
        checkout = hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:8]
        test_name = str(tmp / f"test_flagged_cron_{checkout}{suffix}.sqlite3")
    else:
        test_name = f"test_{config['NAME']}{suffix}"
    config["TEST"] = {"NAME": test_name, "CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    return config


# Lower case, so not a setting: Django's debug page masks DATABASES' PASSWORD, not a URL.
_database_url = os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": database_config(_database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One cache for every process and host on the database (a migration creates the table): the
# dashboard's content is rendered once per CRONJOBS_DASHBOARD_CACHE_SECONDS for every web worker,
# and the write-rate limit counts a user's or token's writes across them all.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "cronjobs_cache",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-nz"
# One date and time format, with the zone, on every page (flagged_cron_project/formats).
FORMAT_MODULE_PATH = ["flagged_cron_project.formats"]
TIME_ZONE = os.environ.get("TIME_ZONE", "").strip() or system_time_zone()
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

LOG_DIR = envpath("LOG_DIR", BASE_DIR / "logs")

_default_tasks_file = BASE_DIR / "cronjobs.toml"
CRONJOBS_TASKS_FILE = envpath("CRONJOBS_TASKS_FILE", _default_tasks_file)

# Installed crontab lines (docs/operations.md, `manage.py crontab`). The comment marks this
# checkout's lines, so two checkouts on one host do not replace each other's.
CRONTAB_COMMENT = f"django-cronjobs for flagged-cron at {BASE_DIR}"
CRONTAB_DJANGO_MANAGE_PATH = str(BASE_DIR / "manage.py")
# Extra per-line environment, e.g. "DJANGO_SETTINGS_MODULE=...": the .env file is the usual way.
CRONTAB_COMMAND_PREFIX = os.environ.get("CRONTAB_COMMAND_PREFIX", "").strip()

# The supervisor (docs/configuration.md, "The supervisor").
CRONJOBS_HOST = os.environ.get("CRONJOBS_HOST", "").strip() or socket.gethostname()
CRONJOBS_KILL_GRACE = envint("CRONJOBS_KILL_GRACE", 5, minimum=0)
CRONJOBS_OUTPUT_TAIL = envint("CRONJOBS_OUTPUT_TAIL", 64 * 1024, minimum=1024)
CRONJOBS_LEASE_TTL = envint("CRONJOBS_LEASE_TTL", 60, minimum=2)
# How often a running supervisor renews its lease and looks for a stop request (seconds).
CRONJOBS_LEASE_BEAT = envint("CRONJOBS_LEASE_BEAT", 2, minimum=1)
CRONJOBS_CIRCUIT_THRESHOLD = envint("CRONJOBS_CIRCUIT_THRESHOLD", 5, minimum=1)
CRONJOBS_CIRCUIT_WINDOW = envint("CRONJOBS_CIRCUIT_WINDOW", 3600, minimum=1)
CRONJOBS_CIRCUIT_COOLDOWN = envint("CRONJOBS_CIRCUIT_COOLDOWN", 3600, minimum=1)
CRONJOBS_LATE_GRACE = envint("CRONJOBS_LATE_GRACE", 300, minimum=0)
# How long after a slot a `runjob --trigger cron` call still belongs to it (cron's own lag, a slow
# start); later it is no slot's, exits 3 and records nothing (cronjobs/supervisor/slots.py).
CRONJOBS_SLOT_TOLERANCE = envint("CRONJOBS_SLOT_TOLERANCE", 300, minimum=1)


def _host_cap() -> int:
    """Supervised runs a host starts at once by default: 8 per core, and no more than one per
    256 MiB of memory (a supervisor and a modest job), never fewer than 2."""
    cores = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(2, min(8 * cores, memory // (256 * 1024 * 1024)))


# How many runs the dispatcher (`runjob --due`) keeps going on this host at once; due runs
# beyond it wait, by priority, within their start deadline (cronjobs/supervisor/dispatch.py).
CRONJOBS_MAX_RUNNING = envint("CRONJOBS_MAX_RUNNING", _host_cap(), minimum=1)
# The dashboard's figures are rendered at most once per this many seconds for all workers.
CRONJOBS_DASHBOARD_CACHE_SECONDS = envint("CRONJOBS_DASHBOARD_CACHE_SECONDS", 15, minimum=0)
# Smart Cron V2 names (docs/migrating.md): the compatibility views show task_name with this
# prefix, and `import_legacy_metrics` strips it. Lower-case letters, digits and _ only.
CRONJOBS_LEGACY_PREFIX = os.environ.get("CRONJOBS_LEGACY_PREFIX", "flagged_products_").strip()
# Daily log files older than this are deleted by prune_history; older than a day, gzipped.
CRONJOBS_LOG_RETENTION_DAYS = envint("CRONJOBS_LOG_RETENTION_DAYS", 30, minimum=1)
# prune_history sleeps this long between its batches of deletes, so runners get the table.
CRONJOBS_PRUNE_PAUSE_MS = envint("CRONJOBS_PRUNE_PAUSE_MS", 100, minimum=0)

# Alerts (docs/configuration.md, "Alerts and email").
ALERT_EMAILS = envlist("ALERT_EMAILS")
ALERT_WEBHOOK_URL = os.environ.get("ALERT_WEBHOOK_URL", "").strip()
ALERT_TIMEOUT = envint("ALERT_TIMEOUT", 5, minimum=1)
ALERT_REPEAT_HOURS = envint("ALERT_REPEAT_HOURS", 4, minimum=1)
# Repeats and escalation (docs/operations.md, "Alerting"), in whole seconds, 0 = off: the
# watchdog re-notifies an unacknowledged critical alert every ALERT_REPEAT_EVERY, and sends it
# once to ALERT_ESCALATION_URLS (Apprise URLs, separated by spaces) after ALERT_ESCALATE_AFTER.
ALERT_REPEAT_EVERY = envint("ALERT_REPEAT_EVERY", 0, minimum=0)
ALERT_ESCALATE_AFTER = envint("ALERT_ESCALATE_AFTER", 0, minimum=0)
ALERT_ESCALATION_URLS = os.environ.get("ALERT_ESCALATION_URLS", "").split()
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10, minimum=1)
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "flagged-cron@localhost")

# Alert channels and the external dead man's switch (docs/configuration.md, "Alerts and email",
# "Healthchecks pings"). ALERT_URLS: Apprise URLs separated by spaces (an Apprise URL may hold
# commas, e.g. mailto://...?to=a@x,b@y).
ALERT_URLS = os.environ.get("ALERT_URLS", "").split()
CRONJOBS_BASE_URL = os.environ.get("CRONJOBS_BASE_URL", "").strip()
CRONJOBS_PING_URL_TEMPLATE = os.environ.get("CRONJOBS_PING_URL_TEMPLATE", "").strip()
CRONJOBS_WATCHDOG_PING_URL = os.environ.get("CRONJOBS_WATCHDOG_PING_URL", "").strip()
CRONJOBS_PING_TIMEOUT = envint("CRONJOBS_PING_TIMEOUT", 2, minimum=1)

# AI insights (flagged_products); rule-based text without a key.
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "").strip()
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "").strip()
OPENAI_MODEL = os.environ.get("OPENAI_MODEL", "").strip() or "gpt-4o-mini"
# Seconds per request; the runner, not the client, retries a failed attempt.
OPENAI_TIMEOUT = envint("OPENAI_TIMEOUT", 30, minimum=1)

# The domain (flagged_products): products flagged for counting per outlet and day.
FLAGGED_PRODUCTS_PER_OUTLET = envint("FLAGGED_PRODUCTS_PER_OUTLET", 20, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING").upper()},
}

# Production doors (docs/deploy.md): HTTPS behind a proxy, login throttling, write limits.
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto, set SECURE_PROXY_SSL_HEADER=1.
if envbool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
# Operator writes (run now, enable, disable, ...) per user or token and window, all doors.
CRONJOBS_WRITE_RATE = envint("CRONJOBS_WRITE_RATE", 10, minimum=1)
CRONJOBS_WRITE_WINDOW = envint("CRONJOBS_WRITE_WINDOW", 60, minimum=1)
# django-axes (cronjobs/logins.py, docs/deploy.md "Login throttling"): a login is refused for
# AXES_COOLOFF_MINUTES after AXES_FAILURE_LIMIT failures of its (username, address) pair, or
# AXES_ADDRESS_FAILURE_LIMIT failures from its address across all usernames; a success forgets
# its own pair's failures only. `manage.py unlock` lifts a lockout.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "cronjobs.logins.LoginThrottle"
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_ADDRESS_FAILURE_LIMIT = envint("AXES_ADDRESS_FAILURE_LIMIT", 20, minimum=1)
AXES_COOLOFF_TIME = envint("AXES_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
# In this order: cronjobs.logins.LoginThrottle reads the pair first, then the address.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_RESET_ON_SUCCESS = False  # cronjobs.logins.LoginThrottle resets the pair itself
# The number of proxies in front that append to X-Forwarded-For; 0 trusts REMOTE_ADDR only. The
# client is the address that many hops from the right (cronjobs.logins.client_address).
FORWARDED_PROXY_COUNT = envint("FORWARDED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "cronjobs.logins.client_address"

# An admin session lasts 12 hours by default (seconds; Django's own default is two weeks).
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)

# Content-Security-Policy on every response (flagged_cron_project/csp.py, docs/deploy.md): scripts,
# styles and images come from this site only; no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
