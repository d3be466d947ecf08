"""Dossiers written straight into the tables, with revisions back-dated: data for the statistics and the MoF report."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import delete, select

from kjdms.backends import get_drainer
from kjdms.extensions import db
from kjdms.local_time import local_today
from kjdms.models import Dossier, DossierRevision, Person, Region, WorkflowHistory, utcnow
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
    # 三's dates, in days before today (Beijing): the job started, the information changed.
    job_started_days_ago: int | None = None
    changed_days_ago: int | None = None
    # History rows: (days ago, the flagged item codes) of each rejection; the day of a submission.
    rejections: list = field(default_factory=list)
    submitted_days_ago: int | None = None
    # A working copy: (created days ago, its change date in days ago or None, first submitted days ago or None,
    # its rejections as above).
    change: tuple | None = None


def id_number_for(birth: date, serial: int) -> str:
    """Return a valid ID number for birth, unique by serial."""
    body = f"{211302 + serial // 1000:06d}{birth:%Y%m%d}{serial % 1000:03d}"
    return body + id_number_check_digit(body)


def _days_before(today: date, days: int | None) -> date | None:
    return None if days is None else today - timedelta(days=days)


def _add_history(dossier: Dossier, now, submitted_days_ago: int | None, rejections) -> None:
    """Add a submission and rejections to dossier's history, back-dated."""
    rows = [] if submitted_days_ago is None else [("submit", "draft", "submitted", submitted_days_ago, [])]
    rows += [("reject", "submitted", "rejected", days_ago, list(flagged)) for days_ago, flagged in rejections]
    for action, source, target, days_ago, flagged in rows:
        db.session.add(WorkflowHistory(dossier_id=dossier.id, action=action, from_state=source, to_state=target,
                                       actor_role="reviewer" if action == "reject" else "owner",
                                       comment="不符" if action == "reject" else None, flagged=flagged,
                                       created_at=now - timedelta(days=days_ago)))


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
    today = local_today()
    dossier.job_started_on = _days_before(today, spec.job_started_days_ago)
    dossier.information_changed_on = _days_before(today, spec.changed_days_ago)
    db.session.add(dossier)
    db.session.flush()
    _add_history(dossier, now, spec.submitted_days_ago, spec.rejections)
    if spec.change is not None:
        created, changed, submitted, rejections = spec.change
        copy = Dossier(person=person, baseline_id=dossier.id, state="submitted" if submitted is not None else "draft",
                       region_id=dossier.region_id, qualification_level=spec.qualification_level, job_types=[],
                       information_changed_on=_days_before(today, changed), created_at=now - timedelta(days=created),
                       state_changed_at=now - timedelta(days=created))
        db.session.add(copy)
        db.session.flush()
        _add_history(copy, now, submitted, rejections)
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


def fresh_data(specs, region_code: str | None, days_back: int):
    """Empty the tables and insert specs; return the region tree, the id of region_code (or None) and the day."""
    from tests.conftest import empty_tables
    from kjdms.services.statistics import region_tree

    empty_tables()
    for spec in specs:
        insert(spec)
    region_id = db.session.scalar(select(Region.id).where(Region.code == region_code)) if region_code else None
    return region_tree(db.session), region_id, local_today() - timedelta(days=days_back)
