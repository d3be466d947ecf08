"""Read in one query what a change to a dossier reads of it, instead of one lazy load per relation and document."""
from __future__ import annotations

from sqlalchemy import bindparam, inspect, select
from sqlalchemy.orm import joinedload, load_only

from ..models import Attachment, Dossier, Person, Region

# The region chain (the actor's roles), the documents (a guard's conditions, the next version's number,
# the revision), the person (the revision) and their account (a decision's notice). Three levels reach the
# top of the region tree.
CHANGE_READS = (joinedload(Dossier.region).joinedload(Region.parent).joinedload(Region.parent),
                joinedload(Dossier.person).joinedload(Person.user),
                joinedload(Dossier.attachments).joinedload(Attachment.versions))
# Built once: building the select and its cache key at every change cost more Python than running it.
DOSSIER_FOR_CHANGE = select(Dossier).options(*CHANGE_READS).where(Dossier.id == bindparam("dossier_id"))
# When the dossier's own columns are loaded (a transition has just read its version) only its id is selected again:
# 26 columns fewer for the driver to describe and the ORM to process on every row of the join.
RELATIONS_OF_DOSSIER = (select(Dossier).options(load_only(Dossier.id), *CHANGE_READS)
                        .where(Dossier.id == bindparam("dossier_id")))
COLUMNS = frozenset(column.key for column in Dossier.__mapper__.column_attrs)


def read_for_change(session, dossier_id: int) -> Dossier | None:
    """Return the dossier by id with everything load_for_change would add, in one statement (None if there is none)."""
    # For a request that reads a dossier to change it: the change then finds its relations loaded and reads nothing more.
    return session.execute(DOSSIER_FOR_CHANGE, {"dossier_id": dossier_id}).unique().scalar_one_or_none()


def load_for_change(session, dossier: Dossier) -> None:
    """Load dossier's region chain, person, account and documents with their versions, if any is not loaded yet."""
    state = inspect(dossier)
    if state.persistent and state.unloaded & {"region", "person", "attachments"}:
        # Loaded attributes are left as they are (lock_version included): only the missing ones are filled in.
        query = DOSSIER_FOR_CHANGE if state.unloaded & COLUMNS else RELATIONS_OF_DOSSIER
        # The id from the identity: reading dossier.id of an expired dossier would refresh it first, a statement more.
        session.execute(query, {"dossier_id": state.identity[0]}).unique().all()
