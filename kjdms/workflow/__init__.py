"""Workflows as data: YAML definitions, guards and the engine. Imports neither Flask nor SQLAlchemy."""
from .definition import (Guard, State, Transition, WorkflowDefinition,
                         WorkflowDefinitionError, Worklist, load_definition)
from .engine import TransitionRefused, TransitionResult, WorkflowEngine

__all__ = ["Guard", "State", "Transition", "TransitionRefused", "TransitionResult",
           "WorkflowDefinition", "WorkflowDefinitionError", "WorkflowEngine", "Worklist",
           "load_definition"]
