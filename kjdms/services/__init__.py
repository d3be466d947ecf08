"""The operations on dossiers; plain functions that take their backends as arguments."""
from pathlib import Path

from ..workflow import WorkflowEngine, load_definition
from .dossiers import dossier_is_complete

# The named conditions a workflow file may use in its guards.
CONDITIONS = {"complete": dossier_is_complete}


def build_workflow(path: Path | str) -> WorkflowEngine:
    """Load the workflow file at path and bind it to the dossier conditions."""
    return WorkflowEngine(load_definition(path), CONDITIONS)
