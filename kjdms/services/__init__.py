"""The operations on dossiers; plain functions that take their backends as arguments."""
from pathlib import Path

from ..vocabulary import (DRAFT_STATE, OWNER_ROLE, REVIEWER_QUEUE, STAFF_ROLES, SYSTEM_ROLE, VIEW_CREDIT_FILE,
                          WORKFLOW_STATES)
from ..workflow import WorkflowDefinitionError, WorkflowEngine, load_definition
from .dossiers import dossier_is_complete

# The named conditions a workflow file may use in its guards.
CONDITIONS = {"complete": dossier_is_complete}


def build_workflow(path: Path | str) -> WorkflowEngine:
    """Load the workflow file at path, check it names what the code relies on, and bind the dossier conditions."""
    definition = load_definition(path)
    for kind, needed, defined in (("role", (*STAFF_ROLES, OWNER_ROLE, SYSTEM_ROLE), definition.roles),
                                  ("state", WORKFLOW_STATES, definition.states),
                                  ("worklist", (REVIEWER_QUEUE,), definition.worklists),
                                  ("permission", (VIEW_CREDIT_FILE,), definition.permission_titles)):
        missing = [name for name in needed if name not in defined]
        if missing:
            raise WorkflowDefinitionError(path, None, f"kjdms needs the {kind} {', '.join(missing)} (kjdms/vocabulary.py)")
    if definition.initial_state != DRAFT_STATE:
        raise WorkflowDefinitionError(path, None, f"initial_state must be {DRAFT_STATE}: registration and the legacy import create dossiers in it")
    return WorkflowEngine(definition, CONDITIONS)
