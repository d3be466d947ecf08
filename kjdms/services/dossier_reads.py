"""Read in one query what a change to a dossier reads of it, instead of one lazy load per relation and document."""
from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.orm import joinedload

from ..models import Attachment, Dossier, Person, Region

# The region chain (the actor's roles), the documents (a guard's conditions, the next version's number,
# the revision), the person (the revision) and their account (a decision's notice). Three levels reach the
# top of the region tree.
CHANGE_READS = (joinedload(Dossier.region).joinedload(Region.parent).joinedload(Region.parent),
                joinedload(Dossier.person).joinedload(Person.user),
                joinedload(Dossier.attachments).joinedload(Attachment.versions))


def load_for_change(session, dossier: Dossier) -> None:
    """Load dossier's region chain, person, account and documents with their versions, if any is not loaded yet."""
    state = inspect(dossier)
    if state.persistent and state.unloaded & {"region", "person", "attachments"}:
        # Loaded attributes are left as they are (lock_version included): only the missing ones are filled in.
        session.execute(select(Dossier).where(Dossier.id == dossier.id).options(*CHANGE_READS)).unique().all()
