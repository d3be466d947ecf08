"""The report to the Ministry of Finance (财办会〔2018〕28号): person-level national data items, full or incremental.

Streams: one query reads the persons in dossier order, in one snapshot of the database on a connection of its own (a
server-side cursor on PostgreSQL), and each batch of BATCH is written, hashed and compared with the previous report
before the next is read, so memory stays bounded however many persons there are. Two runs for the same as-of date
and base write the same bytes: nothing in the files depends on when they were written.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterator

from sqlalchemy import func, select

from ..local_time import end_of_day, local_date, local_today
from ..models import Dossier, DossierRevision, Person, Region, Tombstone, WorkflowHistory
from . import audit
from .archive import DigestingWriter, owner_only, write_folder_manifest
from .identity import id_number_hash
from .report_base import PreviousReport, previous_report
from .transaction import read_snapshot

FORMAT = "kjdms-mof-report"
FORMAT_VERSION = 1
BATCH = 2000
FIELDS = ("change", "id_number", "name", "sex", "birth_date", "education", "qualification_level",
          "qualification_certificate_number", "scope_category", "job_types", "employer_name", "employer_uscc",
          "employer_org_code", "region_code", "phone", "state", "registered_on", "approved_on", "changed_on",
          "is_legacy")
PERSONS, PERSONS_CSV, REMOVED, STATE = "persons.jsonl", "persons.csv", "removed.jsonl", "state.jsonl"
SCRATCH = ".base.sqlite3"  # the previous report's fingerprints while an incremental one is written (report_base.py)
JOB_TYPES_COLUMN, IS_LEGACY_COLUMN = FIELDS.index("job_types"), FIELDS.index("is_legacy")
# A record's keys are sorted and "change" sorts just before "changed_on": a line gets its change inserted there.
CHANGE_BEFORE = '"changed_on":'


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


def _records_query(day: date, reported_states: tuple[str, ...], approved_state: str, past: bool):
    """Return the query of COLUMNS and the last approval before the end of day, of every candidate in dossier order."""
    cutoff = end_of_day(day)
    approved_at = (select(func.max(WorkflowHistory.created_at))
                   .where(WorkflowHistory.dossier_id == Dossier.id, WorkflowHistory.to_state == approved_state,
                          WorkflowHistory.created_at < cutoff)
                   .scalar_subquery().label("approved_at"))
    query = (select(*COLUMNS, approved_at).join(Person, Person.id == Dossier.person_id)
             .outerjoin(Region, Region.id == Dossier.region_id)
             .where(Dossier.baseline_id.is_(None), Dossier.created_at < cutoff).order_by(Dossier.id))
    # A past day's state is its revision's: any dossier that existed then may have been reported.
    return query if past else query.where(Dossier.state.in_(reported_states))


def current_records(connection, day: date, reported_states: tuple[str, ...],
                    approved_state: str) -> Iterator[list[tuple[str, dict]]]:
    """Yield every person whose dossier was in a reported state at the end of day, a batch of (id_number, record)
    at a time, in dossier order (a batch may be empty).

    Today's report reads the dossiers as they stand; a past day's reads each dossier's last revision before the
    cutoff, as the statistics and the archive do (a dossier never revised: its current content; one revised only
    later: not reported, its content of that day is not recorded).
    """
    cutoff, past = end_of_day(day), day < local_today()
    rows = connection.execution_options(stream_results=True, yield_per=BATCH).execute(
        _records_query(day, reported_states, approved_state, past))
    for batch in rows.partitions():
        then, revised = _revisions_then(connection, [row[0] for row in batch], cutoff) if past else ({}, set())
        records = []
        for row in batch:
            values = row._mapping
            if row[0] in revised:
                if row[0] not in then:
                    continue
                values = _values_then(values, *then[row[0]])
            if values["id_number"] and values["state"] in reported_states:
                approved = values["approved_at"]
                records.append((values["id_number"], person_record(values, local_date(approved) if approved else None)))
        yield records


def _revisions_then(connection, ids: list[int], cutoff) -> tuple[dict, set]:
    """Return dossier id → (state, fields, is_legacy, recorded_at) of its last revision before cutoff, and the ids
    of the dossiers with any revision at all."""
    order = func.row_number().over(partition_by=DossierRevision.dossier_id,
                                   order_by=(DossierRevision.recorded_at.desc(), DossierRevision.id.desc()))
    ranked = (select(DossierRevision.dossier_id, DossierRevision.state, DossierRevision.fields,
                     DossierRevision.is_legacy, DossierRevision.recorded_at, order.label("rank"))
              .where(DossierRevision.dossier_id.in_(ids), DossierRevision.recorded_at < cutoff).subquery())
    then = {dossier_id: rest for dossier_id, *rest, _ in connection.execute(select(ranked).where(ranked.c.rank == 1))}
    revised = set(connection.scalars(select(DossierRevision.dossier_id).where(DossierRevision.dossier_id.in_(ids))
                                     .distinct()))
    return then, revised


def _values_then(values, state: str, fields: dict, is_legacy: bool, recorded_at) -> dict:
    """Return values as a revision recorded them (the ID number and the registration time never change)."""
    birth = fields.get("birth_date")
    return {**{name: fields.get(name, values[name]) for name in values.keys()}, "id_number": values["id_number"],
            "created_at": values["created_at"], "birth_date": date.fromisoformat(birth) if birth else None,
            "code": fields.get("region"), "state": state, "updated_at": recorded_at, "is_legacy": is_legacy,
            "approved_at": values["approved_at"]}


def _text(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _line(record: dict) -> bytes:
    return (_text(record) + "\n").encode("utf-8")


def with_change(text: str, change: str) -> str:
    """Return the line of {"change": change, **record} from the text of record (one encoding of it, not two)."""
    at = text.index(CHANGE_BEFORE)
    return f'{text[:at]}"change":"{change}",{text[at:]}\n'


def _csv_row(change: str, record: dict) -> list:
    """Return the CSV cells of a line: job types joined by 、, true/false, empty for none (csv writes None so)."""
    row = [change, *(record[name] for name in FIELDS[1:])]
    row[JOB_TYPES_COLUMN] = "、".join(row[JOB_TYPES_COLUMN])
    row[IS_LEGACY_COLUMN] = "true" if row[IS_LEGACY_COLUMN] else "false"
    return row


def _csv_text(rows: list[list]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(rows)
    return text.getvalue()


def _change(known: dict | None, id_number: str, digest: str) -> str | None:
    """Return a person's change since the base (full without one), None when unchanged."""
    if known is None:
        return "full"
    previous = known.get(id_number)
    return "added" if previous is None else "changed" if previous != digest else None


def count_reported(session, day: date, reported_states: tuple[str, ...]) -> int:
    """Return how many dossiers the report for day reads (the progress bar's whole)."""
    return session.scalar(select(func.count()).select_from(Dossier).where(
        Dossier.baseline_id.is_(None), Dossier.created_at < end_of_day(day), Dossier.state.in_(reported_states)))


def _write_persons(folder: Path, batches, base: PreviousReport | None, counts: dict, progress) -> list[dict]:
    """Write persons.jsonl, persons.csv and state.jsonl from batches of (id_number, record); return their entries."""
    with owner_only(folder / PERSONS) as persons_file, owner_only(folder / PERSONS_CSV) as table_file, \
            owner_only(folder / STATE) as state_file:
        persons, table = DigestingWriter(persons_file, PERSONS), DigestingWriter(table_file, PERSONS_CSV)
        state = DigestingWriter(state_file, STATE)
        table.write(_csv_text([list(FIELDS)]).encode("utf-8-sig"))
        for batch in batches:
            known = base.digests([id_number for id_number, _ in batch]) if base is not None else None
            lines, rows, states = [], [], []
            for id_number, record in batch:
                text = _text(record)
                digest = hashlib.sha256((text + "\n").encode("utf-8")).hexdigest()
                states.append(_line({"id_number": id_number, "sha256": digest}))
                change = _change(known, id_number, digest)
                if change is None:
                    counts["unchanged"] += 1
                    continue
                counts["added" if change == "full" else change] += 1
                lines.append(with_change(text, change))
                rows.append(_csv_row(change, record))
            counts["persons"] += len(batch)
            persons.write("".join(lines).encode("utf-8"))
            table.write(_csv_text(rows).encode("utf-8"))
            state.write(b"".join(states))
            if progress is not None and batch:
                progress(counts["persons"])
        return [persons.entry(), table.entry(), state.entry()]


def _write_removed(connection, folder: Path, base: PreviousReport | None, id_hash_key: str, counts: dict) -> dict:
    """Write removed.jsonl: the base's persons no longer reported, in ID-number order; return its entry."""
    with owner_only(folder / REMOVED) as target:
        removed = DigestingWriter(target, REMOVED)
        for id_numbers in base.unseen(BATCH) if base is not None else ():
            purged = _purge_dates(connection, id_numbers, id_hash_key)
            removed.write(b"".join(_line({"change": "removed", "id_number": id_number,
                                          "removed_on": _iso(purged.get(id_number))}) for id_number in id_numbers))
            counts["removed"] += len(id_numbers)
        return removed.entry()


def _purge_dates(connection, id_numbers: list[str], id_hash_key: str) -> dict[str, date]:
    """Return the Beijing date each of id_numbers was last purged, for those purged (a tombstone keeps a keyed hash)."""
    hashes = {id_number_hash(id_hash_key, id_number): id_number for id_number in id_numbers}
    last = connection.execute(select(Tombstone.id_number_hash, func.max(Tombstone.purged_at))
                              .where(Tombstone.id_number_hash.in_(list(hashes))).group_by(Tombstone.id_number_hash))
    return {hashes[hashed]: local_date(purged_at) for hashed, purged_at in last}


def write_report(session, *, day: date, out: Path, signing_key, id_hash_key: str, reported_states: tuple[str, ...],
                 approved_state: str, since: str | None = None, actor=None, progress=None) -> ReportResult:
    """Write the report for the end of day into out/<report id>/ and audit it (the caller commits).

    The database is read in one snapshot on a connection of its own, so the report is of one instant even while
    people keep working. The files are written in a staging folder beside it and moved into place whole at the end,
    so a crash never leaves a half report under the report's name. progress(persons written) is called every batch.
    """
    report_id = report_id_for(day, since)
    base_state = None
    if since is not None:
        base_state = out / since / STATE
        if not base_state.is_file():
            raise ReportRefused(f"找不到作为基准的报告 {since}（应在 {out / since}）")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = out / report_id
    folder = Path(tempfile.mkdtemp(prefix=f".{report_id}.", dir=out))  # mode 0700 from the start
    try:
        counts = {"persons": 0, "added": 0, "changed": 0, "unchanged": 0, "removed": 0}
        with read_snapshot(session.get_bind()) as connection, \
                (previous_report(base_state, folder / SCRATCH, BATCH) if base_state else nullcontext()) as base:
            batches = current_records(connection, day, reported_states, approved_state)
            persons, table, state = _write_persons(folder, batches, base, counts, progress)
            removed = _write_removed(connection, folder, base, id_hash_key, counts)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "report_id": report_id,
                    "as_of": day.isoformat(), "kind": "incremental" if since else "full", "follows": since,
                    "counts": counts, "files": [persons, table, removed, state], "schema": "docs/mof-report.schema.json"}
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
