"""Random transitions fired by random actors: only legal ones succeed, each leaves one history row, purges leave nothing."""
import os
import shutil
from collections import Counter

import pytest

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant, multiple, rule,
                                 run_state_machine_as_test)
from sqlalchemy import func, select

from kjdms import create_app
from kjdms.backends import get_config, get_workflow
from kjdms.blobs import InMemoryBlobStore
from kjdms.extensions import db
from kjdms.models import AttachmentVersion, Dossier, Person, User, WorkflowHistory
from kjdms.permissions import SYSTEM, PermissionDenied
from kjdms.samples import sample_pdf
from kjdms.services.accounts import assign_role
from kjdms.services.attachments import add_attachment_version
from kjdms.services.lifecycle import PERSONAL_DOSSIER_FIELDS, PERSONAL_PERSON_FIELDS, fire_transition, purge_dossier
from kjdms.services.reference import region_by_code
from kjdms.validators import ValidationErrors
from kjdms.workflow import TransitionRefused
from tests.conftest import empty_tables, make_config, pushed
from tests.helpers import applicant, upload_required
from tests.unit.test_workflow_guards import EXPECTED

BOTH = {"211302", "211303"}
# Staff actor -> (role, the dossier regions that role reaches), written out by hand.
STAFF = {
    "reviewer_shuangta": ("reviewer", "211302", {"211302"}),
    "reviewer_longcheng": ("reviewer", "211303", {"211303"}),
    "reviewer_city": ("reviewer", "211300", BOTH),
    "credit_city": ("credit_officer", "211300", BOTH),
    "archivist_city": ("archivist", "211300", BOTH),
    "admin_province": ("administrator", "210000", BOTH),
}
ACTORS = sorted(STAFF) + ["owner", "another_applicant", "system"]
REVIEWERS = ["reviewer_shuangta", "reviewer_longcheng", "reviewer_city"]
# Who might plausibly fire each transition (the oracle still decides), plus two who never may.
PLAUSIBLE = {"submit": ["owner"], "retract": ["owner"], "revise": ["owner"], "approve": REVIEWERS,
             "reject": REVIEWERS, "archive": ["archivist_city", "reviewer_city"]}
SHARED_FORM = sample_pdf("a form two dossiers share")
OUTCOMES = Counter()


class DossierWorkflow(RuleBasedStateMachine):
    """The model: each dossier's expected state, region and whether its documents are all there."""

    dossiers = Bundle("dossiers")

    def __init__(self):
        super().__init__()
        empty_tables()
        # A fake blob store: the walk is about the workflow; LocalBlobStore's fsyncs have their own tests.
        self.workflow, self.blobs = get_workflow(), InMemoryBlobStore()
        self.staff = {}
        for username, (role, region_code, _) in STAFF.items():
            user = User(username=username, display_name=username)
            db.session.add(user)
            assign_role(db.session, user, role, region_by_code(db.session, region_code))
        db.session.commit()
        self.staff = {name: db.session.scalar(select(User).filter_by(username=name)) for name in STAFF}
        self.stranger = User(username="stranger", display_name="no roles anywhere")
        db.session.add(self.stranger)
        db.session.commit()
        self.expected = {}  # dossier id -> dict(state, region, complete, owner_id, hashes)

    def actor(self, name, dossier_id):
        if name == "system":
            return SYSTEM
        if name == "owner":
            owner_id = self.expected[dossier_id]["owner_id"]
            return db.session.get(User, owner_id) if owner_id else self.stranger
        if name == "another_applicant":
            others = [e["owner_id"] for key, e in self.expected.items() if key != dossier_id and e["owner_id"]]
            return db.session.get(User, others[0]) if others else self.stranger
        return self.staff[name]

    def expected_roles(self, name, dossier_id):
        if name == "system":
            return {"system"}
        if name == "owner":
            return {"owner"} if self.expected[dossier_id]["owner_id"] else set()
        if name in STAFF:
            role, _, reach = STAFF[name]
            return {role} if self.expected[dossier_id]["region"] in reach else set()
        return set()

    @initialize(target=dossiers)
    def two_complete_dossiers(self):
        """Start every run with a complete dossier in each region, so walks go deep."""
        return multiple(*(self.register(region, documents=True, share=True) for region in sorted(BOTH)))

    @rule(target=dossiers, region=st.sampled_from(sorted(BOTH)), documents=st.sampled_from([True, True, True, False]),
          share=st.booleans())
    def register(self, region, documents, share):
        dossier, owner = applicant(name="测试", region_code=region, password=None)
        hashes = set()
        if documents:
            if share:
                version = add_attachment_version(db.session, self.workflow, self.blobs, dossier,
                                                 "basic_info_form", SHARED_FORM, owner, filename="form.pdf")
                hashes.add(version.sha256)
            upload_required(self.workflow, self.blobs, dossier, owner, seed=dossier.id)
            hashes |= {v.sha256 for a in dossier.attachments for v in a.versions}
        self.expected[dossier.id] = dict(state="draft", region=region, complete=documents,
                                         owner_id=owner.id, hashes=hashes)
        return dossier.id

    @rule(dossier_id=dossiers, transition=st.sampled_from(sorted({t for _, t in EXPECTED})),
          actor_name=st.sampled_from(ACTORS),
          comment=st.sampled_from(["材料与原件不符", None, ""]))
    def fire(self, dossier_id, transition, actor_name, comment):
        """Fire any transition, mostly illegal ones."""
        self.check_firing(dossier_id, transition, actor_name, comment)

    @rule(dossier_id=dossiers, data=st.data(), comment=st.sampled_from(["材料与原件不符", "材料与原件不符", None]))
    def fire_from_current_state(self, dossier_id, data, comment):
        """Fire a transition that leaves the dossier's state, so deep states are reached too."""
        # Purge is left to the other rule: it ends a dossier's walk, and would cut most walks short.
        leaving = sorted({t for state, t in EXPECTED
                          if state == self.expected[dossier_id]["state"] and t != "purge"})
        if leaving:
            transition = data.draw(st.sampled_from(leaving))
            actor_name = data.draw(st.sampled_from(PLAUSIBLE[transition] * 3 + ["another_applicant", "credit_city"]))
            self.check_firing(dossier_id, transition, actor_name, comment)

    @rule(dossier_id=dossiers, actor_name=st.sampled_from(["system", "admin_province", "reviewer_city", "owner"]),
          reason=st.sampled_from(["逾期未确认", None]))
    def purge(self, dossier_id, actor_name, reason):
        """Purge as the deadline job, an administrator, or someone who may not."""
        self.check_firing(dossier_id, "purge", actor_name, reason)

    def check_firing(self, dossier_id, transition, actor_name, comment):
        expected = self.expected[dossier_id]
        allowed_roles = EXPECTED.get((expected["state"], transition), set())
        should_pass = (
            bool(allowed_roles & self.expected_roles(actor_name, dossier_id))
            and (transition != "submit" or expected["complete"])
            and (not self.workflow.definition.transitions[transition].comment_required or bool(comment))
        )
        dossier = db.session.get(Dossier, dossier_id)
        history_before = self.history_count(dossier_id)
        try:
            if transition == "purge":
                purge_dossier(db.session, self.workflow, self.blobs, dossier, self.actor(actor_name, dossier_id),
                              comment or "", id_hash_key=get_config().ID_HASH_KEY)
            else:
                fire_transition(db.session, self.workflow, dossier, transition,
                                self.actor(actor_name, dossier_id), comment)
            passed = True
        except (TransitionRefused, PermissionDenied, ValidationErrors):
            passed = False
        event(f"{transition} {'fired' if passed else 'refused'}")
        OUTCOMES[transition, passed] += 1
        assert passed == should_pass, (expected["state"], transition, actor_name, comment)
        assert self.history_count(dossier_id) == history_before + (1 if passed else 0)
        if passed:
            expected["state"] = self.workflow.definition.transitions[transition].destination
            if transition == "purge":
                expected["owner_id"] = None
        assert db.session.get(Dossier, dossier_id).state == expected["state"]

    @rule(dossier_id=dossiers, actor_name=st.sampled_from(["owner", "reviewer_city", "admin_province"]))
    def upload(self, dossier_id, actor_name):
        expected = self.expected[dossier_id]
        should_pass = actor_name == "owner" and expected["state"] == "draft" and expected["owner_id"]
        dossier = db.session.get(Dossier, dossier_id)
        try:
            version = add_attachment_version(db.session, self.workflow, self.blobs, dossier, "other",
                                             sample_pdf(f"other {dossier_id} {len(expected['hashes'])}"),
                                             self.actor(actor_name, dossier_id), filename="说明.pdf")
            expected["hashes"].add(version.sha256)
            passed = True
        except PermissionDenied:
            passed = False
        assert passed == bool(should_pass)

    def history_count(self, dossier_id):
        return db.session.scalar(select(func.count()).select_from(WorkflowHistory).filter_by(dossier_id=dossier_id))

    @invariant()
    def purged_dossiers_hold_nothing_personal(self):
        purged = [key for key, expected in self.expected.items() if expected["state"] == "purged"]
        if not purged:
            return
        still_referenced = set(db.session.scalars(select(AttachmentVersion.sha256)))
        for dossier_id in purged:
            expected = self.expected[dossier_id]
            dossier = db.session.get(Dossier, dossier_id)
            person = db.session.get(Person, dossier.person_id)
            assert all(getattr(person, field) is None for field in PERSONAL_PERSON_FIELDS)
            assert all(getattr(dossier, field) is None for field in PERSONAL_DOSSIER_FIELDS)
            assert dossier.attachments == [] and person.user is None
            for sha256 in expected["hashes"]:
                assert self.blobs.exists(sha256) == (sha256 in still_referenced)


# Under CI a bounded budget: these derandomized walks already reach both outcomes of every transition (the
# check after the run fails otherwise), and the slowest test of the suite should not grow with the machine's
# load. By hand (or KJDMS_STATEFUL_EXAMPLES=…), the longer walk.
EXAMPLES = int(os.environ.get("KJDMS_STATEFUL_EXAMPLES") or (20 if os.environ.get("CI") else 50))


@pytest.fixture
def walk_app(tmp_path, sqlite_template):
    """The application on SQLite, its commits queueing search outbox rows without draining them.

    The walk checks the workflow, not the search index (which has its own tests, and whose failures never fail a
    commit): draining into Whoosh after every commit took two thirds of the walk's time.
    """
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    with pushed(create_app(make_config(tmp_path, INDEX_AFTER_COMMIT="0"))) as application:
        yield application


@pytest.mark.long
def test_random_transitions_by_random_actors(walk_app):
    run_state_machine_as_test(DossierWorkflow, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=40, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    # The run must have exercised both outcomes of every transition, or it proved little.
    # (derandomize: the same walks on every machine, so this check cannot flake.)
    for transition in {t for _, t in EXPECTED}:
        assert OUTCOMES[transition, True] and OUTCOMES[transition, False], (transition, sorted(OUTCOMES.items()))
