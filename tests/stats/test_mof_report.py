"""The report to the Ministry: full, then incremental after a change, a purge and a re-approval; valid, signed, stable."""
from __future__ import annotations

import gc
import json
import stat
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import insert as insert_rows, select

from kjdms.backends import get_config, get_signing_key, get_workflow
from kjdms.extensions import db
from kjdms.local_time import local_today
from kjdms.models import AuditEvent, Dossier, Person, Region, Tombstone, WorkflowHistory, utcnow
from kjdms.services import mof_report
from kjdms.services.archive import verify_package
from kjdms.services.identity import id_number_hash
from kjdms.services.mof_report import reported_states, with_change, write_report
from kjdms.signing import public_key_pem
from tests.stats_data import Spec, id_number_for, insert

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "mof-report.schema.json").read_text(encoding="utf-8"))


def report(out, since=None):
    workflow = get_workflow()
    result = write_report(db.session, day=local_today(), out=out, signing_key=get_signing_key(),
                          id_hash_key=get_config().ID_HASH_KEY, reported_states=reported_states(workflow),
                          approved_state="approved", since=since)
    db.session.commit()
    return result


def lines(folder, name):
    return [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").splitlines()]


def check(folder):
    for name in ("persons.jsonl", "removed.jsonl"):
        for line in lines(folder, name):
            jsonschema.validate(line, SCHEMA)
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    trusted = public_key_pem(get_signing_key())
    assert verify_package(folder, [trusted]).ok


def test_full_then_incremental_after_change_purge_and_reapproval(app, tmp_path):
    ids = [insert(Spec(job_types=["cashier", "checking"])).id for _ in range(3)] + [insert(Spec(state="submitted")).id]
    first = report(tmp_path / "out")
    check(first.folder)
    assert first.counts["persons"] == 3
    assert {line["change"] for line in lines(first.folder, "persons.jsonl")} == {"full"}
    again = (first.folder / "persons.jsonl").read_bytes(), (first.folder / "manifest.json.sig").read_bytes()
    assert (report(tmp_path / "out").folder / "persons.jsonl").read_bytes() == again[0]
    assert (first.folder / "manifest.json.sig").read_bytes() == again[1]

    # The report lets go of what it read (bounded memory): read the dossiers again.
    kept, changed, purged, draft = (db.session.get(Dossier, dossier_id) for dossier_id in ids)
    changed.employer_name = "另一单位"
    purged_number = purged.person.id_number
    purged.state, purged.person.id_number, purged.person.name = "purged", None, None
    db.session.add(Tombstone(dossier_id=purged.id, id_number_hash=id_number_hash(get_config().ID_HASH_KEY,
                             purged_number), actor_label="system", reason="逾期"))
    draft.state = "approved"  # the re-approval
    db.session.add(WorkflowHistory(dossier_id=draft.id, action="approve", from_state="submitted",
                                   to_state="approved", actor_role="reviewer", created_at=utcnow()))
    db.session.commit()
    second = report(tmp_path / "out", since=first.report_id)
    check(second.folder)
    changed, draft = db.session.get(Dossier, ids[1]), db.session.get(Dossier, ids[3])
    changes = {line["id_number"]: line["change"] for line in lines(second.folder, "persons.jsonl")}
    assert changes == {changed.person.id_number: "changed", draft.person.id_number: "added"}
    approved_on = {line["id_number"]: line["approved_on"] for line in lines(second.folder, "persons.jsonl")}
    assert approved_on == {changed.person.id_number: None, draft.person.id_number: local_today().isoformat()}
    removed = lines(second.folder, "removed.jsonl")
    assert [(r["id_number"], r["removed_on"]) for r in removed] == [(purged_number, local_today().isoformat())]
    assert second.counts == {"persons": 3, "added": 1, "changed": 1, "unchanged": 1, "removed": 1}
    assert db.session.get(Dossier, ids[0]).person.id_number not in changes
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "mof_report.generate")).all()
    assert len(events) == 3 and "id_number" not in json.dumps([e.detail for e in events])


def test_a_tampered_file_is_refused(app, tmp_path):
    insert(Spec())
    folder = report(tmp_path / "out").folder
    with open(folder / "persons.csv", "ab") as target:
        target.write(b"x")
    result = verify_package(folder, [public_key_pem(get_signing_key())])
    assert not result.ok and "persons.csv" in result.different


def test_the_commands_write_list_and_verify_a_report(app, tmp_path):
    from tests.integration.test_commands import run

    insert(Spec())
    day = local_today().isoformat()
    made = run(app, "report", "mof", "--as-of", day, "--out", str(tmp_path / "out"))
    assert made.exit_code == 0, made.output
    assert "敏感" in made.output and "仅本账户可读" in made.output
    report_id = f"MOF-{day.replace('-', '')}"
    assert report_id in run(app, "report", "list").output
    key = tmp_path / "public.pem"
    key.write_text(public_key_pem(get_signing_key()), encoding="ascii")
    checked = run(app, "verify-package", str(tmp_path / "out" / report_id), "--public-key", str(key))
    assert checked.exit_code == 0 and "签名有效" in checked.output, checked.output


def test_a_past_as_of_date_reports_each_person_as_the_revisions_recorded_them_that_day(app, tmp_path):
    today = local_today()
    # Approved 5 days ago at the intermediate level, junior since; submitted before that.
    revised = insert(Spec(qualification_level="junior", created_days_ago=12, revisions=[
        (10, "submitted", "211302", "intermediate"), (5, "approved", "211302", "intermediate"),
        (1, "approved", "211303", "junior")]))
    bulk = insert(Spec(created_days_ago=30, bulk=True))  # never revised: its current content all along
    recent = insert(Spec(created_days_ago=2))  # did not exist yet
    # Approved 15 days ago, back to a draft today.
    withdrawn = insert(Spec(created_days_ago=20, revisions=[(15, "approved", "211302", "junior")], state="draft"))
    workflow = get_workflow()

    def report_of(days_ago):
        result = write_report(db.session, day=today - timedelta(days=days_ago), out=tmp_path / f"out{days_ago}",
                              signing_key=get_signing_key(), id_hash_key=get_config().ID_HASH_KEY,
                              reported_states=reported_states(workflow), approved_state="approved")
        db.session.commit()
        check(result.folder)
        return {line["id_number"]: line for line in lines(result.folder, "persons.jsonl")}

    revised_number, bulk_number, withdrawn_number = (dossier.person.id_number for dossier in (revised, bulk, withdrawn))
    assert set(report_of(7)) == {bulk_number, withdrawn_number}
    three_days_ago = report_of(3)
    assert set(three_days_ago) == {revised_number, bulk_number, withdrawn_number}
    line = three_days_ago[revised_number]
    assert (line["qualification_level"], line["region_code"], line["state"]) == ("intermediate", "211302", "approved")
    assert line["changed_on"] == (today - timedelta(days=5)).isoformat()
    assert line["registered_on"] == (today - timedelta(days=12)).isoformat()
    assert three_days_ago[bulk_number]["qualification_level"] == "junior"
    today_report = report_of(0)
    assert set(today_report) == {revised_number, bulk_number, recent.person.id_number}
    assert today_report[revised_number]["qualification_level"] == "junior"  # today: the dossier as it stands
    assert report_of(1)[revised_number]["region_code"] == "211303"


def bulk_persons(first: int, count: int) -> None:
    """Write count approved persons straight into the tables, numbered from first (thousands in a second)."""
    region = db.session.scalar(select(Region.id).where(Region.code == "211302"))
    created, born = utcnow() - timedelta(days=3), date(1985, 5, 6)
    numbers = range(first, first + count)
    db.session.execute(insert_rows(Person), [
        {"id": number, "id_number": id_number_for(born, number), "name": f"测试{number}", "sex": "female",
         "birth_date": born, "is_legacy": False, "created_at": created} for number in numbers])
    db.session.execute(insert_rows(Dossier), [
        {"id": number, "person_id": number, "state": "approved", "region_id": region, "education": "bachelor",
         "scope_category": "in_accounting_work", "qualification_level": "junior", "job_types": ["cashier"],
         "employer_name": "某单位", "phone": "13904211234", "created_at": created, "updated_at": created,
         "state_changed_at": created, "lock_version": 1} for number in numbers])
    db.session.commit()


def traced_peak(out: Path, since: str | None = None) -> tuple[int, dict]:
    """Return the most memory Python held while writing a report, above what it held before, and its counts.

    Cyclic garbage is collected after every batch, so that the figure is what the report keeps alive, not how far
    the collector happened to lag behind. What lived before the report is frozen out of those collections: it is
    not the report's, and walking it (the application, pytest, every module) took nine tenths of the test."""
    workflow = get_workflow()
    gc.collect()
    gc.freeze()
    tracemalloc.start()
    try:
        result = write_report(db.session, day=local_today(), out=out, signing_key=get_signing_key(),
                              id_hash_key=get_config().ID_HASH_KEY, reported_states=reported_states(workflow),
                              approved_state="approved", since=since, progress=lambda written: gc.collect())
        return tracemalloc.get_traced_memory()[1], result.counts
    finally:
        tracemalloc.stop()
        gc.unfreeze()
        db.session.commit()


@pytest.mark.long
def test_memory_does_not_grow_with_the_number_of_persons(app, tmp_path, monkeypatch):
    # Batches of 50: a batch weighs some 150 KB. Whatever grew with the persons would show: the previous report's
    # fingerprints held in a dict, as the report once did, weigh some 300 bytes a person, 750 KB for 2,500 more.
    monkeypatch.setattr(mof_report, "BATCH", 50)
    out = tmp_path / "out"
    bulk_persons(1_000_000, 500)
    base = report(out).report_id
    report(out, since=base)  # warm: the compiled statements, the first imports

    def peaks() -> tuple[int, int, int]:
        (full, counts), (incremental, _) = traced_peak(out), traced_peak(out, since=base)
        return full, incremental, counts["persons"]

    *small, persons = peaks()
    assert persons == 500
    bulk_persons(1_000_500, 2500)
    *large, persons = peaks()
    assert persons == 3_000
    for before, after in zip(small, large):
        assert after - before < 384 * 1024, (small, large)


def test_a_line_gets_its_change_as_if_encoded_with_it():
    record = {"approved_on": None, "birth_date": "1985-05-06", "changed_on": "2026-01-02",
              "name": '王"changed_on":,芳', "employer_name": "某单位\\\"changed_on\":", "job_types": ["cashier"]}
    text = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for change in ("full", "added", "changed"):
        expected = json.dumps({"change": change, **record}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        assert with_change(text, change) == expected + "\n"
