"""Create or upgrade the database schema (Alembic migrations in kjdms/migrations)."""
from __future__ import annotations

from .extensions import db


def upgrade_schema(revision: str = "head") -> bool:
    """Create or upgrade the schema to revision (the newest by default); return True if the database was new."""
    from flask_migrate import upgrade
    from sqlalchemy import inspect

    was_new = not inspect(db.engine).has_table("alembic_version")
    upgrade(revision=revision)
    return was_new
