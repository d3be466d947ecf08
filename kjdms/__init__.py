"""kjdms: accounting-personnel dossiers with workflow (辽财会〔2019〕116号, 朝财会〔2019〕127号)."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, has_app_context
from flask import session as flask_session
from flask_bootstrap import Bootstrap5
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from .config import PROJECT_ROOT, Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def create_app(config: Config | None = None) -> Flask:
    """Build the application: config, extensions, backends, change tracking, blueprints, back office, commands."""
    from . import commands, models  # noqa: F401  (models registers the tables on db.metadata)
    from .admin import init_admin
    from .api import init_api
    from .api.errors import HTTP_ERRORS, json_or
    from .backends import Backends, get_drainer, make_blob_store, make_mailer, make_search_index, make_sms_gateway
    from .extensions import csrf, db, login_manager, migrate
    from .request_body import StagedUploadRequest
    from .services import build_workflow
    from .services import notices as notice_service
    from .services import audit_chain, region_tree, sessions  # noqa: F401  (audit_chain refuses changes, links inserts)
    from .services.change_tracking import install_change_tracking
    from .services.indexing import OutboxDrainer
    from .views import applicant, archive, auth, credit, files, filters, home, notices, reports, review, search, stats

    config = config or Config()
    config.STORAGE_DIR.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"), static_folder=str(PROJECT_ROOT / "static"))
    app.request_class = StagedUploadRequest
    app.config.update(config.flask_settings())
    # The API answers in Chinese: as UTF-8 text a person can read in a log or curl, not as \u escapes.
    app.json.ensure_ascii = False

    db.init_app(app)
    # Batch mode lets Alembic alter SQLite tables by copying them.
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    # Bootstrap's files come from the installed package: the site must work with no internet.
    app.config["BOOTSTRAP_SERVE_LOCAL"] = True
    Bootstrap5(app)

    lifetimes = sessions.Lifetimes(config.STAFF_SESSION_IDLE, config.STAFF_SESSION_LIFETIME,
                                   config.APPLICANT_SESSION_IDLE, config.APPLICANT_SESSION_LIFETIME)

    # Every staff page asks for the user's roles (the decorators, the navigation) and every page shows the unread
    # notices: read both with the user, one statement. Built once: building the select and its cache key on every
    # request cost more than running it.
    user_with_roles = (select(models.User, notice_service.UNREAD_COUNT_OF_USER)
                       .options(joinedload(models.User.role_assignments)).where(models.User.id == bindparam("id")))

    @login_manager.user_loader
    def load_user(user_id):
        user, unread = db.session.execute(user_with_roles, {"id": int(user_id)}).unique().one_or_none() or (None, 0)
        if user is None or not sessions.session_is_current(flask_session, user, lifetimes):
            flask_session.clear()  # ended: a stale cookie must not keep a user id or pending state
            return None
        notices.remember_unread_count(unread)
        return user

    index = make_search_index(config)
    app.extensions["kjdms"] = Backends(
        config=config, blobs=make_blob_store(config), workflow=build_workflow(config.WORKFLOW_FILE),
        index=index, drainer=OutboxDrainer(lambda: db.engine, index, config.ID_HASH_KEY,
                                           after_commit=config.INDEX_AFTER_COMMIT),
        mailer=make_mailer(config), sms=make_sms_gateway(config),
    )
    # Every commit through db.session queues index outbox rows and writes dossier revisions for the
    # dossiers it changed: services/change_tracking.py (installed once per process; each commit wakes
    # the drainer of the application it ran in).
    install_change_tracking(db.session, lambda: get_drainer().notify() if has_app_context() else None)
    # A flush that changes a password, disables a user or removes a role ends that user's sessions.
    sessions.install_revocation(db.session)
    # A flush that changes a region gives the tree a new version: every process rereads its copy (region_tree.py).
    region_tree.install_versioning(db.session)
    for module in (home, filters, auth, applicant, files, review, search, archive, credit, stats, reports, notices):
        app.register_blueprint(module.bp)
    init_api(app)
    # Under /api/ every error is JSON (api/errors.py); elsewhere the pages' own, or Flask's where there is none.
    for code in sorted(set(home.ERRORS) | set(HTTP_ERRORS)):
        app.register_error_handler(code, json_or(home.error_page if code in home.ERRORS else None))
    init_admin(app)
    commands.register(app)
    return app
