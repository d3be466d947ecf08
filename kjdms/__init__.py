"""kjdms: accounting-personnel dossiers with workflow (辽财会〔2019〕116号, 朝财会〔2019〕127号)."""
from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_bootstrap import Bootstrap5

from .config import PROJECT_ROOT, Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def create_app(config: Config | None = None) -> Flask:
    """Build the application: config, extensions, backends, blueprints, commands."""
    from . import cli, models  # noqa: F401  (models registers the tables on db.metadata)
    from .backends import Backends, make_blob_store
    from .extensions import csrf, db, login_manager, migrate
    from .services import build_workflow
    from .views import applicant, auth, files, filters, home, review

    config = config or Config()
    config.STORAGE_DIR.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"))
    app.config.update(config.flask_settings())

    db.init_app(app)
    # Batch mode lets Alembic alter SQLite tables by copying them.
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    # Bootstrap's files come from the installed package: the site must work with no internet.
    app.config["BOOTSTRAP_SERVE_LOCAL"] = True
    Bootstrap5(app)

    @login_manager.user_loader
    def load_user(user_id):
        user = db.session.get(models.User, int(user_id))
        return user if user is not None and user.is_active else None

    app.extensions["kjdms"] = Backends(
        config=config, blobs=make_blob_store(config), workflow=build_workflow(config.WORKFLOW_FILE)
    )
    for module in (home, filters, auth, applicant, files, review):
        app.register_blueprint(module.bp)
    for code in home.ERRORS:
        app.register_error_handler(code, home.error_page)
    cli.register(app)
    return app
