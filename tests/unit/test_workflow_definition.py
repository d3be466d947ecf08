"""Loading workflow files: a modified copy works without code changes, broken copies are refused clearly."""
from pathlib import Path

import pytest

from kjdms.workflow import TransitionRefused, WorkflowDefinitionError, WorkflowEngine, load_definition

WORKFLOW_FILE = Path(__file__).resolve().parents[2] / "workflows" / "dossier.yaml"
ORIGINAL = WORKFLOW_FILE.read_text(encoding="utf-8")

SUSPENDED_STATE = """
  suspended:
    title: 暂停使用
    permissions:
      view: [reviewer, administrator]
      edit: []
      add_attachment: []
      review: [reviewer]
      annotate: [credit_officer]
"""
SUSPEND_TRANSITIONS = """
  suspend:
    title: 暂停
    from: [approved]
    to: suspended
    comment_required: true
    guard:
      roles: [reviewer]
  reinstate:
    title: 恢复
    from: [suspended]
    to: approved
    guard:
      roles: [reviewer]
      permissions: [review]
"""


def write(tmp_path, text) -> Path:
    path = tmp_path / "dossier.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text, fragment) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def with_suspension(text=ORIGINAL) -> str:
    text = text.replace("\ntransitions:\n", SUSPENDED_STATE + "\ntransitions:\n")
    return text.replace("\nworklists:\n", SUSPEND_TRANSITIONS + "\nworklists:\n")


class Subject:
    def __init__(self, state):
        self.state = state


def test_the_shipped_file_loads():
    definition = load_definition(WORKFLOW_FILE)
    assert definition.states["submitted"].title == "待审核"
    assert definition.worklists["reviewer_queue"].state == "submitted"


def test_a_file_changed_in_place_is_read_again_and_a_broken_one_refused_each_time(tmp_path):
    # Parsed definitions are kept per content (each application loads the file): an edit must still be seen.
    path = write(tmp_path, ORIGINAL)
    assert "suspended" not in load_definition(path).states
    write(tmp_path, with_suspension())
    assert load_definition(path).states["suspended"].title == "暂停使用"
    write(tmp_path, ORIGINAL.replace("\ntransitions:\n", "\ntransitions: [\n", 1))
    for _ in range(2):
        with pytest.raises(WorkflowDefinitionError, match="invalid YAML"):
            load_definition(path)


def test_a_copy_with_an_extra_state_and_transition_drives_a_subject(tmp_path):
    definition = load_definition(write(tmp_path, with_suspension()))
    engine = WorkflowEngine(definition, {"complete": lambda subject: None})
    subject = Subject("approved")
    engine.fire(subject, "suspend", {"reviewer"}, comment="单位注销待核实")
    assert subject.state == "suspended"
    assert engine.has_permission("suspended", "view", {"reviewer"})
    assert not engine.has_permission("suspended", "view", {"owner"})
    # "*" sources pick up the new state: purge reaches it without touching the purge entry.
    assert "suspended" in definition.transitions["purge"].sources
    engine.fire(subject, "reinstate", {"reviewer"})
    assert subject.state == "approved"
    assert "suspended --> approved: reinstate" in engine.mermaid()


BROKEN = [
    ("dangling destination", lambda t: t.replace("to: approved\n", "to: aproved\n", 1),
     "transition 'approve' goes to unknown state 'aproved'", "to: aproved"),
    ("unknown source", lambda t: t.replace("from: [rejected]", "from: [refused]"),
     "transition 'revise' comes from unknown state 'refused'", "from: [refused]"),
    ("unknown role in a guard", lambda t: t.replace("roles: [archivist]", "roles: [librarian]"),
     "unknown role 'librarian'", "roles: [librarian]"),
    ("unknown role in a permission map", lambda t: t.replace("edit: [owner]", "edit: [ownr]", 1),
     "unknown role 'ownr'", "edit: [ownr]"),
    ("unknown permission", lambda t: t.replace("      annotate: []\n", "      delete: []\n", 1),
     "unknown permission 'delete'", "delete: []"),
    ("unreachable state", lambda t: t.replace("\ntransitions:\n", SUSPENDED_STATE + "\ntransitions:\n"),
     "state 'suspended' cannot be reached from 'draft'", "  suspended:"),
    ("bad initial state", lambda t: t.replace("initial_state: draft", "initial_state: new"),
     "initial_state 'new' is not a state", "initial_state: new"),
    ("duplicate transition", lambda t: t.replace("\nworklists:\n", "\n  submit:\n    to: draft\n    from: [draft]\n\nworklists:\n"),
     "duplicate key 'submit'", "\n  submit:\n    to: draft"),
    ("worklist on an unknown state", lambda t: t.replace("state: submitted", "state: waiting"),
     "worklist 'reviewer_queue' names unknown state 'waiting'", "state: waiting"),
]


@pytest.mark.parametrize("label,mutate,message,fragment", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_copy_is_refused_naming_the_file_line_and_entry(tmp_path, label, mutate, message, fragment):
    text = mutate(ORIGINAL)
    assert text != ORIGINAL, "the mutation must change the file"
    path = write(tmp_path, text)
    with pytest.raises(WorkflowDefinitionError) as refused:
        load_definition(path)
    assert message in str(refused.value)
    assert str(refused.value).startswith(f"{path}:")
    expected_line = line_of(text, fragment) + (1 if fragment.startswith("\n") else 0)
    assert refused.value.line == expected_line


def test_an_unknown_condition_is_refused_when_the_engine_is_built(tmp_path):
    text = ORIGINAL.replace("conditions: [complete]", "conditions: [complete, signed]")
    definition = load_definition(write(tmp_path, text))
    with pytest.raises(WorkflowDefinitionError, match="unknown condition 'signed'") as refused:
        WorkflowEngine(definition, {"complete": lambda subject: None})
    assert refused.value.line == line_of(text, "  submit:")


def test_invalid_yaml_and_missing_files_are_refused(tmp_path):
    with pytest.raises(WorkflowDefinitionError, match="invalid YAML"):
        load_definition(write(tmp_path, "states: [draft\n"))
    with pytest.raises(WorkflowDefinitionError, match="cannot read"):
        load_definition(tmp_path / "absent.yaml")
    with pytest.raises(WorkflowDefinitionError, match="must hold a mapping"):
        load_definition(write(tmp_path, "- just a list\n"))


# A transition guarded by a permission alone: who may fire it depends only on the state's permission map.
FLAG_TRANSITION = """
  flag:
    title: 标记存疑
    from: [submitted, approved]
    to: submitted
    guard:
      permissions: [annotate]
"""


def test_a_guard_of_permissions_alone_follows_the_state_permission_map(tmp_path):
    text = ORIGINAL.replace("\nworklists:\n", FLAG_TRANSITION + "\nworklists:\n")
    engine = WorkflowEngine(load_definition(write(tmp_path, text)), {"complete": lambda subject: None})
    # annotate is the credit officer's in submitted and approved; nobody else's, whatever else they hold.
    for roles in ({"reviewer"}, {"owner"}, {"archivist", "administrator"}):
        assert engine.refusal(Subject("approved"), "flag", roles) is not None, roles
        with pytest.raises(TransitionRefused):
            engine.fire(Subject("approved"), "flag", roles)
    assert engine.refusal(Subject("approved"), "flag", {"credit_officer"}) is None
    subject = Subject("approved")
    engine.fire(subject, "flag", {"credit_officer"})
    assert subject.state == "submitted"
