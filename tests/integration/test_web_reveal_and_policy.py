"""Who may reveal comes from the workflow file; the credit facet follows the credit pages; pages carry a CSP."""
import re
import shutil

import pytest

from kjdms import create_app
from kjdms.backends import get_blob_store, get_workflow
from kjdms.extensions import db
from kjdms.services.lifecycle import fire_transition
from tests.conftest import make_config
from tests.helpers import applicant, staff, upload_required
from tests.unit.test_workflow_definition import ORIGINAL
from tests.webclient import WebClient, csrf_of, text


@pytest.fixture
def generous_app(tmp_path, sqlite_template):
    """The site with a workflow whose permission map lets administrators reveal submitted ID numbers too."""
    workflow_file = tmp_path / "dossier.yaml"
    # Only the submitted state lets reviewers review: its map is the one changed.
    marker = "      review: [reviewer]\n      annotate: [credit_officer]\n      reveal_id_number: [reviewer]"
    assert ORIGINAL.count(marker) == 1
    workflow_file.write_text(ORIGINAL.replace(marker, marker.replace("[reviewer]", "[reviewer, administrator]")
                                              .replace("review: [reviewer, administrator]", "review: [reviewer]")),
                             encoding="utf-8")
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    application = create_app(make_config(tmp_path, WORKFLOW_FILE=workflow_file))
    application.test_client_class = WebClient
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def test_the_workflow_file_decides_who_may_reveal(generous_app):
    dossier, owner = applicant()
    upload_required(get_workflow(), get_blob_store(), dossier, owner)
    fire_transition(db.session, get_workflow(), dossier, "submit", owner)
    number = owner.person.id_number
    administrator = staff("admin", "administrator", "210000")
    credit_officer = staff("credit", "credit_officer", "211300")
    for user, allowed in ((administrator, True), (credit_officer, False)):
        visitor = generous_app.test_client().enter_as(user)
        page = visitor.get(f"/review/{dossier.id}")
        response = visitor.post(f"/review/{dossier.id}/reveal", data={"csrf_token": csrf_of(page)})
        assert (response.status_code, number in text(response)) == ((200, True) if allowed else (403, False))


class TestCreditFacet:
    @pytest.fixture
    def searchable(self, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "approve", people["reviewer"])

    def test_an_archivist_sees_no_credit_facet_and_cannot_filter_by_it(self, auth, searchable):
        archivist = auth("archivist")
        page = text(archivist.get("/search/"))
        assert "信用记录" not in page
        filtered = archivist.get("/search/?has_credit=1")
        assert "信用记录" not in text(filtered) and "张伟" in text(filtered)

    @pytest.mark.parametrize("role", ["reviewer", "credit_officer"])
    def test_roles_that_may_open_credit_files_keep_it(self, auth, searchable, role):
        assert "信用记录" in text(auth(role).get("/search/"))


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


@pytest.mark.parametrize("path, who", [("/", None), ("/login", None), ("/me/", "owner"), ("/search/?q=张", "reviewer"),
                                       ("/review/", "reviewer"), ("/no-such-page", None)])
def test_html_pages_carry_a_policy_without_inline_script_or_framing(auth, client, path, who):
    response = (auth(who) if who else client).get(path)
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert not INLINE_SCRIPT.search(text(response)) and " style=" not in text(response)
