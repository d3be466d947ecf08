"""What a downstream system may learn about a person it names (name and ID number): the minimum, and only in scope.

A person is found only when the ID number and the name both match and the dossier's region lies in the client's
regions; anything else (no such person, another name, another city) is the same "not found". Live persons are
found by the ID number's own unique index; a purged person's ID number survives only as the keyed hash on the
tombstone (services/identity.py), so they are found by that hash, with the keyed hash of the name beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from ..local_time import local_date
from ..models import ApiClient, Dossier, Person, Region, Tombstone, WorkflowHistory, as_utc
from ..names import normalize_name
from ..vocabulary import APPROVED_STATE, PURGED_STATE
from .credit import live_person_ids
from .identity import id_number_hash, name_hash
from .staff import subtree_ids

NOT_LEGACY, PENDING, CONFIRMED = "not_legacy", "pending", "confirmed"


@dataclass(frozen=True)
class PersonStatus:
    """The answer about one person; found False carries nothing else."""

    found: bool
    collected: bool = False
    state: str | None = None
    region_code: str | None = None
    region_name: str | None = None
    qualification_level: str | None = None
    last_approved_on: date | None = None
    # None when the client may not know it.
    live_credit_finding: bool | None = None
    legacy_confirmation: str | None = None


NOT_FOUND = PersonStatus(found=False)


def _legacy(person: Person, dossier: Dossier) -> str:
    if not person.is_legacy:
        return NOT_LEGACY
    return PENDING if dossier.to_confirm else CONFIRMED


def look_up(session, client: ApiClient, queries: list[tuple[str, str]], *, id_hash_key: str) -> list[PersonStatus]:
    """Answer each (name, normalised ID number) in order, in a fixed number of queries whatever their count."""
    allowed_regions, _ = subtree_ids(session, [region.id for region in client.regions])
    numbers = sorted({id_number for _, id_number in queries})
    live = {person.id_number: (person, dossier) for person, dossier in session.execute(
        select(Person, Dossier).join(Dossier, (Dossier.person_id == Person.id) & Dossier.baseline_id.is_(None))
        .where(Person.id_number.in_(numbers)))}
    # Every number is asked about here, live or not: a lookup that skipped this query for registered numbers
    # would answer sooner for a number registered outside the client's regions than for one nobody holds.
    hashes = {id_number_hash(id_hash_key, number): number for number in numbers}
    purged = {}
    for tombstone, person, dossier in session.execute(
            select(Tombstone, Person, Dossier).join(Dossier, Dossier.id == Tombstone.dossier_id)
            .join(Person, Person.id == Dossier.person_id).where(Tombstone.id_number_hash.in_(list(hashes)))):
        if hashes[tombstone.id_number_hash] not in live:
            purged[hashes[tombstone.id_number_hash]] = (tombstone, person, dossier)
    matched: dict[int, tuple[Person, Dossier]] = {}
    answers: list[tuple[Person, Dossier] | None] = []
    for name, number in queries:
        hit = None
        if number in live:
            person, dossier = live[number]
            hit = (person, dossier) if normalize_name(person.name) == normalize_name(name) else None
        elif number in purged:
            tombstone, person, dossier = purged[number]
            hit = (person, dossier) if tombstone.name_hash and tombstone.name_hash == name_hash(id_hash_key, name) else None
        if hit is not None and hit[1].region_id not in allowed_regions:
            hit = None  # another city's person is exactly as unknown as nobody
        answers.append(hit)
        if hit is not None:
            matched[hit[1].id] = hit
    approvals = dict(session.execute(
        select(WorkflowHistory.dossier_id, func.max(WorkflowHistory.created_at))
        .where(WorkflowHistory.dossier_id.in_(list(matched)), WorkflowHistory.to_state == APPROVED_STATE)
        .group_by(WorkflowHistory.dossier_id)).all()) if matched else {}
    regions = {region.id: region for region in session.scalars(
        select(Region).where(Region.id.in_({dossier.region_id for _, dossier in matched.values()})))}
    credit = live_person_ids(session, [person.id for person, _ in matched.values()]) if client.may_see_credit else set()
    result = []
    for hit in answers:
        if hit is None:
            result.append(NOT_FOUND)
            continue
        person, dossier = hit
        approved = approvals.get(dossier.id)
        region = regions.get(dossier.region_id)
        result.append(PersonStatus(
            found=True, collected=dossier.state == APPROVED_STATE, state=dossier.state,
            region_code=region.code if region else None, region_name=region.name if region else None,
            qualification_level=None if dossier.state == PURGED_STATE else dossier.qualification_level,
            last_approved_on=local_date(as_utc(approved)) if approved else None,
            live_credit_finding=(person.id in credit) if client.may_see_credit else None,
            legacy_confirmation=_legacy(person, dossier),
        ))
    return result
