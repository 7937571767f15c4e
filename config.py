"""Configuration from the environment, parsed once at start-up.

Every setting is read here and nowhere else. A bad value stops the app with a
`ConfigError` naming the variable and what is wrong with it, so a trust's IT lead sees
the problem at start-up, not at 3 a.m. when the first page fails to go out.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from models.people import Role

DEFAULT_IDLE_MINUTES = 30
DEFAULT_MAX_JSON_BYTES = 1024 * 1024
DEFAULT_API_TOKEN_DAYS = 90
# Who must sign in with an authenticator app: those who see every referral of a hub or
# of the network, and those who can change who may.
DEFAULT_2FA_ROLES = "specialist,audit_lead,admin"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
POSTGRES_DRIVERS = {"postgresql", "postgresql+psycopg", "postgresql+psycopg2"}


def _database_url(env: dict[str, str], instance_path: Path) -> str:
    """The SQLAlchemy URL from DATABASE_URL, or a SQLite file under ``instance_path``.

    Raises ConfigError when the URL cannot be parsed, names another database or driver,
    has a bad port, names no database, or names a SQLite file in a missing directory.
    """
    raw = env.get("DATABASE_URL", "").strip()
    if not raw:
        return f"sqlite:///{instance_path / 'goldenhour.sqlite3'}"
    if raw.startswith("postgres://"):  # Heroku-style alias
        raw = "postgresql://" + raw[len("postgres://") :]
    try:
        url = make_url(raw)
        port = url.port  # parsed lazily: "host:abc" fails only here
    except (ArgumentError, ValueError):
        raise ConfigError(
            "DATABASE_URL is not a database URL; expected e.g. "
            "postgresql://user:password@127.0.0.1:5432/goldenhour or sqlite:////path/file.db"
        ) from None
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigError(f"DATABASE_URL uses {backend!r}; goldenhour runs on sqlite or postgresql")
    if url.drivername not in SQLITE_DRIVERS | POSTGRES_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL asks for the driver {url.drivername!r}; use postgresql:// "
            "(goldenhour connects with psycopg 3) or sqlite:///"
        )
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"DATABASE_URL has the port {port}; a port is 1 to 65535")
    if backend == "sqlite":
        _check_sqlite_file(url.database)
    else:
        url = url.set(drivername="postgresql+psycopg")
        if not url.database:
            raise ConfigError("DATABASE_URL names no database (add /goldenhour at the end)")
    return url.render_as_string(hide_password=False)


def instance_path(env: dict[str, str] | None = None) -> str | None:
    """GOLDENHOUR_INSTANCE_PATH: the instance folder (image cache, development secret
    key, default SQLite file), an absolute path; None: Flask's ./instance.

    Raises ConfigError for a relative path."""
    raw = (os.environ if env is None else env).get("GOLDENHOUR_INSTANCE_PATH", "").strip()
    if not raw:
        return None
    if not os.path.isabs(raw):
        raise ConfigError(f"GOLDENHOUR_INSTANCE_PATH must be an absolute path, not {raw!r}")
    return raw


def _replica_binds(env: dict[str, str], instance_path: Path) -> dict:
    """DATABASE_REPLICA_URL: a read-only PostgreSQL replica (streaming replication) for
    the audit dashboard and exports, as the "replica" bind; {} when unset.

    Raises ConfigError as for DATABASE_URL, naming DATABASE_REPLICA_URL, or when the
    replica is not PostgreSQL."""
    raw = env.get("DATABASE_REPLICA_URL", "").strip()
    if not raw:
        return {}
    try:
        url = _database_url({"DATABASE_URL": raw}, instance_path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("DATABASE_URL", "DATABASE_REPLICA_URL")) from None
    if not url.startswith("postgresql"):
        raise ConfigError("DATABASE_REPLICA_URL must be a PostgreSQL replica "
                          "(postgresql://...); SQLite has no replicas")
    return {"replica": {"url": url, **engine_options(url)}}


def _check_sqlite_file(database: str | None) -> None:
    # An in-memory database would lose every referral at restart, and each connection
    # would see a different empty one.
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise ConfigError(
            "DATABASE_URL names no SQLite file; use sqlite:////absolute/path/goldenhour.sqlite3"
        )
    folder = Path(database).parent
    if not folder.is_dir():
        raise ConfigError(
            f"DATABASE_URL names a SQLite file in {str(folder)!r}, which is not a directory "
            "that exists; create it first"
        )


def _roles(env: dict[str, str], name: str, default: str) -> frozenset[str]:
    """A comma-separated list of role names; set but empty means none.

    Raises ConfigError naming an unknown role."""
    raw = env.get(name)
    names = {r.strip() for r in (default if raw is None else raw).split(",") if r.strip()}
    unknown = sorted(names - {r.value for r in Role})
    if unknown:
        raise ConfigError(f"{name} names the unknown role {', '.join(unknown)}; choose from "
                          f"{', '.join(r.value for r in Role)} (or set it empty for none)")
    return frozenset(names)


def _secret_key(env: dict[str, str], instance_path: Path, production: bool) -> str:
    key = env.get("SECRET_KEY", "")
    if key:
        if production and len(key) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters in production")
        return key
    if production:
        raise ConfigError("SECRET_KEY is required when GOLDENHOUR_ENV=production")
    # Development: one random key, kept so sessions survive a restart.
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _public_base_url(env: dict[str, str]) -> str:
    raw = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").strip().rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(
            f"PUBLIC_BASE_URL must be an absolute http(s) URL such as "
            f"https://goldenhour.example.nhs.uk, not {raw!r}"
        )
    return raw


def load_config(env: dict[str, str] | None = None, instance_path: str | Path = "instance") -> dict:
    """Build the Flask config mapping from environment variables.

    Raises ConfigError naming the first bad variable.
    """
    env = dict(os.environ if env is None else env)
    instance = Path(instance_path)
    environment = env.get("GOLDENHOUR_ENV", "development").strip().lower()
    if environment not in {"development", "production", "test"}:
        raise ConfigError(
            f"GOLDENHOUR_ENV must be development, production or test, not {environment!r}"
        )
    production = environment == "production"
    public_base_url = _public_base_url(env)
    database_url = _database_url(env, instance)
    max_json = _int(env, "GOLDENHOUR_MAX_JSON_BYTES", DEFAULT_MAX_JSON_BYTES, 1024)
    config = {
        "GOLDENHOUR_ENV": environment,
        "SECRET_KEY": _secret_key(env, instance, production),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        "SQLALCHEMY_BINDS": _replica_binds(env, instance),
        "PUBLIC_BASE_URL": public_base_url,
        "NETWORK_CODE": env.get("GOLDENHOUR_NETWORK_CODE", "EM").strip().upper() or "EM",
        "IDLE_TIMEOUT_MINUTES": _int(env, "IDLE_TIMEOUT_MINUTES", DEFAULT_IDLE_MINUTES, 1),
        # Failures one email may have from one address before each try waits (30 s,
        # doubling, at most LOGIN_LOCKOUT_MINUTES: the window failures are counted in).
        "LOGIN_MAX_FAILURES": _int(env, "LOGIN_MAX_FAILURES", 5, 1),
        "LOGIN_LOCKOUT_MINUTES": _int(env, "LOGIN_LOCKOUT_MINUTES", 15, 1),
        # Failures one address may have in that window, whatever the emails: high, for a
        # hospital's staff behind one NAT address, but bounded.
        "LOGIN_ADDRESS_MAX_FAILURES": _int(env, "LOGIN_ADDRESS_MAX_FAILURES", 200, 1),
        "API_TOKEN_DAYS": _int(env, "GOLDENHOUR_API_TOKEN_DAYS", DEFAULT_API_TOKEN_DAYS, 1),
        # Roles that must have two-factor sign-in (TOTP): after their password, a user
        # with one of them and no authenticator is sent to enrol and reaches nothing else.
        "REQUIRE_2FA_ROLES": _roles(env, "GOLDENHOUR_REQUIRE_2FA_ROLES", DEFAULT_2FA_ROLES),
        "TRUSTED_PROXIES": _int(env, "TRUSTED_PROXIES", 0, 0),
        "LOG_FORMAT": _log_format(env),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": public_base_url.startswith("https://"),
        "SESSION_COOKIE_NAME": "goldenhour_session",
        "REMEMBER_COOKIE_DURATION": 0,
        "WTF_CSRF_TIME_LIMIT": None,  # the session's idle timeout bounds it instead
        # Every body but an upload's (JSON, forms); see views/bodies.py.
        "MAX_JSON_BYTES": max_json,
        "MAX_CONTENT_LENGTH": max_json,
        # Image uploads, on their own routes, for signed-in users only.
        "MAX_UPLOAD_BYTES": _int(env, "MAX_UPLOAD_MB", 512, 1) * 1024 * 1024,
        # Processes rendering a cold series, per web worker and scheduler (0: in-process).
        "IMAGE_RENDER_PROCESSES": _int(env, "IMAGE_RENDER_PROCESSES", os.cpu_count() or 1, 0),
        "SCHEDULER_IN_PROCESS": _bool(env, "SCHEDULER_IN_PROCESS", not production),
        "SWEEP_INTERVAL_SECONDS": _int(env, "SWEEP_INTERVAL_SECONDS", 2, 1),
        # Claim-and-send loops one sweep runs side by side (PostgreSQL; SQLite runs one).
        "SEND_WORKERS": _int(env, "SEND_WORKERS", 8, 1),
        # How often the scheduler looks for rota gaps in the next 72 hours.
        "ROTA_CHECK_MINUTES": _int(env, "ROTA_CHECK_MINUTES", 10, 1),
        # `make run`: keep the demo network's own rota covering the next week.
        "DEMO_ROTA": _bool(env, "GOLDENHOUR_DEMO_ROTA", False),
        # Live pages (views/live.py): a stream lasts LIVE_STREAM_SECONDS, then the browser
        # reconnects; it reads the events table every LIVE_POLL_MS and says it is alive
        # every LIVE_HEARTBEAT_SECONDS. Unanswered referrals alarm again every
        # UNANSWERED_REALARM_MINUTES until accepted or cancelled.
        "LIVE_STREAM_SECONDS": _int(env, "LIVE_STREAM_SECONDS", 300, 1),
        "LIVE_POLL_MS": _int(env, "LIVE_POLL_MS", 1000, 50),
        "LIVE_HEARTBEAT_SECONDS": _int(env, "LIVE_HEARTBEAT_SECONDS", 5, 1),
        # Silence after which a page says it is out of date and turns its forms off.
        "LIVE_STALE_SECONDS": _int(env, "LIVE_STALE_SECONDS", 30, 2),
        "UNANSWERED_REALARM_MINUTES": _int(env, "UNANSWERED_REALARM_MINUTES", 10, 1),
        "PACS_SECRET_KEY": _pacs_key(env),
        # Anchoring (workflow/audit/anchors.py): the Ed25519 key file and the file the
        # signed tree heads are appended to; both outside the database.
        "ANCHOR_KEY_FILE": _existing_file(env, "GOLDENHOUR_ANCHOR_KEY_FILE"),
        "ANCHOR_LOG": env.get("GOLDENHOUR_ANCHOR_LOG", "").strip(),
        **_twilio(env),
        **_smtp(env),
        **_vapid(env),
        **_oidc(env),
    }
    return config


def _log_format(env: dict[str, str]) -> str:
    """LOG_FORMAT: text (default, for people) or json (one object a line, for shipping)."""
    value = env.get("LOG_FORMAT", "").strip().lower() or "text"
    if value not in {"text", "json"}:
        raise ConfigError(f"LOG_FORMAT must be text or json, not {env['LOG_FORMAT']!r}")
    return value


def _existing_file(env: dict[str, str], name: str) -> str:
    path = env.get(name, "").strip()
    if path and not Path(path).is_file():
        raise ConfigError(f"{name} names {path}, which is not a readable file")
    return path


def _pacs_key(env: dict[str, str]) -> str:
    """GOLDENHOUR_PACS_KEY, a Fernet key; "" derives one from SECRET_KEY instead."""
    key = env.get("GOLDENHOUR_PACS_KEY", "").strip()
    if key:
        try:
            if len(base64.urlsafe_b64decode(key.encode())) != 32:
                raise ValueError
        except ValueError:
            raise ConfigError(
                "GOLDENHOUR_PACS_KEY must be a Fernet key (32 bytes in URL-safe base64, "
                "e.g. from python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')") from None
    return key


def _twilio(env: dict[str, str]) -> dict:
    names = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER")
    values = {n: env.get(n, "").strip() for n in names}
    given = [n for n in names if values[n]]
    if given and len(given) != len(names):
        missing = ", ".join(n for n in names if not values[n])
        raise ConfigError(f"Twilio is half configured: set {missing} too (or none of them)")
    base = env.get("TWILIO_API_BASE", "https://api.twilio.com").strip().rstrip("/")
    if urlsplit(base).scheme not in {"http", "https"}:
        raise ConfigError(f"TWILIO_API_BASE must be an http(s) URL, not {base!r}")
    return {
        **values,
        "TWILIO_API_BASE": base,
        "TWILIO_TIMEOUT_SECONDS": _int(env, "TWILIO_TIMEOUT_SECONDS", 5, 1),
    }


def _smtp(env: dict[str, str]) -> dict:
    host = env.get("SMTP_HOST", "").strip()
    sender = env.get("SMTP_FROM", "").strip()
    if host and not sender:
        raise ConfigError("SMTP_FROM is required when SMTP_HOST is set")
    return {
        "SMTP_HOST": host,
        "SMTP_PORT": _int(env, "SMTP_PORT", 587, 1),
        "SMTP_USER": env.get("SMTP_USER", ""),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD", ""),
        "SMTP_FROM": sender,
        "SMTP_STARTTLS": _bool(env, "SMTP_STARTTLS", True),
        "SMTP_TIMEOUT_SECONDS": _int(env, "SMTP_TIMEOUT_SECONDS", 10, 1),
    }


def _vapid(env: dict[str, str]) -> dict:
    """Web Push pages: VAPID_PRIVATE_KEY (a PEM file's path, or the key itself as PEM or
    base64url) and VAPID_SUBJECT (mailto: or https:, for push services to contact us).
    Without a key the webpush channel is the console channel. The public key, which
    browsers subscribe with, is derived here."""
    raw = env.get("VAPID_PRIVATE_KEY", "").strip()
    subject = env.get("VAPID_SUBJECT", "").strip()
    settings = {"VAPID_PRIVATE_KEY": "", "VAPID_PUBLIC_KEY": "", "VAPID_SUBJECT": subject,
                "PUSH_TIMEOUT_SECONDS": _int(env, "PUSH_TIMEOUT_SECONDS", 5, 1)}
    if not raw:
        return settings
    if not raw.startswith("-----BEGIN") and Path(raw).is_file():
        raw = Path(raw).read_text().strip()
    from integrations.pager.webpush import load_vapid, public_key

    try:
        vapid = load_vapid(raw)
    except ValueError as exc:
        raise ConfigError(f"VAPID_PRIVATE_KEY is {exc}: give a PEM file's path, or the "
                          "key as PEM or base64url (e.g. from `vapid --gen`)") from None
    if urlsplit(subject).scheme not in {"mailto", "https"}:
        raise ConfigError("VAPID_SUBJECT must be a mailto: or https: address push "
                          f"services can reach us at, not {subject!r}")
    return {**settings, "VAPID_PRIVATE_KEY": raw, "VAPID_PUBLIC_KEY": public_key(vapid)}


def _oidc(env: dict[str, str]) -> dict:
    """Single sign-on by OpenID Connect (NHS CIS2): off unless GOLDENHOUR_OIDC_ISSUER is set."""
    issuer = env.get("GOLDENHOUR_OIDC_ISSUER", "").strip()
    client_id = env.get("GOLDENHOUR_OIDC_CLIENT_ID", "").strip()
    secret = env.get("GOLDENHOUR_OIDC_CLIENT_SECRET", "").strip()
    scopes = env.get("GOLDENHOUR_OIDC_SCOPES", "").split() or ["openid", "email", "profile"]
    if issuer:
        parts = urlsplit(issuer)
        local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
        if not (parts.scheme == "https" or parts.scheme == "http" and local) or \
                not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"GOLDENHOUR_OIDC_ISSUER must be the identity provider's https:// issuer URL "
                f"(http:// only on this machine), not {issuer!r}")
        missing = [name for name, value in (("GOLDENHOUR_OIDC_CLIENT_ID", client_id),
                                            ("GOLDENHOUR_OIDC_CLIENT_SECRET", secret))
                   if not value]
        if missing:
            raise ConfigError(f"single sign-on is half configured: GOLDENHOUR_OIDC_ISSUER is "
                              f"set, so set {' and '.join(missing)} too")
        if "openid" not in scopes:
            raise ConfigError("GOLDENHOUR_OIDC_SCOPES must include openid")
    return {
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": client_id,
        "OIDC_CLIENT_SECRET": secret,
        "OIDC_LABEL": env.get("GOLDENHOUR_OIDC_LABEL", "").strip() or "Sign in with NHS CIS2",
        "OIDC_SCOPES": " ".join(scopes),
        "OIDC_TIMEOUT_SECONDS": _int(env, "GOLDENHOUR_OIDC_TIMEOUT_SECONDS", 5, 1),
    }


def engine_options(database_url: str) -> dict:
    # hide_parameters: a logged database error must never carry an NHS number.
    if database_url.startswith("sqlite"):
        # busy timeout: a writer waits for the lock instead of failing at once.
        return {"connect_args": {"timeout": 30, "check_same_thread": False},
                "hide_parameters": True}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10,
            "hide_parameters": True}
