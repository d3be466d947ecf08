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
