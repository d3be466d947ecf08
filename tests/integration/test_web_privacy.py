"""ID numbers on the pages: in full only to the person and to a reviewer who asks (audited); masked everywhere else."""
import json

import pytest
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import AuditEvent
from kjdms.validators import id_number_check_digit
from tests.webclient import STAGES, build_site, csrf_of, every_get_path, row_counts, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

KNOWN_BODY = "21130219880808123"
KNOWN_ID_NUMBER = KNOWN_BODY + id_number_check_digit(KNOWN_BODY)
MASKED = KNOWN_ID_NUMBER[:4] + "*" * 10 + KNOWN_ID_NUMBER[-4:]
OWN_PAGES = ("/me/", "/me/edit")


@pytest.fixture(params=STAGES)
def site(request, people, workflow, blobs):
    """The site with 欧阳明月 (ID number KNOWN_ID_NUMBER) at each stage of the workflow in turn."""
    return build_site(people, workflow, blobs, stage=request.param, id_number=KNOWN_ID_NUMBER)


def test_the_mask_keeps_four_characters_at_each_end():
    assert MASKED == "2113**********" + KNOWN_ID_NUMBER[-4:] and len(MASKED) == 18


@pytest.mark.long
def test_a_full_id_number_appears_only_on_its_owners_own_pages(visitors, site):
    id_numbers = {name: user.person.id_number for name, user in site["persons"].items()}
    assert id_numbers["欧阳明月"] == KNOWN_ID_NUMBER
    seen_masked = set()
    for who, visitor in visitors.items():
        for path in every_get_path(site):
            response = visitor.get(path)
            headers = str(response.headers)
            body = text(response) if response.mimetype == "text/html" else ""
            for name, number in id_numbers.items():
                masked = number[:4] + "*" * 10 + number[-4:]
                if who == name and path in OWN_PAGES:
                    assert number in body, (who, path)
                else:
                    assert number not in body, (who, path, name)
                assert number not in headers, (who, path, name)
                # Wherever someone else's page shows the person, it shows the masked number with the name.
                if who != name and f"{name}</" in body and path.startswith(("/review/", "/search/")):
                    assert masked in body, (who, path, name)
                    seen_masked.add((who, name, path.split("/")[1]))
    assert ("reviewer", "欧阳明月", "review") in seen_masked and ("city_reviewer", "李四", "review") in seen_masked
    assert ("reviewer", "欧阳明月", "search") in seen_masked and ("city_reviewer", "李四", "search") in seen_masked
    # Nor is the audit trail a second copy of the numbers.
    for event in db.session.scalars(select(AuditEvent)):
        assert all(number not in json.dumps(event.detail) + event.actor_label for number in id_numbers.values())


def test_the_owner_sees_the_full_number_on_both_own_pages(visitors):
    for path in OWN_PAGES:
        assert KNOWN_ID_NUMBER in text(visitors["欧阳明月"].get(path))
    assert KNOWN_ID_NUMBER not in text(visitors["欧阳明月"].get("/me/documents"))


class TestReveal:
    @pytest.fixture
    def site(self, people, workflow, blobs):
        """The site with 欧阳明月's dossier waiting for review."""
        return build_site(people, workflow, blobs, stage="submitted", id_number=KNOWN_ID_NUMBER)

    @pytest.fixture
    def dossier_id(self, site):
        return site["named"]["main"]

    def reveal(self, visitor, dossier_id):
        page = visitor.get(f"/review/{dossier_id}")
        return visitor.post(f"/review/{dossier_id}/reveal", data={"csrf_token": csrf_of(page)})

    def reveals(self, dossier_id):
        db.session.expire_all()
        return [(event.actor_label, event.object_type, event.object_id) for event in db.session.scalars(
            select(AuditEvent).filter_by(action="dossier.reveal_id_number"))]

    @pytest.mark.parametrize("role", ["reviewer", "city_reviewer"])
    def test_a_reviewer_who_asks_sees_the_number_and_is_audited(self, visitors, people, dossier_id, role):
        response = self.reveal(visitors[role], dossier_id)
        assert response.status_code == 200
        assert f'<span id="id-number">{KNOWN_ID_NUMBER}</span>' in text(response) and "已记录查看" in text(response)
        assert self.reveals(dossier_id) == [(people[role].username, "dossier", dossier_id)]
        event = db.session.scalars(select(AuditEvent).filter_by(action="dossier.reveal_id_number")).one()
        assert KNOWN_ID_NUMBER not in json.dumps(event.detail) and event.actor_id == people[role].id

    @pytest.mark.parametrize("role", ["administrator", "credit_officer"])
    def test_other_staff_roles_may_not_reveal_as_the_workflow_permission_map_says(self, visitors, dossier_id, role):
        page = visitors[role].get(f"/review/{dossier_id}")
        assert page.status_code == 200 and "查看完整号码" not in text(page)
        response = visitors[role].post(f"/review/{dossier_id}/reveal",
                                       data={"csrf_token": visitors[role].csrf_token("/search/")})
        assert response.status_code == 403 and KNOWN_ID_NUMBER not in text(response)
        assert self.reveals(dossier_id) == []

    def test_the_page_is_masked_again_afterwards(self, visitors, dossier_id):
        self.reveal(visitors["reviewer"], dossier_id)
        page = text(visitors["reviewer"].get(f"/review/{dossier_id}"))
        assert KNOWN_ID_NUMBER not in page and MASKED in page

    def test_each_reveal_is_audited(self, visitors, dossier_id):
        self.reveal(visitors["reviewer"], dossier_id)
        self.reveal(visitors["reviewer"], dossier_id)
        assert len(self.reveals(dossier_id)) == 2

    def test_a_reviewer_of_another_region_gets_not_found_and_no_audit(self, visitors, dossier_id):
        visitor = visitors["other_reviewer"]
        before = row_counts()
        response = visitor.post(f"/review/{dossier_id}/reveal", data={"csrf_token": visitor.csrf_token("/review/")})
        assert response.status_code == 404 and KNOWN_ID_NUMBER not in text(response)
        assert row_counts() == before

    @pytest.mark.parametrize("who", ["欧阳明月", "张伟"])
    def test_applicants_may_not_use_reveal(self, visitors, dossier_id, who):
        visitor = visitors[who]
        response = visitor.post(f"/review/{dossier_id}/reveal", data={"csrf_token": visitor.csrf_token("/me/")})
        assert response.status_code == 403 and KNOWN_ID_NUMBER not in text(response)
        assert self.reveals(dossier_id) == []

    def test_a_reveal_without_its_token_is_refused_and_not_audited(self, visitors, dossier_id):
        response = visitors["reviewer"].post(f"/review/{dossier_id}/reveal")
        assert response.status_code == 400 and KNOWN_ID_NUMBER not in text(response)
        assert self.reveals(dossier_id) == []
