"""Dossiers written straight into the tables, with revisions back-dated: data for the statistics and the MoF report."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import delete, select

from kjdms.backends import get_drainer
from kjdms.extensions import db
from kjdms.models import Dossier, DossierRevision, Person, Region, utcnow
from kjdms.services.revisions import snapshot_fields
from kjdms.validators import id_number_check_digit

_serial = itertools.count(1)
REGION_CODES = ("211302", "211303", "211382", "211300-BJ", "211300", "210100", "210200", None)


@dataclass
class Spec:
    """One dossier: its current content, how long ago it was created and its earlier revisions."""

    region: str | None = "211302"
    state: str = "approved"
    sex: str | None = "female"
    birth: date = date(1985, 5, 6)
    education: str | None = "bachelor"
    scope_category: str | None = "in_accounting_work"
    qualification_level: str = "junior"
    job_types: list = field(default_factory=lambda: ["cashier"])
    is_student: bool = False
    employer_name: str | None = "某单位"
    is_legacy: bool = False
    to_confirm: bool = False
    created_days_ago: int = 30
    # (days ago, state, region code, qualification level[, to_confirm]), oldest first; the current content is the
    # newest revision. to_confirm, when given, is the flag then (default: today's).
    revisions: list = field(default_factory=list)
    # A bulk import never changed since: no revision at all.
    bulk: bool = False


def id_number_for(birth: date, serial: int) -> str:
    """Return a valid ID number for birth, unique by serial."""
    body = f"{211302 + serial // 1000:06d}{birth:%Y%m%d}{serial % 1000:03d}"
    return body + id_number_check_digit(body)


def insert(spec: Spec) -> Dossier:
    """Write spec's person and dossier, then its back-dated revisions (or none for a bulk import)."""
    # Statistics read the tables, not the search index: leave the outbox to the worker.
    get_drainer().after_commit = False
    regions = {code: region_id for region_id, code in db.session.execute(select(Region.id, Region.code))}
    now = utcnow()
    serial = next(_serial)
    person = Person(id_number=id_number_for(spec.birth, serial), name=f"测试{serial}", sex=spec.sex,
                    birth_date=spec.birth, is_legacy=spec.is_legacy, created_at=now - timedelta(days=spec.created_days_ago))
    dossier = Dossier(person=person, state=spec.state, region_id=regions.get(spec.region), education=spec.education,
                      scope_category=spec.scope_category, qualification_level=spec.qualification_level,
                      job_types=list(spec.job_types), is_student=spec.is_student, employer_name=spec.employer_name,
                      to_confirm=spec.to_confirm, created_at=now - timedelta(days=spec.created_days_ago),
                      state_changed_at=now - timedelta(days=spec.created_days_ago), phone="13904211234")
    db.session.add(dossier)
    db.session.commit()
    if spec.bulk:
        db.session.execute(delete(DossierRevision).where(DossierRevision.dossier_id == dossier.id))
    else:
        current = snapshot_fields(dossier)
        for days_ago, state, region, level, *then in spec.revisions:
            fields = {**current, "region": region, "qualification_level": level}
            db.session.add(DossierRevision(dossier_id=dossier.id, recorded_at=now - timedelta(days=days_ago),
                                           state=state, fields=fields, attachments={}, is_legacy=spec.is_legacy,
                                           to_confirm=then[0] if then else spec.to_confirm))
    db.session.commit()
    return dossier
