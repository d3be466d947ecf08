"""The report to the Ministry of Finance (财办会〔2018〕28号): person-level national data items, full or incremental.

Streams: persons are read in id order in batches and written line by line, so memory stays bounded. Two runs
for the same as-of date and base write the same bytes: nothing in the files depends on when they were written.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from ..local_time import end_of_day, local_date, local_today
from ..models import Dossier, DossierRevision, Person, Region, Tombstone, WorkflowHistory, as_utc
from . import audit
from .archive import file_entry, owner_only, write_folder_manifest
from .identity import id_number_hash

FORMAT = "kjdms-mof-report"
FORMAT_VERSION = 1
BATCH = 2000
FIELDS = ("change", "id_number", "name", "sex", "birth_date", "education", "qualification_level",
          "qualification_certificate_number", "scope_category", "job_types", "employer_name", "employer_uscc",
          "employer_org_code", "region_code", "phone", "state", "registered_on", "approved_on", "changed_on",
          "is_legacy")
PERSONS, PERSONS_CSV, REMOVED = "persons.jsonl", "persons.csv", "removed.jsonl"


class ReportRefused(ValueError):
    """The report cannot be made as asked; the message says why in Chinese."""


@dataclass(frozen=True)
class ReportResult:
    """Where a report was written and what it holds."""

    report_id: str
    folder: Path
    counts: dict


def report_id_for(day: date, since: str | None) -> str:
    """Return the report's id: its as-of date, and the report it follows for an incremental one."""
    return f"MOF-{day:%Y%m%d}" + (f"-SINCE-{since}" if since else "")


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# The columns a person's line is made of, read as plain rows (no ORM objects: a report reads every person).
COLUMNS = (Dossier.id, Person.id_number, Person.name, Person.sex, Person.birth_date, Dossier.education,
           Dossier.qualification_level, Dossier.qualification_certificate_number, Dossier.scope_category,
           Dossier.job_types, Dossier.employer_name, Dossier.employer_uscc, Dossier.employer_org_code,
           Region.code, Dossier.phone, Dossier.state, Dossier.created_at, Dossier.updated_at, Person.is_legacy)


def person_record(values, approved_on: date | None) -> dict:
    """Return one person's national data items from the values of COLUMNS by name (codes as in docs/mof-report.md)."""
    birth_date = values["birth_date"]
    return {
        "id_number": values["id_number"], "name": values["name"], "sex": values["sex"], "birth_date": _iso(birth_date),
        **{name: values[name] for name in ("education", "qualification_level", "qualification_certificate_number",
                                           "scope_category", "employer_name", "employer_uscc", "employer_org_code",
                                           "phone", "state")},
        "job_types": sorted(values["job_types"] or []), "region_code": values["code"],
        "registered_on": _iso(local_date(values["created_at"])), "approved_on": _iso(approved_on),
        "changed_on": _iso(local_date(values["updated_at"])), "is_legacy": bool(values["is_legacy"]),
    }


def current_records(session, day: date, reported_states: tuple[str, ...], approved_state: str):
    """Yield (id_number, record) of every person whose dossier was in a reported state at the end of day.

    Today's report reads the dossiers as they stand; a past day's reads each dossier's last revision before the
    cutoff, as the statistics and the archive do (a dossier never revised: its current content; one revised only
    later: not reported, its content of that day is not recorded).
    """
    cutoff, last = end_of_day(day), 0
    past = day < local_today()
    while True:
        query = (select(*COLUMNS).join(Person, Person.id == Dossier.person_id)
                 .outerjoin(Region, Region.id == Dossier.region_id)
                 .where(Dossier.baseline_id.is_(None), Dossier.id > last, Dossier.created_at < cutoff)
                 .order_by(Dossier.id).limit(BATCH))
        batch = session.execute(query if past else query.where(Dossier.state.in_(reported_states))).all()
        if not batch:
            return
        ids = [row[0] for row in batch]
        # The last approval before the cutoff, for the whole batch in one query.
        approvals = dict(session.execute(
            select(WorkflowHistory.dossier_id, func.max(WorkflowHistory.created_at))
            .where(WorkflowHistory.dossier_id.in_(ids), WorkflowHistory.to_state == approved_state,
                   WorkflowHistory.created_at < cutoff)
            .group_by(WorkflowHistory.dossier_id)).all())
        then, revised = _revisions_then(session, ids, cutoff) if past else ({}, set())
        for row in batch:
            values = row._mapping
            if row[0] in revised:
                if row[0] not in then:
                    continue
                values = _values_then(values, *then[row[0]])
            if values["id_number"] and values["state"] in reported_states:
                approved = approvals.get(row[0])
                yield values["id_number"], person_record(values, local_date(as_utc(approved)) if approved else None)
        last = ids[-1]


def _revisions_then(session, ids: list[int], cutoff) -> tuple[dict, set]:
    """Return dossier id → (state, fields, is_legacy, recorded_at) of its last revision before cutoff, and the ids
    of the dossiers with any revision at all."""
    order = func.row_number().over(partition_by=DossierRevision.dossier_id,
                                   order_by=(DossierRevision.recorded_at.desc(), DossierRevision.id.desc()))
    ranked = (select(DossierRevision.dossier_id, DossierRevision.state, DossierRevision.fields,
                     DossierRevision.is_legacy, DossierRevision.recorded_at, order.label("rank"))
              .where(DossierRevision.dossier_id.in_(ids), DossierRevision.recorded_at < cutoff).subquery())
    then = {dossier_id: rest for dossier_id, *rest, _ in session.execute(select(ranked).where(ranked.c.rank == 1))}
    revised = set(session.scalars(select(DossierRevision.dossier_id).where(DossierRevision.dossier_id.in_(ids))
                                  .distinct()))
    return then, revised


def _values_then(values, state: str, fields: dict, is_legacy: bool, recorded_at) -> dict:
    """Return values as a revision recorded them (the ID number and the registration time never change)."""
    birth = fields.get("birth_date")
    return {**{name: fields.get(name, values[name]) for name in values.keys()}, "id_number": values["id_number"],
            "created_at": values["created_at"], "birth_date": date.fromisoformat(birth) if birth else None,
            "code": fields.get("region"), "state": state, "updated_at": recorded_at, "is_legacy": is_legacy}


def _line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def _base_digests(folder: Path) -> dict[str, str]:
    """Return id_number → sha256 of the person's data in a previous report (its full state after it)."""
    digests = {}
    with open(folder / "state.jsonl", encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            digests[entry["id_number"]] = entry["sha256"]
    return digests


def count_reported(session, day: date, reported_states: tuple[str, ...]) -> int:
    """Return how many dossiers the report for day reads (the progress bar's whole)."""
    return session.scalar(select(func.count()).select_from(Dossier).where(
        Dossier.baseline_id.is_(None), Dossier.created_at < end_of_day(day), Dossier.state.in_(reported_states)))


def write_report(session, *, day: date, out: Path, signing_key, id_hash_key: str, reported_states: tuple[str, ...],
                 approved_state: str, since: str | None = None, actor=None, progress=None) -> ReportResult:
    """Write the report for the end of day into out/<report id>/ and audit it (the caller commits).

    The files are written in a staging folder beside it and moved into place whole at the end, so a crash
    never leaves a half report under the report's name. progress(persons written) is called every batch.
    """
    report_id = report_id_for(day, since)
    base = None
    if since is not None:
        base_folder = out / since
        if not (base_folder / "state.jsonl").is_file():
            raise ReportRefused(f"找不到作为基准的报告 {since}（应在 {base_folder}）")
        base = _base_digests(base_folder)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = out / report_id
    folder = Path(tempfile.mkdtemp(prefix=f".{report_id}.", dir=out))  # mode 0700 from the start
    try:
        counts = {"persons": 0, "added": 0, "changed": 0, "unchanged": 0, "removed": 0}
        with owner_only(folder / PERSONS) as persons, owner_only(folder / PERSONS_CSV) as table, \
                owner_only(folder / "state.jsonl") as state:
            text = io.TextIOWrapper(table, encoding="utf-8-sig", newline="")
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(FIELDS)
            seen = set()
            for id_number, record in current_records(session, day, reported_states, approved_state):
                digest = hashlib.sha256(_line(record)).hexdigest()
                state.write(_line({"id_number": id_number, "sha256": digest}))
                counts["persons"] += 1
                if progress is not None and counts["persons"] % BATCH == 0:
                    progress(counts["persons"])
                seen.add(id_number) if base is not None else None
                if base is None:
                    change = "full"
                elif id_number not in base:
                    change = "added"
                elif base[id_number] != digest:
                    change = "changed"
                else:
                    counts["unchanged"] += 1
                    continue
                counts[change if change != "full" else "added"] += 1
                row = {"change": change, **record}
                persons.write(_line(row))
                writer.writerow(["、".join(v) if isinstance(v, list) else ("" if v is None else str(v).lower()
                                 if isinstance(v, bool) else v) for v in (row[name] for name in FIELDS)])
            text.flush()
            text.detach()
        with owner_only(folder / REMOVED) as removed:
            for id_number in sorted(set(base or ()) - seen):
                tomb = session.scalar(select(Tombstone.purged_at).where(
                    Tombstone.id_number_hash == id_number_hash(id_hash_key, id_number)))
                removed.write(_line({"change": "removed", "id_number": id_number,
                                     "removed_on": _iso(local_date(tomb)) if tomb else None}))
                counts["removed"] += 1
        files = [file_entry(folder, folder / name) for name in (PERSONS, PERSONS_CSV, REMOVED, "state.jsonl")]
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "report_id": report_id,
                    "as_of": day.isoformat(), "kind": "incremental" if since else "full", "follows": since,
                    "counts": counts, "files": files, "schema": "docs/mof-report.schema.json"}
        write_folder_manifest(folder, manifest, signing_key)
        _move_into_place(folder, final)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a crash leaves nothing half written behind
        raise
    audit.record(session, actor, "mof_report.generate", "mof_report", None, report_id=report_id,
                 as_of=day.isoformat(), follows=since, counts=counts)
    return ReportResult(report_id, final, counts)


def _move_into_place(staging: Path, final: Path) -> None:
    """Replace final with the complete staging folder (a rerun for the same day and base writes the same bytes)."""
    if final.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
        os.replace(final, retired / final.name)
        os.replace(staging, final)
        shutil.rmtree(retired)
    else:
        os.replace(staging, final)


def reported_states(workflow) -> tuple[str, ...]:
    """Return the approved state and those an approved dossier moves on to except the purge (archived)."""
    from .statistics import workflow_names

    names = workflow_names(workflow)
    later = {t.destination for t in workflow.definition.transitions.values()
             if names.approved in t.sources and t.destination != names.purged}
    return tuple(sorted({names.approved, *later}))
