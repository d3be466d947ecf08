"""Configuration read from KJDMS_* environment variables, with the embedded defaults."""
from __future__ import annotations

import os
import secrets
from datetime import date, timedelta
from pathlib import Path

from .sqlite_writer import WriterTurnConnection

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Room for the other fields and the multipart boundaries around an uploaded file.
FORM_OVERHEAD_BYTES = 64 * 1024


def default_storage_dir() -> Path:
    """Return storage/ beside the checkout, or under the working folder for an installed copy."""
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "storage"
    return Path.cwd() / "storage"


def read_or_create_file(path: Path, make) -> bytes:
    """Return the contents of path, first writing make() there (owner-only, fsynced) if it does not exist."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole beside it, then linked into place: a crash leaves no empty key, and of two
    # processes creating it at once the second link fails and that process reads the first's key.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        contents = make()
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(contents)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        partial.unlink(missing_ok=True)
    return contents


def read_or_create_key(path: Path) -> str:
    """Return the key kept in path, creating it once (owner-only) when it is missing."""
    key = read_or_create_file(path, lambda: (secrets.token_hex(32) + "\n").encode("ascii")).decode("ascii").strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it to have a new key generated")
    return key


def collection_windows(value: str) -> tuple[tuple[date, date], ...]:
    """Read "2019-04-15:2019-06-30,2020-04-01:2020-06-30" into (start, end) pairs, in order."""
    windows = []
    for part in filter(None, (piece.strip() for piece in str(value or "").split(","))):
        try:
            start, end = (date.fromisoformat(text.strip()) for text in part.split(":"))
        except ValueError:
            raise ValueError(f"KJDMS_COLLECTION_WINDOWS: “{part}” should be YYYY-MM-DD:YYYY-MM-DD") from None
        if end < start:
            raise ValueError(f"KJDMS_COLLECTION_WINDOWS: “{part}” ends before it starts")
        windows.append((start, end))
    return tuple(sorted(windows))


def reminder_days(value: str) -> tuple[int, ...]:
    """Read "30,14,7,3,1" into the days before the deadline on which reminders go out, largest first."""
    try:
        days = tuple(sorted({int(part) for part in str(value or "").split(",") if part.strip()}, reverse=True))
    except ValueError:
        raise ValueError(f"KJDMS_REMINDER_DAYS: “{value}” should be whole numbers of days, comma-separated") from None
    if any(day < 0 for day in days):
        raise ValueError(f"KJDMS_REMINDER_DAYS: “{value}” should not be negative")
    return days


def _flag(value) -> bool:
    """Read a yes/no setting."""
    return str(value).lower() in ("1", "true", "yes", "on")


def _positive(get, name: str, default: float) -> float:
    """Read a positive number setting, naming the variable when it is not one."""
    value = get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise ValueError(f"KJDMS_{name}: “{value}” should be a positive number")
    return number


class Config:
    """Settings for one instance; every field can be set by a KJDMS_<NAME> variable."""

    def __init__(self, environ=None, **overrides):
        env = os.environ if environ is None else environ
        get = lambda name, default=None: overrides.get(name, env.get(f"KJDMS_{name}", default))  # noqa: E731
        self.STORAGE_DIR = Path(get("STORAGE_DIR") or default_storage_dir())
        self.DATABASE_URL = get("DATABASE_URL") or f"sqlite:///{self.STORAGE_DIR / 'kjdms.sqlite3'}"
        self.BLOB_STORE = get("BLOB_STORE", "local")
        self.BLOB_DIR = Path(get("BLOB_DIR") or self.STORAGE_DIR / "blobs")
        # KJDMS_BLOB_STORE=s3: the bucket (and a key prefix within it) on an S3 server; without an endpoint,
        # AWS itself. Credentials: these two variables, else boto3's usual chain (environment, files, roles).
        self.S3_ENDPOINT_URL = get("S3_ENDPOINT_URL") or None
        self.S3_BUCKET = get("S3_BUCKET") or None
        self.S3_PREFIX = get("S3_PREFIX", "")
        self.S3_REGION = get("S3_REGION") or None
        self.S3_ACCESS_KEY = get("S3_ACCESS_KEY") or None
        self.S3_SECRET_KEY = get("S3_SECRET_KEY") or None
        self.SEARCH = get("SEARCH", "whoosh")
        self.INDEX_DIR = Path(get("INDEX_DIR") or self.STORAGE_DIR / "index")
        # Off: the worker's indexer thread (or `kjdms worker`) drains the index outbox in batches, and no
        # request waits for the index. On: each commit drains it before returning, as before (scripts, tests);
        # never with several processes (Whoosh takes one writer at a time).
        self.INDEX_AFTER_COMMIT = _flag(get("INDEX_AFTER_COMMIT", "0"))
        # `kjdms serve` runs the worker (text extraction, outbox) in a thread unless it runs elsewhere.
        self.WORKER = get("WORKER", "thread")
        self.OCR = _flag(get("OCR", "1"))
        self.WORKFLOW_FILE = Path(get("WORKFLOW_FILE") or PROJECT_ROOT / "workflows" / "dossier.yaml")
        self.MAX_UPLOAD_BYTES = int(get("MAX_UPLOAD_BYTES", 10 * 1024 * 1024))
        self.CONFIRMATION_DEADLINE = date.fromisoformat(get("CONFIRMATION_DEADLINE", "2020-12-31"))
        # The deadline purge from the worker, once a day: off unless chosen, since it deletes without asking.
        self.PURGE_IN_WORKER = _flag(get("PURGE_IN_WORKER", "0"))
        # 三: the collection windows (start:end, comma-separated); later windows are announced separately.
        self.COLLECTION_WINDOWS = collection_windows(get("COLLECTION_WINDOWS", "2019-04-15:2019-06-30"))
        self.SECRET_KEY = get("SECRET_KEY") or read_or_create_key(self.STORAGE_DIR / "secret_key")
        # A key of its own for hashing ID numbers (tombstones): rotating the session key must not orphan them.
        self.ID_HASH_KEY = get("ID_HASH_KEY") or read_or_create_key(self.STORAGE_DIR / "id_hash_key")
        # The Ed25519 key that signs archival packages (created on first export; kjdms package-key shows it).
        self.PACKAGE_SIGNING_KEY_FILE = Path(get("PACKAGE_SIGNING_KEY_FILE")
                                             or self.STORAGE_DIR / "package_signing_key")
        # The reports to the Ministry of Finance generated from the report page (owner-only: full ID numbers).
        self.REPORT_DIR = Path(get("REPORT_DIR") or self.STORAGE_DIR / "reports")
        # Behind HTTPS, send the session cookie only over it.
        self.SECURE_COOKIES = _flag(get("SECURE_COOKIES", "0"))
        # Sessions end after this long without a request, and this long after signing in whatever happens;
        # applicants fill in long forms once a year, staff work on shared office machines.
        self.STAFF_SESSION_IDLE = timedelta(minutes=_positive(get, "STAFF_SESSION_IDLE_MINUTES", 30))
        self.STAFF_SESSION_LIFETIME = timedelta(hours=_positive(get, "STAFF_SESSION_HOURS", 8))
        self.APPLICANT_SESSION_IDLE = timedelta(minutes=_positive(get, "APPLICANT_SESSION_IDLE_MINUTES", 120))
        self.APPLICANT_SESSION_LIFETIME = timedelta(hours=_positive(get, "APPLICANT_SESSION_HOURS", 24))
        # Notices (services/notices.py): always in the site; by e-mail when an SMTP server is named.
        self.SMTP_HOST = get("SMTP_HOST", "") or ""
        self.SMTP_PORT = int(get("SMTP_PORT", 25))
        self.SMTP_USERNAME = get("SMTP_USERNAME", "") or ""
        self.SMTP_PASSWORD = get("SMTP_PASSWORD", "") or ""
        self.SMTP_SENDER = get("SMTP_SENDER", "kjdms@localhost")
        self.SMTP_STARTTLS = _flag(get("SMTP_STARTTLS", "0"))
        # By SMS through this gateway: `log` writes masked lines to the log (no real gateway here), `none` sends none.
        self.SMS_GATEWAY = get("SMS_GATEWAY", "log")
        # The site's address as people reach it, for the links in e-mails.
        self.SITE_URL = get("SITE_URL", "http://127.0.0.1:8000")
        # Reminders to legacy persons yet to confirm, this many days before the deadline (at most one a week).
        self.REMINDER_DAYS = reminder_days(get("REMINDER_DAYS", "30,14,7,3,1"))
        # A dossier waiting for review longer than this is reported to its city's administrators.
        self.ESCALATION_DAYS = int(_positive(get, "ESCALATION_DAYS", 10))
        # The reviewers' daily digest goes out at the first worker round after this hour, Beijing time.
        self.DIGEST_HOUR = int(get("DIGEST_HOUR", 8))
        self.TESTING = bool(overrides.get("TESTING", False))

    @property
    def max_request_bytes(self) -> int:
        """Return the largest request body accepted: the upload cap plus the form around the file."""
        return self.MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES

    def server_settings(self) -> dict:
        """Return waitress's settings: the body cap applies before the body is read, not after it is buffered."""
        # waitress refuses a body of its limit or more, Flask one over MAX_CONTENT_LENGTH: one byte apart, both
        # refuse the same bodies, and the site words waitress's refusals (serving.OversizedBodyTask).
        return {"max_request_body_size": self.max_request_bytes + 1}

    def flask_settings(self) -> dict:
        """Return the settings as Flask config keys."""
        return {
            "SECRET_KEY": self.SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": self.DATABASE_URL,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(self.DATABASE_URL),
            "MAX_CONTENT_LENGTH": self.max_request_bytes,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.SECURE_COOKIES,
            "TESTING": self.TESTING,
            "KJDMS": self,
        }


def engine_options(url: str) -> dict:
    """Return SQLAlchemy engine options suited to the database in url."""
    if url.startswith("sqlite"):
        # Seconds to wait on a locked database before giving up; WAL keeps readers unblocked. Writers take turns
        # at a lock file (sqlite_writer.py) rather than sleeping in SQLite's busy handler.
        return {"connect_args": {"timeout": 15, "factory": WriterTurnConnection}}
    return {"pool_pre_ping": True}
