"""Settings for the hub, read from the environment (django-environ).

With no environment at all the hub runs on SQLite with a file-system Celery
broker, so `make run` needs nothing installed. DATABASE_URL and REDIS_URL
switch to PostgreSQL and Redis.
"""

import ipaddress
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("HUB_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _local_secret(name: str, make) -> str:
    """A secret kept in var/ for single-machine installs that set none.

    Several hosts must share SECRET_KEY and HUB_ENCRYPTION_KEYS through the
    environment instead: a file per host would make each host's data unreadable
    to the others.
    """
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret("secret_key", lambda: secrets.token_urlsafe(50))
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "accounts.admin_config.HubAdminConfig",  # django.contrib.admin behind the one login and its MFA step
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served by the hub itself: no CDN
    "accounts",
    "providers",
    "billing",
    "hub",
    "axes",  # login hardening
    # End users' accounts (issue 14): sign-up, email verification, password reset, social and OIDC login.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",  # TOTP and recovery codes, for everyone (accounts/mfa.py)
    "django_htmx",  # the dashboard's partial updates: request.htmx, and htmx itself as a static file
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "hub.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserPreferencesMiddleware",  # the user's time zone and language (the settings page)
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # login hardening: last, turns a lockout into its page
]

# The API (/v1/, /api/) is served without the browser middleware above:
# sessions, CSRF, auth and messages are sync-only and would cost a thread hop
# each per call. Its own stack, built by hub/asgi.py, is this list (async-capable
# middleware only): a middleware added to MIDDLEWARE does not run on the API.
GATEWAY_PATH_PREFIXES = ("/v1/", "/api/")
HUB_GATEWAY_MIDDLEWARE: list[str] = []
# Requests a worker prepares at once before their upstream calls start (providers/http.py: setup_slot).
HUB_SETUP_SLOTS = env.int("HUB_SETUP_SLOTS", default=32)
HUB_SETUP_SLOT_SECONDS = env.float("HUB_SETUP_SLOT_SECONDS", default=0.05)  # a slot is held at most this long
# A serving process's garbage collector (hub/lifecycle.py: tune_gc, at the ASGI lifespan's startup): what was
# loaded at startup is frozen out of every collection, and the youngest generation is collected every
# HUB_GC_THRESHOLD[0] allocations net (Python's own: 700), so bursts of short-lived request objects cost fewer
# collections. Empty HUB_GC_THRESHOLD keeps Python's thresholds.
HUB_GC_FREEZE = env.bool("HUB_GC_FREEZE", default=True)
HUB_GC_THRESHOLD = env.list("HUB_GC_THRESHOLD", cast=int, default=[10000, 10, 10])
# Refused here, not when it is applied: uvicorn takes a failed lifespan startup for an app without one and
# serves on without the shutdown that drains the meter.
if HUB_GC_THRESHOLD and (not 1 <= len(HUB_GC_THRESHOLD) <= 3 or min(HUB_GC_THRESHOLD) < 1):
    raise environ.ImproperlyConfigured(
        f"HUB_GC_THRESHOLD: one to three positive integers (Python's gc.set_threshold), not {HUB_GC_THRESHOLD}"
    )

ROOT_URLCONF = "hub.urls"
ASGI_APPLICATION = "hub.asgi.application"
AUTH_USER_MODEL = "accounts.User"

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
                "accounts.context_processors.site",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'hub.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the metering writer and request reads overlap; IMMEDIATE makes
    # writers queue on the lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20}
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No JIT: PostgreSQL compiles any query it estimates costly (the dashboard's aggregates) for ~200 ms, which
    # short queries never win back (measured by bench/dashboard.py). DATABASE_URL's own options still win.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

TIME_ZONE = "UTC"
USE_TZ = True

# Languages (issue 14): the site's pages in English, Japanese and Simplified Chinese, chosen by the language
# switch in templates/base.html (Django's set_language, /i18n/setlang/), else by the browser's Accept-Language.
# The hub's own strings are in hub/locale/<lang>/LC_MESSAGES/django.po, compiled to the .mo beside it and committed
# (README: "Languages and security headers"); allauth's and Django's come with their packages. The gateway's
# stack (HUB_GATEWAY_MIDDLEWARE) has no LocaleMiddleware: API answers are English.
USE_I18N = True
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ja", "日本語"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "hub" / "locale"]
MIDDLEWARE.insert(  # after sessions (it reads the user's choice), before CommonMiddleware (as Django asks)
    MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
    "django.middleware.locale.LocaleMiddleware",
)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Generated images served back through signed links (hub/media.py); any Django storage will do.
    "media": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.str("HUB_MEDIA_ROOT", default=str(VAR_DIR / "media"))},
    },
    # Usage records past HUB_USAGE_RETENTION_DAYS, archived before they are deleted (billing/archive.py).
    "usage_archive": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.str("HUB_USAGE_ARCHIVE_ROOT", default=str(VAR_DIR / "archive"))},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "hub.errors.drf_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "The hub: management API",
    "DESCRIPTION": "Keys, members, usage and credit of an organisation. The OpenAI-compatible API is at /v1/.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Email (invitations, notifications): printed to the console unless EMAIL_URL says otherwise.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="hub@localhost")
HUB_INVITATION_DAYS = env.int("HUB_INVITATION_DAYS", default=7)

# Stripe: top-ups by Checkout, credits granted by the verified webhook only.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")  # tests point it at localstripe
STRIPE_CURRENCY = env.str("STRIPE_CURRENCY", default="usd")
HUB_STARTER_CREDITS = env.str("HUB_STARTER_CREDITS", default="0")

# Money: every amount is a Decimal with this many decimal places (per-token
# prices need many: 1 token at $0.15 per million is 0.00000015), stored as an
# integer count of that unit (billing/money.py).
MONEY_DECIMAL_PLACES = 10

# Celery: CELERY_BROKER_URL if set (e.g. amqp://), else Redis when REDIS_URL is
# set, else a broker in var/ that needs no server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _queue = VAR_DIR / "celery"
    for sub in ("out", "processed"):
        (_queue / sub).mkdir(parents=True, exist_ok=True)
    (_queue / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "control_folder": str(_queue / "control"),
        "data_folder_in": str(_queue / "out"),
        "data_folder_out": str(_queue / "out"),
        "data_folder_processed": str(_queue / "processed"),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_TIME_LIMIT = 300
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "reconcile-credit-balances": {"task": "billing.tasks.reconcile_balances", "schedule": 600.0},
    "check-credentials": {
        "task": "hub.tasks.check_credentials",
        "schedule": env.float("HUB_HEALTH_CHECK_SECONDS", default=300.0),
    },
    "auto-recharge-credit": {"task": "billing.tasks.auto_recharge_all", "schedule": 60.0},
    "release-expired-credit-holds": {"task": "billing.tasks.release_expired_holds", "schedule": 300.0},
    "roll-up-usage": {"task": "billing.tasks.roll_up_usage", "schedule": 300.0},
    "prune-usage": {"task": "billing.tasks.prune_usage", "schedule": crontab(hour=3, minute=17)},
    "flag-prices-below-cost": {"task": "billing.tasks.flag_prices_below_cost", "schedule": 3600.0},
    "lapse-expired-grants": {"task": "billing.tasks.lapse_expired_grants", "schedule": 600.0},
    "notify-low-balances": {"task": "billing.tasks.notify_low_balances", "schedule": 300.0},
    "delete-expired-media": {"task": "hub.tasks.delete_expired_media", "schedule": 600.0},
    "issue-invoices": {"task": "billing.tasks.issue_invoices", "schedule": 3600.0},
}
# Caps every interval above (not the daily prune): the process tests run the
# whole schedule on a real worker and beat in seconds.
HUB_BEAT_MAX_INTERVAL_SECONDS = env.float("HUB_BEAT_MAX_INTERVAL_SECONDS", default=None)
if HUB_BEAT_MAX_INTERVAL_SECONDS:
    for _entry in CELERY_BEAT_SCHEDULE.values():
        if isinstance(_entry["schedule"], float):
            _entry["schedule"] = min(_entry["schedule"], HUB_BEAT_MAX_INTERVAL_SECONDS)

# The gateway.
HUB_BILLING_MODE = env.str("HUB_BILLING_MODE", default="credits")
if HUB_BILLING_MODE not in ("credits", "postpaid", "internal"):
    raise environ.ImproperlyConfigured("HUB_BILLING_MODE must be 'credits', 'postpaid' or 'internal'")
# Postpaid invoices (billing/invoices/: issuing.py, collecting.py).
HUB_INVOICE_AUTO_CHARGE = env.bool("HUB_INVOICE_AUTO_CHARGE", default=False)
HUB_INVOICE_NUMBER_PREFIX = env.str("HUB_INVOICE_NUMBER_PREFIX", default="HUB")
HUB_INVOICE_ISSUER = env.str("HUB_INVOICE_ISSUER", default="")
HUB_MAX_BODY_BYTES = env.int("HUB_MAX_BODY_BYTES", default=32 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = HUB_MAX_BODY_BYTES
HUB_AUTH_CACHE_SECONDS = env.float("HUB_AUTH_CACHE_SECONDS", default=5.0)
HUB_CATALOGUE_CACHE_SECONDS = env.float("HUB_CATALOGUE_CACHE_SECONDS", default=5.0)
HUB_BALANCE_CACHE_SECONDS = env.float("HUB_BALANCE_CACHE_SECONDS", default=1.0)
# The response cache (hub/response_cache.py), on per organisation or key: a hit is charged this share of the
# original answer's price (0: free, 1: full price); answers larger than the bytes limit are not kept; a request
# waits at most that many seconds for an identical one in flight to land before going upstream itself.
HUB_RESPONSE_CACHE_PRICE_SHARE = Decimal(env.str("HUB_RESPONSE_CACHE_PRICE_SHARE", default="0"))
if not Decimal(0) <= HUB_RESPONSE_CACHE_PRICE_SHARE <= Decimal(1):
    raise environ.ImproperlyConfigured("HUB_RESPONSE_CACHE_PRICE_SHARE must be between 0 and 1")
HUB_RESPONSE_CACHE_MAX_BYTES = env.int("HUB_RESPONSE_CACHE_MAX_BYTES", default=4 * 1024 * 1024)
HUB_RESPONSE_CACHE_WAIT_SECONDS = env.float("HUB_RESPONSE_CACHE_WAIT_SECONDS", default=30.0)
# Without Redis, each process keeps at most this many bytes of entries.
HUB_RESPONSE_CACHE_LOCAL_BYTES = env.int("HUB_RESPONSE_CACHE_LOCAL_BYTES", default=256 * 1024 * 1024)
# Usage rollups and retention (billing/rollups.py): 0 keeps raw usage forever. Pruned records are
# archived first, to STORAGES["usage_archive"].
HUB_USAGE_RETENTION_DAYS = env.int("HUB_USAGE_RETENTION_DAYS", default=90)
HUB_USAGE_ROLLUP_LOOKBACK_HOURS = env.float("HUB_USAGE_ROLLUP_LOOKBACK_HOURS", default=None)
# Low-balance emails to owners and billing members (billing/notifications.py).
HUB_LOW_BALANCE_THRESHOLD = env.str("HUB_LOW_BALANCE_THRESHOLD", default="1")
# Prices: a rate with costs but neither prices nor a margin is sold at this margin over cost.
HUB_DEFAULT_MARGIN = Decimal(env.str("HUB_DEFAULT_MARGIN", default="0"))
# Reserve, then settle (hub/credit.py).
HUB_DEFAULT_OUTPUT_HOLD = env.int("HUB_DEFAULT_OUTPUT_HOLD", default=4096)
HUB_HOLD_TTL_SECONDS = env.float("HUB_HOLD_TTL_SECONDS", default=3600.0)
HUB_CREDIT_LEASE = Decimal(env.str("HUB_CREDIT_LEASE", default="1"))
HUB_CREDIT_LEASE_IDLE_SECONDS = env.float("HUB_CREDIT_LEASE_IDLE_SECONDS", default=5.0)
HUB_METERING_FLUSH_SECONDS = env.float("HUB_METERING_FLUSH_SECONDS", default=0.05)
# Usage records the database refused (hub/metering.py), one JSON object a line, for the operator to settle.
HUB_METERING_DEAD_LETTER = env.str("HUB_METERING_DEAD_LETTER", default=str(VAR_DIR / "metering-dead-letter.jsonl"))
HUB_UPSTREAM_CONNECT_TIMEOUT = env.float("HUB_UPSTREAM_CONNECT_TIMEOUT", default=10.0)
HUB_UPSTREAM_READ_TIMEOUT = env.float("HUB_UPSTREAM_READ_TIMEOUT", default=600.0)
HUB_UPSTREAM_FIRST_BYTE_TIMEOUT = env.float("HUB_UPSTREAM_FIRST_BYTE_TIMEOUT", default=120.0)
HUB_UPSTREAM_MAX_CONNECTIONS = env.int("HUB_UPSTREAM_MAX_CONNECTIONS", default=1000)
# What a provider may send, decoded: a whole answer (ten large base64 images fit), and one event of a stream
# (a line that never ends would otherwise grow in memory until the read timeout).
HUB_UPSTREAM_MAX_BODY_BYTES = env.int("HUB_UPSTREAM_MAX_BODY_BYTES", default=128 * 1024 * 1024)
HUB_UPSTREAM_MAX_EVENT_BYTES = env.int("HUB_UPSTREAM_MAX_EVENT_BYTES", default=16 * 1024 * 1024)
# Routing and resilience (hub/routing.py, hub/route_health.py).
HUB_ROUTING_MAX_ATTEMPTS = env.int("HUB_ROUTING_MAX_ATTEMPTS", default=3)
HUB_ROUTING_MAX_SECONDS = env.float("HUB_ROUTING_MAX_SECONDS", default=60.0)
HUB_COOLDOWN_AFTER_FAILURES = env.int("HUB_COOLDOWN_AFTER_FAILURES", default=3)
HUB_COOLDOWN_SECONDS = env.float("HUB_COOLDOWN_SECONDS", default=5.0)  # the first, after those failures
HUB_COOLDOWN_MAX_SECONDS = env.float("HUB_COOLDOWN_MAX_SECONDS", default=900.0)
HUB_ROUTE_STATE_CACHE_SECONDS = env.float("HUB_ROUTE_STATE_CACHE_SECONDS", default=1.0)
HUB_MAX_IMAGE_BYTES = env.int("HUB_MAX_IMAGE_BYTES", default=20 * 1024 * 1024)
# Images and audio (hub/images.py, hub/audio.py, hub/media.py).
HUB_MAX_UPLOAD_BYTES = env.int("HUB_MAX_UPLOAD_BYTES", default=25 * 1024 * 1024)  # OpenAI's own limit
# A body the hub accepts is kept in memory, never spooled to disk (which would block the event loop).
FILE_UPLOAD_MAX_MEMORY_SIZE = HUB_MAX_BODY_BYTES
HUB_MEDIA_URL_TTL_SECONDS = env.int("HUB_MEDIA_URL_TTL_SECONDS", default=3600)
HUB_PUBLIC_URL = env.str("HUB_PUBLIC_URL", default="")  # e.g. https://hub.example.com; empty: from the request
HUB_IMAGE_OUTPUT_TOKENS_HOLD = env.int("HUB_IMAGE_OUTPUT_TOKENS_HOLD", default=6240)  # gpt-image-1's largest image
HUB_AUDIO_MIN_BYTES_PER_SECOND = env.int("HUB_AUDIO_MIN_BYTES_PER_SECOND", default=1000)
HUB_FETCH_ALLOW_PRIVATE = env.bool("HUB_FETCH_ALLOW_PRIVATE", default=False)
HUB_DEMO_API_KEY = env.str("HUB_DEMO_API_KEY", default="")
HUB_DEMO_CREDITS = env.str("HUB_DEMO_CREDITS", default="10")

# Provider secrets: Fernet keys, newest first. Older keys still decrypt, so a
# key is rotated by putting a new one in front and running `rotate_secrets`.
HUB_ENCRYPTION_KEYS = env.list("HUB_ENCRYPTION_KEYS", default=[]) or [
    _local_secret("encryption_key", lambda: __import__("cryptography.fernet").fernet.Fernet.generate_key().decode())
]

# Login hardening (issue 7). Session logins, the admin's and /accounts/login/'s alike, are counted by
# django-axes in the database, so every process sees the same failures: after HUB_LOGIN_FAILURE_LIMIT failures
# for one account from one address, that pair is refused (429: templates/admin/lockout.html on the admin,
# templates/account/lockout.html on /accounts/) for HUB_LOGIN_COOLOFF_MINUTES after the last attempt. The admin's
# username and allauth's email name the same account (accounts/lockout.py login_name). The gateway (/v1/, /api/)
# never calls authenticate() and has no middleware, so axes never sees it. Multi-factor sign-in (allauth.mfa:
# TOTP and recovery codes) is for every user; a wrong code counts as a failed login. The admin has no login of its
# own (accounts/admin_site.py): operators sign in at /accounts/login/, and one with an authenticator opens the
# admin only after its code; HUB_OPERATOR_2FA_REQUIRED makes every staff user enrol one first (accounts/mfa.py).
HUB_LOGIN_FAILURE_LIMIT = env.int("HUB_LOGIN_FAILURE_LIMIT", default=5)
HUB_LOGIN_COOLOFF_MINUTES = env.int("HUB_LOGIN_COOLOFF_MINUTES", default=15)
HUB_OPERATOR_2FA_REQUIRED = env.bool("HUB_OPERATOR_2FA_REQUIRED", default=False)
if HUB_LOGIN_FAILURE_LIMIT < 1 or HUB_LOGIN_COOLOFF_MINUTES < 1:
    raise environ.ImproperlyConfigured("HUB_LOGIN_FAILURE_LIMIT and HUB_LOGIN_COOLOFF_MINUTES must be at least 1")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out account + address before any password check
    "django.contrib.auth.backends.ModelBackend",  # the admin: username and password
    "allauth.account.auth_backends.AuthenticationBackend",  # /accounts/login/: email and password
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = HUB_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=HUB_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "accounts.lockout.login_name"
AXES_CLIENT_IP_CALLABLE = "accounts.addresses.client_address"  # the address key IP policies see, too
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_SENSITIVE_PARAMETERS = ["username", "email", "login", "ip_address", "code"]  # masked in axes' rows, logs
AXES_VERBOSE = False  # no "AXES: BEGIN" line from every manage.py call and process start
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("HUB_OTP_ISSUER", default="The hub")  # the name authenticator apps show
MFA_FORMS = {"authenticate": "accounts.mfa.AuthenticateForm", "reauthenticate": "accounts.mfa.ReauthenticateForm"}

# Behind a reverse proxy: the proxies (addresses or CIDR networks) whose X-Forwarded-For is believed. The
# client's address is then the last one in that header not added by one of them (accounts/addresses.py
# client_address: key IP policies, the management API, the audit log and the login lockout all use it), and
# gunicorn's uvicorn workers trust the same list (hub/gunicorn.conf.py forwarded_allow_ips, which also makes
# X-Forwarded-Proto count). Empty: nobody's header is believed, not even 127.0.0.1's.
HUB_TRUSTED_PROXIES = env.list("HUB_TRUSTED_PROXIES", default=[])
for _proxy in HUB_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy)  # strict, as gunicorn checks it: 10.0.0.1/8 is a mistake for 10.0.0.0/8
    except ValueError as exc:
        raise environ.ImproperlyConfigured(f"HUB_TRUSTED_PROXIES: {exc}") from None

# GET /metrics (hub/metrics.py), for Prometheus: off (404) unless a bearer token (HUB_METRICS_TOKEN) or an address
# allow-list (HUB_METRICS_ALLOW_IPS, CIDRs, matched against accounts/addresses.client_address) is set; with both
# set, a scrape needs both. HUB_METRICS_ORGANIZATION_LABEL adds an `organization` label (its id) to the request
# counters: one series per organisation and model, so only for hubs with few organisations.
HUB_METRICS_TOKEN = env.str("HUB_METRICS_TOKEN", default="")
HUB_METRICS_ALLOW_IPS = env.list("HUB_METRICS_ALLOW_IPS", default=[])
for _network in HUB_METRICS_ALLOW_IPS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as exc:
        raise environ.ImproperlyConfigured(f"HUB_METRICS_ALLOW_IPS: {exc}") from None
HUB_METRICS_ORGANIZATION_LABEL = env.bool("HUB_METRICS_ORGANIZATION_LABEL", default=False)

# End users' accounts (django-allauth, under /accounts/): sign-up with email and password, the email verified by
# a link before the first login, password reset and email change by link too. HUB_SIGNUP_MODE: "open" (anyone),
# "invite" (only an email with a pending invitation, accounts.Invitation) or "closed" (accounts/auth_adapter.py).
HUB_SITE_NAME = env.str("HUB_SITE_NAME", default="The hub")  # the pages' header and the mails' subject
HUB_SIGNUP_MODE = env.str("HUB_SIGNUP_MODE", default="open")
if HUB_SIGNUP_MODE not in ("open", "invite", "closed"):
    raise environ.ImproperlyConfigured("HUB_SIGNUP_MODE must be 'open', 'invite' or 'closed'")
# /pricing/: the catalogue at list prices for anyone, signed in or not (hub/catalogue_pages.py); off: a 404.
HUB_PUBLIC_PRICING = env.bool("HUB_PUBLIC_PRICING", default=True)
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"  # which sends a user without an organisation to create one
ACCOUNT_ADAPTER = "accounts.auth_adapter.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.auth_adapter.SocialAccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.auth_adapter.SignupForm", "login": "accounts.auth_adapter.LoginForm"}
ACCOUNT_LOGIN_METHODS = {"email", "username"}  # operators may have no email; end users never learn their username
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]  # no username: allauth makes one from the email
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_DISPLAY = "accounts.auth_adapter.user_display"
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False  # the link opens a page with a button: a mail scanner's GET confirms nothing
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CHANGE_EMAIL = True  # one address a user: a new one replaces the old once it is verified
ACCOUNT_EMAIL_NOTIFICATIONS = True  # the old address hears of an email or password change
ACCOUNT_REAUTHENTICATION_REQUIRED = True  # changing the email asks for the password (or a mailed code) again
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{HUB_SITE_NAME}] "
# allauth's own throttles stay (sign-ups, reset mails, resends), and its limit on failed logins per address
# across accounts; the per-account lockout is axes', the same as the admin's.
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip"}
SOCIALACCOUNT_FORMS = {"signup": "accounts.auth_adapter.SocialSignupForm"}
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # a provider's email never signs in to an existing account by itself


# Social and OpenID Connect login: each provider is on when its client id and secret are set (no database rows),
# and its button shows on the login page. The callback URLs to register with the providers are
# <the hub>/accounts/github/login/callback/, /accounts/google/login/callback/ and /accounts/oidc/oidc/login/callback/.
def social_providers() -> dict[str, dict]:
    """SOCIALACCOUNT_PROVIDERS from the environment (a function so tests can read it under their own)."""
    providers: dict[str, dict] = {}
    if env.str("HUB_GITHUB_CLIENT_ID", default=""):
        providers["github"] = {
            "APPS": [{"client_id": env.str("HUB_GITHUB_CLIENT_ID"), "secret": env.str("HUB_GITHUB_CLIENT_SECRET")}],
            "SCOPE": ["user:email"],
        }
    if env.str("HUB_GOOGLE_CLIENT_ID", default=""):
        providers["google"] = {
            "APPS": [{"client_id": env.str("HUB_GOOGLE_CLIENT_ID"), "secret": env.str("HUB_GOOGLE_CLIENT_SECRET")}],
            "SCOPE": ["openid", "profile", "email"],
            "OAUTH_PKCE_ENABLED": True,
        }
    if env.str("HUB_OIDC_CLIENT_ID", default=""):
        providers["openid_connect"] = {
            "APPS": [
                {
                    "provider_id": "oidc",
                    "name": env.str("HUB_OIDC_NAME", default="Single sign-on"),
                    "client_id": env.str("HUB_OIDC_CLIENT_ID"),
                    "secret": env.str("HUB_OIDC_CLIENT_SECRET"),
                    "settings": {"server_url": env.str("HUB_OIDC_SERVER_URL")},
                }
            ],
            "OAUTH_PKCE_ENABLED": True,
        }
    return providers


SOCIALACCOUNT_PROVIDERS = social_providers()


# Security headers and cookies of the site's pages (issue 14; README: "Languages and security headers").
# A strict Content-Security-Policy (django-csp): the pages load scripts, styles, images and fonts from the hub
# alone, and run no inline script or style (templates/base.html, static/hub/hub.css); no site may frame them.
# A form may post to the hub itself and, since a social login's or a top-up's POST answers with a redirect to
# the provider, to the sign-in providers switched on above and to Stripe Checkout; HUB_CSP_FORM_ACTION adds more.
# The gateway's answers (/v1/, /api/) have no such header: CSPMiddleware is in MIDDLEWARE only.
def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else ""


def csp_form_action() -> list[str]:
    """Where the site's forms may send the browser: the hub, and the providers a POST redirects to."""
    sources = ["'self'"]
    if "github" in SOCIALACCOUNT_PROVIDERS:
        sources.append("https://github.com")
    if "google" in SOCIALACCOUNT_PROVIDERS:
        sources.append("https://accounts.google.com")
    if "openid_connect" in SOCIALACCOUNT_PROVIDERS:
        sources.append(_origin(env.str("HUB_OIDC_SERVER_URL")))
    if STRIPE_SECRET_KEY:
        sources.append("https://checkout.stripe.com")
    return [*sources, *env.list("HUB_CSP_FORM_ACTION", default=[])]


MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # Swagger UI's and the admin's icons are data: URLs
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": csp_form_action(),
    },
}
# Cookies: the session's is HttpOnly (Django's default, said here) and no cookie is sent by a cross-site POST
# (SameSite=Lax). Behind HTTPS, HUB_HTTPS (on by default when HUB_PUBLIC_URL is https://) makes the session, CSRF
# and language cookies Secure. `make run` serves plain http on 127.0.0.1, where a Secure cookie would never come
# back, so it is off there.
HUB_HTTPS = env.bool("HUB_HTTPS", default=HUB_PUBLIC_URL.startswith("https://"))
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = LANGUAGE_COOKIE_SECURE = HUB_HTTPS
SESSION_COOKIE_HTTPONLY = LANGUAGE_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = LANGUAGE_COOKIE_SAMESITE = "Lax"

# LOG_FORMAT=json: every log line one JSON object (for a log shipper); text (the default) for people.
LOG_FORMAT = {"text": "plain", "json": "json"}.get(env.str("LOG_FORMAT", default="text").lower(), "")
if not LOG_FORMAT:
    raise environ.ImproperlyConfigured("LOG_FORMAT must be text or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "hub.logging.RedactSecretsFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "hub.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"], "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}, "django.request": {"level": "ERROR"}},
}
