"""The concrete backends create_app chose, read through small accessors (as flaskr's get_db)."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from .blobs import BlobStore, LocalBlobStore
from .config import Config
from .messaging import LoggingSmsGateway, Mailer, SmsGateway, SmtpMailer
from .search import SearchIndex, WhooshSearchIndex
from .services.indexing import OutboxDrainer
from .workflow import WorkflowEngine


@dataclass
class Backends:
    """What one application instance runs on."""

    config: Config
    blobs: BlobStore
    workflow: WorkflowEngine
    index: SearchIndex
    drainer: OutboxDrainer
    mailer: Mailer | None = None
    sms: SmsGateway | None = None


def make_blob_store(config: Config) -> BlobStore:
    """Return the blob store named by KJDMS_BLOB_STORE."""
    factories = {"local": lambda: LocalBlobStore(config.BLOB_DIR), "s3": lambda: s3_blob_store(config)}
    if config.BLOB_STORE not in factories:
        raise RuntimeError(f"KJDMS_BLOB_STORE={config.BLOB_STORE!r}: known stores are {', '.join(factories)}")
    return factories[config.BLOB_STORE]()


def s3_blob_store(config: Config):
    """Return the S3 store the KJDMS_S3_* settings describe."""
    from .blobs.s3 import S3BlobStore

    if not config.S3_BUCKET:
        raise RuntimeError("KJDMS_BLOB_STORE=s3 needs KJDMS_S3_BUCKET (and KJDMS_S3_ENDPOINT_URL for a server not AWS)")
    return S3BlobStore.from_settings(endpoint_url=config.S3_ENDPOINT_URL, bucket=config.S3_BUCKET,
                                     prefix=config.S3_PREFIX, access_key=config.S3_ACCESS_KEY,
                                     secret_key=config.S3_SECRET_KEY, region=config.S3_REGION)


def make_search_index(config: Config) -> SearchIndex:
    """Return the search index named by KJDMS_SEARCH."""
    factories = {"whoosh": lambda: WhooshSearchIndex(config.INDEX_DIR), "postgres": lambda: postgres_search_index(config)}
    if config.SEARCH not in factories:
        raise RuntimeError(f"KJDMS_SEARCH={config.SEARCH!r}: known indexes are {', '.join(factories)}")
    return factories[config.SEARCH]()


def postgres_search_index(config: Config) -> SearchIndex:
    """Return the index in the instance's own PostgreSQL database, refusing any other database."""
    from .extensions import db
    from .search.postgres_index import PostgresSearchIndex

    if not config.DATABASE_URL.startswith("postgresql"):
        raise RuntimeError("KJDMS_SEARCH=postgres：检索索引存放在实例的 PostgreSQL 数据库中，"
                           f"但 KJDMS_DATABASE_URL 不是 PostgreSQL 数据库（{config.DATABASE_URL.split(':')[0]}）；"
                           "请改用 PostgreSQL，或设置 KJDMS_SEARCH=whoosh")
    return PostgresSearchIndex(lambda: db.engine)


def make_mailer(config: Config) -> Mailer | None:
    """Return the SMTP mailer KJDMS_SMTP_HOST names, or None: notices then stay in the site."""
    if not config.SMTP_HOST:
        return None
    return SmtpMailer(config.SMTP_HOST, config.SMTP_PORT, sender=config.SMTP_SENDER,
                      username=config.SMTP_USERNAME or None, password=config.SMTP_PASSWORD or None,
                      starttls=config.SMTP_STARTTLS)


def make_sms_gateway(config: Config) -> SmsGateway | None:
    """Return the SMS gateway named by KJDMS_SMS_GATEWAY (none: no text messages)."""
    factories = {"log": LoggingSmsGateway, "none": lambda: None}
    if config.SMS_GATEWAY not in factories:
        raise RuntimeError(f"KJDMS_SMS_GATEWAY={config.SMS_GATEWAY!r}: known gateways are {', '.join(factories)}")
    return factories[config.SMS_GATEWAY]()


def backends() -> Backends:
    """Return the current application's backends."""
    return current_app.extensions["kjdms"]


def get_blob_store() -> BlobStore:
    """Return the current application's blob store."""
    return backends().blobs


def get_workflow() -> WorkflowEngine:
    """Return the current application's dossier workflow."""
    return backends().workflow


def get_config() -> Config:
    """Return the current application's configuration."""
    return backends().config


def get_search_index() -> SearchIndex:
    """Return the current application's search index."""
    return backends().index


def get_drainer() -> OutboxDrainer:
    """Return the current application's outbox drainer."""
    return backends().drainer


def get_signing_key():
    """Return the instance's package-signing key (Ed25519), creating it on first use."""
    from .signing import read_or_create_signing_key

    return read_or_create_signing_key(get_config().PACKAGE_SIGNING_KEY_FILE)
