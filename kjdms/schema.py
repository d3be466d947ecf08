"""Create or upgrade the database schema (Alembic migrations in kjdms/migrations)."""
from __future__ import annotations

from .extensions import db


def upgrade_schema() -> bool:
    """Create or upgrade the schema to the newest migration; return True if the database was new."""
    from flask_migrate import upgrade
    from sqlalchemy import inspect

    was_new = not inspect(db.engine).has_table("alembic_version")
    upgrade()
    return was_new
