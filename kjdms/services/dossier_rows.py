"""A dossier's row written with a Core statement under the ORM's own version check, and the object kept in step."""
from __future__ import annotations

from sqlalchemy import bindparam, inspect, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from ..models import Dossier

dossiers = Dossier.__table__


def versioned_update(*columns: str):
    """Return an UPDATE of columns for dossier_id matching only its read_version; its parameters: update_params."""
    # Optimistic locking as the ORM's version_id_col does it: no row matched means someone else changed the dossier.
    # SQLAlchemy reserves a column's own name as a bound name in SET, hence the prefix.
    new_values = {name: bindparam(f"new_{name}") for name in columns} | {"lock_version": bindparam("next_version")}
    return (update(dossiers)
            .where(dossiers.c.id == bindparam("dossier_id"), dossiers.c.lock_version == bindparam("read_version"))
            .values(new_values))


def update_params(dossier: Dossier, values: dict) -> dict:
    """Return the parameters of a versioned_update that writes values to dossier's row."""
    return {"dossier_id": dossier.id, "read_version": dossier.lock_version, "next_version": dossier.lock_version + 1,
            **{f"new_{name}": value for name, value in values.items()}}


def stale(dossier: Dossier) -> StaleDataError:
    """Return the error the ORM raises when dossier's stored version is no longer the one read."""
    # services/transaction.committing turns it into a ConflictError.
    return StaleDataError(f"UPDATE of dossier {dossier.id} expected version {dossier.lock_version}: 0 rows matched")


def mark_written(session, dossier: Dossier, values: dict) -> None:
    """Make dossier match the row a versioned_update wrote with values, so that no flush writes them again."""
    for name, value in {**values, "lock_version": dossier.lock_version + 1}.items():
        set_committed_value(dossier, name, value)
    state = inspect(dossier)
    if not state.committed_state:
        # Nothing else pending on it: mark it clean, as a flush would, so that the commit's flush skips it
        # (a dirty object without changes still costs the unit of work its sorting and comparing).
        state._commit_all(state.dict, session.identity_map)
