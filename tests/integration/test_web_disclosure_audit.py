"""Every staff read of a document's content and every search by full ID number leaves an audit event, without the number."""
import json

import pytest
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import AuditEvent
from kjdms.services.lifecycle import fire_transition
from tests.helpers import upload_required


@pytest.fixture
def submitted(people, workflow, blobs):
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    form = next(attachment for attachment in dossier.attachments if attachment.slot == "basic_info_form")
    return dossier, form.versions[-1]


def events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


@pytest.mark.parametrize("path, action", [("/files/{}", "document.download"),
                                          ("/files/{}/preview.png", "document.preview")])
def test_staff_reading_a_document_is_audited(auth, people, submitted, path, action):
    dossier, version = submitted
    assert auth("reviewer").get(path.format(version.id)).status_code in (200, 415)
    [event] = events(action)
    assert (event.actor_label, event.object_type, event.object_id) == ("reviewer_shuangta", "dossier", dossier.id)
    assert event.detail == {"version": version.id, "slot": "basic_info_form"}
    assert people["owner"].person.id_number not in json.dumps(event.detail)


def test_each_read_is_its_own_event(auth, submitted):
    _, version = submitted
    reviewer = auth("reviewer")
    for _ in range(3):
        reviewer.get(f"/files/{version.id}")
    assert len(events("document.download")) == 3


def test_the_person_reading_their_own_documents_discloses_nothing(auth, submitted):
    _, version = submitted
    assert auth("owner").get(f"/files/{version.id}").status_code == 200
    assert events("document.download") == []


def test_staff_outside_the_region_get_not_found_and_no_event(auth, submitted):
    _, version = submitted
    assert auth("other_reviewer").get(f"/files/{version.id}").status_code == 404
    assert events("document.download") == []


def test_a_search_by_full_id_number_is_audited_without_the_number(auth, people, submitted):
    dossier, _ = submitted
    number = people["owner"].person.id_number
    reviewer = auth("reviewer")
    page = reviewer.get(f"/search/?q={number}", follow_redirects=True)
    assert page.status_code == 200
    [event] = events("search.id_number")
    assert event.actor_label == "reviewer_shuangta"
    assert event.detail == {"id_numbers": 1, "dossiers": [dossier.id]}
    stored = json.dumps([event.detail, event.object_type, event.object_id, event.actor_label])
    assert number not in stored and number[-6:] not in stored


def test_a_search_by_words_is_not_an_id_number_search(auth, submitted):
    auth("reviewer").get("/search/?q=张伟")
    assert events("search.id_number") == []
