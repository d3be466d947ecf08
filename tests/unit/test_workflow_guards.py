"""The guard truth table: every role × every transition × every state of workflows/dossier.yaml."""
import itertools
from pathlib import Path

import pytest

from kjdms.workflow import TransitionRefused, WorkflowEngine, load_definition

WORKFLOW_FILE = Path(__file__).resolve().parents[2] / "workflows" / "dossier.yaml"
DEFINITION = load_definition(WORKFLOW_FILE)
ROLES = sorted(DEFINITION.roles)

# Written out by hand from the notices and the issue, not derived from the YAML:
# (state, transition) -> the roles that may fire it there. Absent pairs: nobody.
EXPECTED = {
    ("draft", "submit"): {"owner"},
    ("submitted", "retract"): {"owner"},
    ("submitted", "approve"): {"reviewer"},
    ("submitted", "reject"): {"reviewer"},
    ("rejected", "revise"): {"owner"},
    ("approved", "archive"): {"archivist"},
    **{(state, "purge"): {"administrator", "system"}
       for state in ("draft", "submitted", "approved", "rejected", "archived")},
}

# Which roles hold each permission in each state, also by hand.
EXPECTED_PERMISSIONS = {
    "draft": {"view": {"owner", "reviewer", "administrator"}, "edit": {"owner"}, "add_attachment": {"owner"},
              "reveal_id_number": {"reviewer"}},
    "submitted": {"view": {"owner", "reviewer", "credit_officer", "administrator"}, "review": {"reviewer"},
                  "annotate": {"credit_officer"}, "reveal_id_number": {"reviewer"}},
    "approved": {"view": {"owner", "reviewer", "credit_officer", "archivist", "administrator"},
                 "annotate": {"credit_officer"}, "reveal_id_number": {"reviewer"}},
    "rejected": {"view": {"owner", "reviewer", "credit_officer", "administrator"}, "annotate": {"credit_officer"},
                 "reveal_id_number": {"reviewer"}},
    "archived": {"view": {"owner", "reviewer", "credit_officer", "archivist", "administrator"},
                 "annotate": {"credit_officer"}, "reveal_id_number": {"reviewer"}},
    "purged": {"view": {"administrator"}},
}


class Subject:
    """A stand-in dossier: just a state, and whether the 'complete' condition holds."""

    def __init__(self, state, complete=True):
        self.state, self.complete = state, complete


def engine() -> WorkflowEngine:
    return WorkflowEngine(DEFINITION, {"complete": lambda s: None if s.complete else "尚不能提交，还缺少：学历证书"})


def test_the_file_names_exactly_the_states_and_transitions_of_the_issue():
    assert list(DEFINITION.states) == ["draft", "submitted", "approved", "rejected", "archived", "purged"]
    assert set(DEFINITION.transitions) == {"submit", "retract", "approve", "reject", "revise", "archive", "purge"}
    assert DEFINITION.initial_state == "draft"


@pytest.mark.parametrize("state,transition", list(itertools.product(DEFINITION.states, DEFINITION.transitions)))
def test_exactly_the_expected_roles_may_fire(state, transition):
    workflow = engine()
    allowed = {role for role in ROLES
               if workflow.refusal(Subject(state), transition, {role}, comment="理由") is None}
    assert allowed == EXPECTED.get((state, transition), set())


@pytest.mark.parametrize("state,transition", sorted(EXPECTED))
def test_firing_moves_to_the_destination_and_refuses_everyone_else(state, transition):
    workflow = engine()
    for role in ROLES:
        subject = Subject(state)
        if role in EXPECTED[(state, transition)]:
            result = workflow.fire(subject, transition, {role}, comment="理由")
            assert (result.from_state, subject.state) == (state, DEFINITION.transitions[transition].destination)
        else:
            with pytest.raises(TransitionRefused):
                workflow.fire(subject, transition, {role}, comment="理由")
            assert subject.state == state


@pytest.mark.parametrize("state", list(DEFINITION.states))
def test_permission_map_matches(state):
    workflow = engine()
    for permission in ("view", "edit", "add_attachment", "review", "annotate"):
        holders = {role for role in ROLES if workflow.has_permission(state, permission, {role})}
        assert holders == EXPECTED_PERMISSIONS[state].get(permission, set()), permission


def test_holding_several_roles_allows_the_union():
    workflow = engine()
    names = {t.name for t in workflow.available_transitions(Subject("submitted"), {"owner", "reviewer"})}
    assert names == {"retract", "approve", "reject"}


def test_submit_is_refused_with_what_is_missing_while_the_dossier_is_incomplete():
    subject = Subject("draft", complete=False)
    with pytest.raises(TransitionRefused, match="学历证书"):
        engine().fire(subject, "submit", {"owner"})
    assert subject.state == "draft"


@pytest.mark.parametrize("transition", ["reject", "purge"])
@pytest.mark.parametrize("comment", [None, "", "   "])
def test_transitions_needing_a_reason_refuse_a_blank_one(transition, comment):
    role = "reviewer" if transition == "reject" else "administrator"
    subject = Subject("submitted")
    with pytest.raises(TransitionRefused) as refused:
        engine().fire(subject, transition, {role}, comment=comment)
    assert refused.value.field == "comment" and "理由" in refused.value.message
    assert subject.state == "submitted"


def test_a_wrong_state_says_which_state_and_which_action():
    with pytest.raises(TransitionRefused, match="「已审核确认」状态下不能执行「提交审核」"):
        engine().fire(Subject("approved"), "submit", {"owner"})


def test_unknown_transition_is_refused_not_raised_as_key_error():
    with pytest.raises(TransitionRefused, match="没有名为"):
        engine().fire(Subject("draft"), "to_approved", {"administrator"})


def test_no_generated_state_setters_bypass_the_guards():
    # transitions' auto_transitions would add to_<state>() triggers; they must not exist.
    workflow = engine()
    assert not any(name.startswith("to_") for name in workflow._machine.events)


def test_mermaid_lists_every_edge():
    text = engine().mermaid()
    assert text.startswith("stateDiagram-v2\n    [*] --> draft\n")
    for (state, transition) in EXPECTED:
        assert f"    {state} --> {DEFINITION.transitions[transition].destination}: {transition}\n" in text
