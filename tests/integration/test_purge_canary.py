"""The canary purge: a string planted in a dossier and its PDF is gone from every byte of storage afterwards."""
import random
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from kjdms.backends import get_blob_store, get_config, get_search_index, get_workflow
from kjdms.extensions import db
from kjdms.models import AttachmentVersion, DossierRevision, LoginFailure, Tombstone, utcnow
from kjdms.samples import sample_pdf
from kjdms.services import login_throttle
from kjdms.services.attachments import add_attachment_version
from kjdms.services.deadline_purge import local_date
from kjdms.services.dossiers import register_person
from kjdms.services.identity import id_number_hash
from kjdms.services.text_extraction import extract_pending
from tests.helpers import complete_fields, make_id_number


def canary_words() -> tuple[str, str]:
    """Return a fresh ASCII token (letters only, so it stays one word to the analyzer) and a fresh Chinese name."""
    seed = uuid.uuid4()
    token = "kjcanary" + "".join(chr(ord("a") + int(digit, 16)) for digit in seed.hex[:20])
    pick = random.Random(seed.int)
    return token, "".join(chr(pick.randrange(0x4E00, 0x9FA5)) for _ in range(4))


def needles(token: str, name: str) -> dict[str, bytes]:
    """Return every byte form the canary could take on disk."""
    forms = {"token": token.encode(), "TOKEN": token.upper().encode(), "token utf-16": token.encode("utf-16-le")}
    for encoding in ("utf-8", "gb18030", "utf-16-le", "utf-16-be"):
        forms[f"name {encoding}"] = name.encode(encoding)
    # The index holds Chinese as unigrams and bigrams: look for every bigram of the name too.
    forms.update({f"bigram {name[i:i + 2]}": name[i:i + 2].encode() for i in range(len(name) - 1)})
    return forms


def scan(folder, forms: dict[str, bytes]) -> dict[str, set[str]]:
    """Return each file under folder (relative path) with the canary forms found in its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits = {label for label, form in forms.items() if form in data}
            if hits:
                found[str(path.relative_to(folder))] = hits
    return found


def where(found: dict[str, set[str]]) -> set[str]:
    """Return which of the four places the hits are in: database, wal, blobs, index."""
    places = set()
    for path in found:
        if path == "kjdms.sqlite3":
            places.add("database")
        elif path == "kjdms.sqlite3-wal":
            places.add("wal")
        else:
            places.add(path.split("/")[0])
    return places


def plant_canary(folder) -> dict:
    """Register a legacy person, never confirmed, with the canary in name, employer, certificate number and a PDF."""
    config = get_config()
    token, name = canary_words()
    id_number = make_id_number()
    fields = complete_fields(employer_name=f"{token}{name}会计服务有限公司", legacy_certificate_number=token.upper())
    dossier = register_person(db.session, name=name, id_number=id_number, is_legacy=True, to_confirm=True,
                              **fields)
    add_attachment_version(db.session, get_workflow(), get_blob_store(), dossier, "basic_info_form",
                           sample_pdf(f"{token} basic information form"), dossier.person.user,
                           filename=f"{token}.pdf")
    assert extract_pending(db.session, get_blob_store(), ocr=False) == 1
    version = db.session.scalars(select(AttachmentVersion)).one()
    assert token in version.extracted_text  # extracted into the database, and so into the index
    login_throttle.record_failure(db.session, config.ID_HASH_KEY, id_number, "203.0.113.7")
    # Imported well before a deadline that ended yesterday in Beijing.
    dossier.created_at = utcnow() - timedelta(days=3)
    db.session.commit()
    config.CONFIRMATION_DEADLINE = local_date(utcnow()) - timedelta(days=1)
    return {"dossier_id": dossier.id, "id_number": id_number, "token": token, "name": name,
            "forms": needles(token, name), "folder": folder}


@pytest.fixture
def canary(sqlite_app, tmp_path):
    """The canary planted on SQLite, in the database file and its WAL alike."""
    planted = plant_canary(tmp_path)
    # Copy the WAL into the database file without emptying it: the canary is in both now.
    db.session.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
    db.session.commit()
    return planted


def test_the_canary_is_gone_from_every_byte_of_storage(sqlite_app, canary):
    folder, forms = canary["folder"], canary["forms"]
    assert {path.name for path in folder.iterdir()} >= {"kjdms.sqlite3", "kjdms.sqlite3-wal", "kjdms.sqlite3-shm",
                                                         "blobs", "index"}
    before = scan(folder, forms)
    # Otherwise the test proves nothing: the canary is findable in all four places first.
    assert where(before) >= {"database", "wal", "blobs", "index"}, before
    assert any("token" in hits for path, hits in before.items() if path.startswith("index/"))
    assert any(label.startswith("bigram") for path, hits in before.items() if path.startswith("index/")
               for label in hits)
    assert get_search_index().doc_count() == 1

    result = sqlite_app.test_cli_runner().invoke(args=["purge-expired", "--yes"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "已删除 1 份，跳过 0 份" in result.output
    db.session.remove()
    assert scan(folder, forms) == {}
    # The purge kept what it must: the tombstone, and the index and database still work.
    tombstone = db.session.scalars(select(Tombstone)).one()
    assert tombstone.id_number_hash == id_number_hash(get_config().ID_HASH_KEY, canary["id_number"])
    assert get_search_index().doc_count() == 0
    assert db.session.scalar(select(func.count()).select_from(LoginFailure)) == 1  # the address's, not the account's
    assert db.session.scalar(text("PRAGMA integrity_check")) == "ok"


@pytest.mark.parametrize("undone, leaks_into", [("secure_delete", "database"), ("checkpoint", "wal"),
                                                 ("segment_merge", "index")])
def test_the_control_each_sqlite_measure_is_needed(sqlite_app, canary, monkeypatch, undone, leaks_into):
    """The same purge with one measure undone leaves the canary behind: the scan would see a leak."""
    from sqlalchemy import event

    from kjdms.search.whoosh_index import WhooshSearchIndex
    from kjdms.services import deadline_purge

    def insecure(dbapi_connection, record):
        dbapi_connection.execute("PRAGMA secure_delete=OFF")

    if undone == "checkpoint":
        monkeypatch.setattr(deadline_purge, "truncate_wal", lambda session: None)
    elif undone == "segment_merge":
        monkeypatch.setattr(WhooshSearchIndex, "purge_deleted", lambda self: None)
    else:
        db.session.remove()
        db.engine.dispose()
        event.listen(db.engine, "connect", insecure)
    try:
        result = sqlite_app.test_cli_runner().invoke(args=["purge-expired", "--yes"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        db.session.remove()
        if undone == "secure_delete":
            assert db.session.scalar(text("PRAGMA secure_delete")) == 0
    finally:
        if undone == "secure_delete":
            event.remove(db.engine, "connect", insecure)
    left = where(scan(canary["folder"], canary["forms"]))
    assert leaks_into in left
    assert "blobs" not in left


def test_the_purged_revision_holds_no_personal_data(sqlite_app, canary):
    assert db.session.scalar(select(func.count()).select_from(DossierRevision)) >= 1
    result = sqlite_app.test_cli_runner().invoke(args=["purge-expired", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db.session.remove()
    revisions = db.session.scalars(select(DossierRevision).filter_by(dossier_id=canary["dossier_id"])).all()
    # The one written by the purge's own commit: the purged state, every personal field empty.
    assert [revision.state for revision in revisions] == ["purged"]
    fields = revisions[0].fields
    assert fields["name"] is None and fields["employer_name"] is None and fields["phone"] is None
    assert fields["legacy_certificate_number"] is None and revisions[0].attachments == {}


def test_an_old_index_generation_left_by_a_crash_is_purged_too(sqlite_app, canary):
    import shutil

    index = get_search_index()
    shutil.copytree(index.folder / index._live_target(), index.folder / "gen-1")
    assert any(path.startswith("index/gen-1/") for path in scan(canary["folder"], canary["forms"]))
    result = sqlite_app.test_cli_runner().invoke(args=["purge-expired", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db.session.remove()
    assert scan(canary["folder"], canary["forms"]) == {}


def postgres_table_files(forms: dict[str, bytes]) -> dict[str, set[str]]:
    """Return each relation of the test's schema (tables, their TOAST and indexes) whose file holds a canary form."""
    db.session.execute(text("CHECKPOINT"))  # dirty pages reach the files before they are read
    relations = db.session.execute(text("""
        SELECT c.relname, pg_relation_filepath(c.oid) FROM pg_class c
        WHERE c.relfilenode <> 0 AND (c.relnamespace = current_schema()::regnamespace
              OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE relnamespace = current_schema()::regnamespace)
              OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT reltoastrelid FROM pg_class
                           WHERE relnamespace = current_schema()::regnamespace)))""")).all()
    found = {}
    for name, path in relations:
        data = db.session.scalar(text("SELECT pg_read_binary_file(:path)"), {"path": path}) or b""
        hits = {label for label, form in forms.items() if form in data}
        if hits:
            found[name] = hits
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("app", ["postgres", "postgres_search"], indirect=True)
def test_the_canary_on_postgresql_is_gone_from_the_files_after_vacuum_full(app, tmp_path):
    """PostgreSQL keeps deleted rows in the table files until VACUUM, as the README says; after it, nothing.

    With the search index in PostgreSQL too, the purge rewrites the index's table itself (VACUUM FULL).
    """
    in_database = get_config().SEARCH == "postgres"
    planted = plant_canary(tmp_path)
    forms = planted["forms"]
    before = postgres_table_files(forms)
    assert {"persons", "dossiers", "attachment_versions"} <= set(before), before
    if in_database:
        # The text, its bigrams and the GIN index's keys: the table and its indexes hold the canary.
        assert {"search_documents", "search_documents_terms"} <= set(before), before
        assert not (tmp_path / "index").exists()
    else:
        assert "index" in where(scan(tmp_path, forms))
    result = app.test_cli_runner().invoke(args=["purge-expired", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db.session.remove()
    # The index and the blobs are clean at once; the table files until VACUUM (the control of this test).
    assert scan(tmp_path, forms) == {}
    left = postgres_table_files(forms)
    assert left, "the deleted rows were expected in the table files before VACUUM"
    # VACUUM keeps rows another session's snapshot may still see (other test workers share the database):
    # run it again until those short transactions have ended. The index's own rewrite is the purge's.
    for _ in range(30):
        if not any(name.startswith("search_documents") for name in left):
            db.session.remove()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM FULL persons, dossiers, attachment_versions, dossier_revisions"))
        else:
            get_search_index().purge_deleted()
        left = postgres_table_files(forms)
        if not left:
            break
        time.sleep(1)
    assert left == {}
