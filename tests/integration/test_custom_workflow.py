"""A modified copy of workflows/dossier.yaml drives real dossiers without any code change."""
import shutil

import pytest
from sqlalchemy import select

from kjdms import create_app
from kjdms.backends import get_blob_store, get_workflow
from kjdms.extensions import db
from kjdms.models import WorkflowHistory
from kjdms.permissions import PermissionDenied
from kjdms.services.dossiers import update_basic_information
from kjdms.services.lifecycle import fire_transition
from kjdms.workflow import TransitionRefused, WorkflowDefinitionError
from tests.conftest import make_config
from tests.helpers import applicant, staff, upload_required
from tests.webclient import WebClient
from tests.unit.test_workflow_definition import ORIGINAL, with_suspension


@pytest.fixture
def suspending_app(tmp_path, sqlite_template):
    workflow_file = tmp_path / "dossier-with-suspension.yaml"
    workflow_file.write_text(with_suspension(), encoding="utf-8")
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    application = create_app(make_config(tmp_path, WORKFLOW_FILE=workflow_file))
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def test_an_extra_state_and_transition_work_end_to_end(suspending_app):
    workflow, blobs = get_workflow(), get_blob_store()
    dossier, owner = applicant()
    reviewer = staff("reviewer_shuangta", "reviewer", "211302")
    upload_required(workflow, blobs, dossier, owner)
    for name, actor in (("submit", owner), ("approve", reviewer)):
        fire_transition(db.session, workflow, dossier, name, actor)
    with pytest.raises(TransitionRefused, match="必须填写理由"):
        fire_transition(db.session, workflow, dossier, "suspend", reviewer)
    fire_transition(db.session, workflow, dossier, "suspend", reviewer, "单位注销，待核实")
    assert dossier.state == "suspended"
    # The new state's permission map applies: the owner may no longer edit or even view.
    with pytest.raises(PermissionDenied):
        update_basic_information(db.session, workflow, dossier, {"phone": "13904210000"}, owner)
    fire_transition(db.session, workflow, dossier, "reinstate", reviewer)
    actions = db.session.scalars(select(WorkflowHistory.action).filter_by(dossier_id=dossier.id)
                                 .order_by(WorkflowHistory.id)).all()
    assert actions == ["submit", "approve", "suspend", "reinstate"]
    assert dossier.state == "approved"


def test_a_broken_workflow_file_stops_the_application_from_starting(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(ORIGINAL.replace("to: archived", "to: archive"), encoding="utf-8")
    with pytest.raises(WorkflowDefinitionError, match=r"broken\.yaml:\d+: transition 'archive' goes to unknown state"):
        create_app(make_config(tmp_path, WORKFLOW_FILE=broken))


def app_with_workflow(tmp_path, sqlite_template, text):
    """Return an application on a fresh SQLite copy, driven by the workflow file text."""
    workflow_file = tmp_path / "dossier-custom.yaml"
    workflow_file.write_text(text, encoding="utf-8")
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    return create_app(make_config(tmp_path, WORKFLOW_FILE=workflow_file))


def renamed_queue_state() -> str:
    """The stock workflow with `submitted` renamed `awaiting_review` everywhere (state, transitions, worklist)."""
    return ORIGINAL.replace("submitted:", "awaiting_review:").replace("[submitted]", "[awaiting_review]") \
        .replace("to: submitted", "to: awaiting_review").replace("state: submitted", "state: awaiting_review")


def test_a_renamed_queue_state_fills_the_reviewer_queue_with_no_code_changed(tmp_path, sqlite_template):
    from kjdms.services.worklist import reviewer_queue

    application = app_with_workflow(tmp_path, sqlite_template, renamed_queue_state())
    with application.app_context():
        workflow = get_workflow()
        dossier, owner = applicant()
        reviewer = staff("reviewer_shuangta", "reviewer", "211302")
        upload_required(workflow, get_blob_store(), dossier, owner)
        fire_transition(db.session, workflow, dossier, "submit", owner)
        assert dossier.state == "awaiting_review"
        assert [row.id for row in reviewer_queue(db.session, workflow, reviewer).dossiers] == [dossier.id]
        application.test_client_class = WebClient
        page = application.test_client().enter_as(reviewer).get("/review/")
        assert page.status_code == 200 and dossier.number in page.get_data(as_text=True)
        assert application.test_client().get("/review/").status_code == 302  # still behind the sign-in
        db.session.remove()
        db.engine.dispose()


def test_an_extra_reviewing_role_gets_the_queue_and_the_credit_file_from_the_file_alone(tmp_path, sqlite_template):
    from kjdms.permissions import can
    from kjdms.services.credit import may_view
    from kjdms.services.worklist import queue_roles, reviewer_queue

    # Archivists of a county are made reviewers of submitted dossiers, and may read their credit files.
    text = ORIGINAL.replace("      review: [reviewer]\n", "      review: [reviewer, archivist]\n", 1).replace(
        "      view: [owner, reviewer, credit_officer, administrator]\n",
        "      view: [owner, reviewer, credit_officer, archivist, administrator]\n", 1).replace(
        "      view_credit_file: [reviewer, credit_officer, administrator]\n",
        "      view_credit_file: [reviewer, credit_officer, archivist, administrator]\n", 1).replace(
        "    guard:\n      roles: [reviewer]\n      permissions: [review]\n",
        "    guard:\n      roles: [reviewer, archivist]\n      permissions: [review]\n", 1)  # approve
    assert text.count("archivist") == ORIGINAL.count("archivist") + 4
    application = app_with_workflow(tmp_path, sqlite_template, text)
    with application.app_context():
        workflow = get_workflow()
        assert queue_roles(workflow) == {"reviewer", "archivist"}
        dossier, owner = applicant()
        archivist = staff("archivist_shuangta", "archivist", "211302")
        upload_required(workflow, get_blob_store(), dossier, owner)
        assert not may_view(workflow, archivist, dossier)  # a draft: the stock rule still holds
        fire_transition(db.session, workflow, dossier, "submit", owner)
        assert can(workflow, archivist, "view", dossier) and may_view(workflow, archivist, dossier)
        assert [row.id for row in reviewer_queue(db.session, workflow, archivist).dossiers] == [dossier.id]
        fire_transition(db.session, workflow, dossier, "approve", archivist)
        assert dossier.state == "approved"
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("broken, message", [
    (lambda text: text.replace("  reviewer_queue:", "  review_queue:"), "kjdms needs the worklist reviewer_queue"),
    (lambda text: text.replace("initial_state: draft", "initial_state: rejected"), "initial_state must be draft"),
])
def test_a_file_without_what_the_code_relies_on_stops_the_start(tmp_path, broken, message):
    workflow_file = tmp_path / "dossier-missing.yaml"
    workflow_file.write_text(broken(ORIGINAL), encoding="utf-8")
    with pytest.raises(WorkflowDefinitionError, match=message):
        create_app(make_config(tmp_path, WORKFLOW_FILE=workflow_file))
