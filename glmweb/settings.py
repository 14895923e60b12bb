"""glmweb settings: one file, every deploy-time value from the environment.

The defaults run a fresh clone on one machine (SQLite, in-memory channel layer,
offline demo model). Hosted deployments set DATABASE_URL, REDIS_URL, SECRET_KEY,
DEBUG=false and ALLOWED_HOSTS; docs/deploy.md lists every variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if not value:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = env_str(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_decimal(name: str, default: Decimal) -> Decimal:
    value = env_str(name)
    if not value:
        return default
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0:
        raise ImproperlyConfigured(f"{name} must be an amount like 25 or 12.50, not {value!r}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = env_str(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "chat.apps.AdminConfig",  # django.contrib.admin with glmweb's landing page
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    # Single sign-on's social flow only (chat.accounts); installed whether or not
    # SSO is on, so that every deployment has the same tables.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "glmweb.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "glmweb.urls"
ASGI_APPLICATION = "glmweb.asgi.application"

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
                "chat.web.context_processors.glmweb",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Many chats starting at once on SQLite: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN (no upgrade deadlocks),
    # and the timeout makes a busy writer wait instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer ------------------------------------------------------------

# A turn's events reach the sockets of its own process directly (chat.turns.relay);
# the layer carries only what other workers need: stop and snapshot requests,
# each turn's start and end, and the events of turns that a socket elsewhere
# follows. On Redis it is the Pub/Sub layer: a group message is one PUBLISH
# (channels_redis' RedisChannelLayer spends four round trips and a Lua script,
# and its listeners five more commands a message). Its delivery is at most once,
# as is all this needs: a socket that misses an event sees a gap in seq and
# asks for a snapshot, and a turn's text is saved whatever the layer does.
REDIS_URL = env_str("REDIS_URL")
# Of the layer's channels and of the socket counts (chat.live.socket_counts).
REDIS_PREFIX = env_str("REDIS_PREFIX", "glmweb")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": REDIS_PREFIX,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000, "expiry": 30},
        }
    }

# --- Cache (login throttling, socket counts: shared by all workers with Redis) ---

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- Auth ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

# Failed logins allowed per username and per client address in the window.
GLMWEB_LOGIN_FAILURES = env_int("GLMWEB_LOGIN_FAILURES", 5)
GLMWEB_LOGIN_WINDOW_SECONDS = env_int("GLMWEB_LOGIN_WINDOW_SECONDS", 300)

# Sign-up: "open" (anyone), "approval" (anyone asks; an admin activates the
# account before it can log in) or "closed" (only admins create accounts).
# GLMWEB_SIGNUP_OPEN=false, the older switch, still means closed.
GLMWEB_SIGNUP = env_str(
    "GLMWEB_SIGNUP", "open" if env_bool("GLMWEB_SIGNUP_OPEN", True) else "closed"
).lower()
if GLMWEB_SIGNUP not in {"open", "approval", "closed"}:
    raise ImproperlyConfigured(
        f"GLMWEB_SIGNUP must be open, approval or closed, not {GLMWEB_SIGNUP!r}"
    )
GLMWEB_SIGNUP_OPEN = GLMWEB_SIGNUP != "closed"

AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

# --- Single sign-on (OpenID Connect, through django-allauth; docs/deploy.md) ---

# The provider's issuer URL (discovery at <issuer>/.well-known/openid-configuration).
# Unset: no single sign-on, and allauth serves nothing.
GLMWEB_OIDC_ISSUER = env_str("GLMWEB_OIDC_ISSUER").rstrip("/")
GLMWEB_OIDC_CLIENT_ID = env_str("GLMWEB_OIDC_CLIENT_ID")
GLMWEB_OIDC_CLIENT_SECRET = env_str("GLMWEB_OIDC_CLIENT_SECRET")
GLMWEB_OIDC_NAME = env_str("GLMWEB_OIDC_NAME", "SSO")  # the button: "Sign in with <name>"
GLMWEB_OIDC_SCOPES = env_str("GLMWEB_OIDC_SCOPES", "openid profile email").split()
# Set, the claim owns group membership (chat.accounts.groups); unset, the admin does.
GLMWEB_OIDC_GROUPS_CLAIM = env_str("GLMWEB_OIDC_GROUPS_CLAIM")
GLMWEB_OIDC_PROVIDER_ID = "sso"  # in the callback's path (docs/deploy.md)
if GLMWEB_OIDC_ISSUER:
    _issuer = urlsplit(GLMWEB_OIDC_ISSUER)
    # http:// only to try things out: while DEBUG, or on this machine.
    _plain_ok = DEBUG or _issuer.hostname in {"127.0.0.1", "::1"}
    if not _issuer.hostname or _issuer.scheme not in (
        {"https", "http"} if _plain_ok else {"https"}
    ):
        raise ImproperlyConfigured(
            f"GLMWEB_OIDC_ISSUER must be an https:// URL, not {GLMWEB_OIDC_ISSUER!r}"
        )
    for _name in ("GLMWEB_OIDC_CLIENT_ID", "GLMWEB_OIDC_CLIENT_SECRET"):
        if not globals()[_name]:
            raise ImproperlyConfigured(f"{_name} must be set when GLMWEB_OIDC_ISSUER is")
    if "openid" not in GLMWEB_OIDC_SCOPES:
        raise ImproperlyConfigured("GLMWEB_OIDC_SCOPES must include openid")

# allauth does only the social flow (our views keep the password login and
# sign-up), matching accounts by the provider's subject and never by e-mail:
# no auto-connect, and two accounts may share an address.
SOCIALACCOUNT_ONLY = True
ACCOUNT_EMAIL_VERIFICATION = SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
ACCOUNT_ADAPTER = "chat.accounts.adapter.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "chat.accounts.adapter.SocialAccountAdapter"
# The callback URI given to the provider: https in production, forwarded or not.
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
# The app lives here, not in the database: the environment is the configuration.
_OIDC_APP = {
    "provider_id": GLMWEB_OIDC_PROVIDER_ID,
    "name": GLMWEB_OIDC_NAME,
    "client_id": GLMWEB_OIDC_CLIENT_ID,
    "secret": GLMWEB_OIDC_CLIENT_SECRET,
    "settings": {"server_url": GLMWEB_OIDC_ISSUER, "scope": GLMWEB_OIDC_SCOPES},
}
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [_OIDC_APP] if GLMWEB_OIDC_ISSUER else [],
    }
}

# --- Trusted-header sign-in (behind oauth2-proxy, Authelia, Cloudflare Access) ---

# The header the proxy names the person in (e.g. X-Forwarded-User), and one of
# comma-separated group names that then owns group membership; believed only
# from GLMWEB_TRUSTED_PROXIES (addresses or networks).
GLMWEB_TRUSTED_USER_HEADER = env_str("GLMWEB_TRUSTED_USER_HEADER")
GLMWEB_TRUSTED_GROUPS_HEADER = env_str("GLMWEB_TRUSTED_GROUPS_HEADER")
try:
    GLMWEB_TRUSTED_PROXIES = [
        ipaddress.ip_network(item, strict=False) for item in env_list("GLMWEB_TRUSTED_PROXIES", [])
    ]
except ValueError as error:
    raise ImproperlyConfigured(f"GLMWEB_TRUSTED_PROXIES: {error}") from None
for _name in ("GLMWEB_TRUSTED_USER_HEADER", "GLMWEB_TRUSTED_GROUPS_HEADER"):
    if not re.fullmatch(r"[A-Za-z0-9-]*", globals()[_name]):
        raise ImproperlyConfigured(f"{_name} must be a header name, not {globals()[_name]!r}")
if GLMWEB_TRUSTED_GROUPS_HEADER and not GLMWEB_TRUSTED_USER_HEADER:
    raise ImproperlyConfigured("GLMWEB_TRUSTED_GROUPS_HEADER needs GLMWEB_TRUSTED_USER_HEADER")
if GLMWEB_TRUSTED_USER_HEADER and not GLMWEB_TRUSTED_PROXIES:
    raise ImproperlyConfigured("GLMWEB_TRUSTED_PROXIES must be set with GLMWEB_TRUSTED_USER_HEADER")
if GLMWEB_TRUSTED_USER_HEADER:
    AUTHENTICATION_BACKENDS.append("chat.accounts.trusted_header.TrustedHeaderBackend")
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "chat.accounts.trusted_header.TrustedHeaderMiddleware",
    )

# Off: no password form, sign-up or password login (the admin's included).
GLMWEB_PASSWORD_LOGIN = env_bool("GLMWEB_PASSWORD_LOGIN", True)
if not GLMWEB_PASSWORD_LOGIN and not (GLMWEB_OIDC_ISSUER or GLMWEB_TRUSTED_USER_HEADER):
    raise ImproperlyConfigured("GLMWEB_PASSWORD_LOGIN=false needs SSO or the trusted header")

# Whether admins can read conversation text in the admin. Off: they still see
# owners, titles hidden, usage and timings; users are told which applies.
GLMWEB_ADMIN_CAN_READ_CONVERSATIONS = env_bool("GLMWEB_ADMIN_CAN_READ_CONVERSATIONS", True)

# Default limits per person (each person's can be changed in the admin); 0: unlimited.
GLMWEB_LIMIT_TOKENS_PER_DAY = env_int("GLMWEB_LIMIT_TOKENS_PER_DAY", 0)
GLMWEB_LIMIT_TOKENS_PER_MONTH = env_int("GLMWEB_LIMIT_TOKENS_PER_MONTH", 0)
GLMWEB_LIMIT_REPLIES_PER_MINUTE = env_int("GLMWEB_LIMIT_REPLIES_PER_MINUTE", 0)
# Three replies at once by default: one person's many tabs don't take every
# upstream connection.
GLMWEB_LIMIT_CONCURRENT_GENERATIONS = env_int("GLMWEB_LIMIT_CONCURRENT_GENERATIONS", 3)
# Money per person per calendar month at the models' prices (set in the admin); 0: unlimited.
GLMWEB_LIMIT_MONTHLY_BUDGET = env_decimal("GLMWEB_LIMIT_MONTHLY_BUDGET", Decimal(0))
# How the usage pages name the money that prices and budgets are in.
GLMWEB_CURRENCY = env_str("GLMWEB_CURRENCY", "USD")

# --- Internationalisation and static files ------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "glmweb.storage.StaticFilesStorage"
        )
    },
}

# --- Security (production values come from the environment) ------------------

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Model output is rendered as HTML (sanitized); this is the second line of
# defence: no inline or foreign script, sockets only to ourselves. Images from
# https: are allowed because a person may choose to load one in a reply; the
# page never fetches them by itself (they can leak conversation content).
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
)
if GLMWEB_OIDC_ISSUER and not env_str("CONTENT_SECURITY_POLICY"):
    # The "Sign in with" form posts here and is redirected to the provider;
    # browsers hold redirects after a form submission to form-action too.
    CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {_issuer.scheme}://{_issuer.netloc}"
    )
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)

# --- The upstream model -------------------------------------------------------

UPSTREAM_BASE_URL = env_str("UPSTREAM_BASE_URL", "https://toapis.com/v1").rstrip("/")
UPSTREAM_API_KEY = env_str("UPSTREAM_API_KEY")
UPSTREAM_MODEL = env_str("UPSTREAM_MODEL", "glm-5")
UPSTREAM_CONNECT_TIMEOUT = env_float("UPSTREAM_CONNECT_TIMEOUT", 10.0)
# Longest gap between two real chunks (keep-alive comments don't count).
UPSTREAM_CHUNK_TIMEOUT = env_float("UPSTREAM_CHUNK_TIMEOUT", 60.0)
# Longest a whole reply may take, first byte to last.
UPSTREAM_DEADLINE = env_float("UPSTREAM_DEADLINE", 600.0)
# Retries before the first token: 5xx and connection failures up to
# UPSTREAM_MAX_RETRIES times; a 429 once, if its Retry-After is this short.
UPSTREAM_MAX_RETRIES = env_int("UPSTREAM_MAX_RETRIES", 2)
UPSTREAM_RETRY_AFTER_MAX_SECONDS = env_float(
    "UPSTREAM_RETRY_AFTER_MAX_SECONDS", env_float("UPSTREAM_MAX_RETRY_WAIT", 10.0)
)
UPSTREAM_MAX_CONNECTIONS = env_int("UPSTREAM_MAX_CONNECTIONS", 1000)
UPSTREAM_KEEPALIVE_CONNECTIONS = env_int("UPSTREAM_KEEPALIVE_CONNECTIONS", 20)


def env_models(name: str, default_model: str) -> list[dict[str, object]]:
    """``name[:context tokens][:thinking]``, comma separated: the models people may choose."""
    default = f"{default_model}:128000{':thinking' if default_model.startswith('glm') else ''}"
    models = []
    for item in env_list(name, [default]):
        model, _, rest = item.partition(":")
        context, _, thinking = rest.partition(":")
        if not model or not (context or "128000").isdigit() or thinking not in {"", "thinking"}:
            raise ImproperlyConfigured(
                f"{name} must list name[:context tokens][:thinking], not {item!r}"
            )
        context_tokens = int(context or 128000)
        models.append({"name": model, "context_tokens": context_tokens, "thinking": bool(thinking)})
    if default_model not in [m["name"] for m in models]:
        raise ImproperlyConfigured(f"{name} must include UPSTREAM_MODEL ({default_model!r})")
    return models


# Models a conversation may use, each with its context budget in tokens and
# whether it takes GLM's "thinking" switch. UPSTREAM_MODEL is the default.
GLMWEB_MODELS = env_models("GLMWEB_MODELS", UPSTREAM_MODEL)
# Settings of a new conversation: a system prompt, and sampling parameters as
# JSON, e.g. {"temperature": 0.7, "thinking": false} (checked by chat.params).
GLMWEB_DEFAULT_SYSTEM_PROMPT = env_str("GLMWEB_DEFAULT_SYSTEM_PROMPT")
GLMWEB_DEFAULT_PARAMS = env_str("GLMWEB_DEFAULT_PARAMS", "{}")
GLMWEB_MAX_SYSTEM_PROMPT_CHARS = env_int("GLMWEB_MAX_SYSTEM_PROMPT_CHARS", 20_000)

# The built-in offline model, used when no API key is set.
GLMWEB_DEMO_MODEL = not UPSTREAM_API_KEY

# --- Chat limits --------------------------------------------------------------

GLMWEB_MAX_MESSAGE_CHARS = env_int("GLMWEB_MAX_MESSAGE_CHARS", 100_000)
# In UTF-8 bytes. glmweb.serve gives daphne the same limit: a bigger frame
# closes the socket with 1009 and a reason (docs/protocol.md).
GLMWEB_MAX_FRAME_BYTES = env_int("GLMWEB_MAX_FRAME_BYTES", 512 * 1024)
# Counted across the workers with Redis (chat.live.socket_counts).
GLMWEB_MAX_SOCKETS_PER_USER = env_int("GLMWEB_MAX_SOCKETS_PER_USER", 20)
GLMWEB_CHECKPOINT_SECONDS = env_float("GLMWEB_CHECKPOINT_SECONDS", 2.0)
# A reply still marked streaming with no checkpoint for this long is dead.
GLMWEB_STALE_STREAM_SECONDS = env_float("GLMWEB_STALE_STREAM_SECONDS", 30.0)
# A streamed reply is read from the upstream at most once per this window, and
# what came in between goes out in one frame; the first token never waits, nor
# does one arriving after a quiet spell longer than the window. A wider window
# costs latency (at most the window) and saves CPU per token.
GLMWEB_COALESCE_SECONDS = env_float("GLMWEB_COALESCE_SECONDS", 0.05)
# A socket's session check holds this long: a logout ends it at its next frame after.
GLMWEB_SESSION_RECHECK_SECONDS = env_float("GLMWEB_SESSION_RECHECK_SECONDS", 2.0)
# Names this worker process in the database so that, restarted under the same
# name, it marks the replies it was streaming as interrupted at once. Give each
# worker its own stable name (docs/deploy.md); without one, a worker behind Redis
# gets a name of its own and its dead replies wait for the stale sweep.
GLMWEB_WORKER_ID = env_str(
    "GLMWEB_WORKER_ID", f"{socket.gethostname()}-{os.getpid()}" if REDIS_URL else "default"
)

# --- Conversations --------------------------------------------------------------

# After a conversation's first reply, ask the model for a short title (tokens count in usage).
GLMWEB_GENERATED_TITLES = env_bool("GLMWEB_GENERATED_TITLES", True)
GLMWEB_TITLE_TIMEOUT_SECONDS = env_float("GLMWEB_TITLE_TIMEOUT_SECONDS", 8.0)
# Largest conversation file one import accepts (ours or a ChatGPT conversations.json).
GLMWEB_IMPORT_MAX_BYTES = env_int("GLMWEB_IMPORT_MAX_BYTES", 20 * 1024 * 1024)
# Conversations the sidebar lists at first; "Show more" fetches the next ones.
GLMWEB_SIDEBAR_PAGE = env_int("GLMWEB_SIDEBAR_PAGE", 200)

# --- Logging ------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "glmweb.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if env_bool("LOG_JSON", not DEBUG) else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
