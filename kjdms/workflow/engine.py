"""Drive a subject's state through a WorkflowDefinition with the transitions library."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Collection, Mapping

from transitions import Machine, MachineError

from .definition import Transition, WorkflowDefinition, WorkflowDefinitionError
from .guard import Condition, guard_refusal


class TransitionRefused(Exception):
    """A transition that may not fire now; the message says why, in Chinese."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class TransitionResult:
    """What one fired transition did."""

    transition: Transition
    from_state: str
    to_state: str


class _Binding:
    """The stand-in model the Machine sees for the duration of one transition."""

    def __init__(self, engine: "WorkflowEngine", subject, roles: Collection[str], comment):
        self.engine, self.subject, self.roles, self.comment = engine, subject, roles, comment
        self.refused: TransitionRefused | None = None

    def passes_guard(self, event) -> bool:
        transition = self.engine.definition.transitions[event.event.name]
        self.refused = self.engine._guard_refusal(transition, self.subject, self.roles, self.comment)
        return self.refused is None


class WorkflowEngine:
    """Answer permission questions and fire guarded transitions for one workflow."""

    def __init__(self, definition: WorkflowDefinition, conditions: Mapping[str, Condition]):
        for transition in definition.transitions.values():
            for name in transition.guard.conditions:
                if name not in conditions:
                    raise WorkflowDefinitionError(
                        definition.path, transition.line,
                        f"transition '{transition.name}' uses unknown condition '{name}'"
                        f" (known: {', '.join(sorted(conditions)) or 'none'})",
                    )
        self.definition = definition
        self.conditions = dict(conditions)
        # auto_transitions=False: the generated to_<state>() would bypass every guard.
        self._machine = Machine(
            model=None,
            states=list(definition.states),
            initial=definition.initial_state,
            transitions=[
                {"trigger": t.name, "source": sorted(t.sources), "dest": t.destination,
                 "conditions": "passes_guard"}
                for t in definition.transitions.values()
            ],
            auto_transitions=False,
            send_event=True,
        )
        # The shared Machine keeps every model added to it: bind one at a time, then drop it.
        self._lock = threading.Lock()

    def has_permission(self, state: str, permission: str, roles: Collection[str]) -> bool:
        """Tell whether any of roles holds permission in state."""
        return bool(self.definition.states[state].roles_with(permission).intersection(roles))

    def refusal(self, subject, transition_name: str, roles: Collection[str],
                comment: str | None = None) -> str | None:
        """Return why transition_name may not fire on subject now, or None if it may."""
        refused = self._state_refusal(subject, transition_name) or self._guard_refusal(
            self.definition.transitions[transition_name], subject, roles, comment)
        return refused.message if refused else None

    def _state_refusal(self, subject, transition_name) -> TransitionRefused | None:
        transition = self.definition.transitions.get(transition_name)
        if transition is None:
            return TransitionRefused(f"没有名为「{transition_name}」的操作")
        if subject.state not in transition.sources:
            title = self.definition.states[subject.state].title
            return TransitionRefused(f"「{title}」状态下不能执行「{transition.title}」")
        return None

    def _guard_refusal(self, transition, subject, roles, comment) -> TransitionRefused | None:
        state = self.definition.states[subject.state]
        reason = guard_refusal(transition, state, roles, subject, self.conditions)
        if reason:
            return TransitionRefused(reason)
        if transition.comment_required and not (comment or "").strip():
            return TransitionRefused(f"「{transition.title}」必须填写理由", field="comment")
        return None

    def available_transitions(self, subject, roles: Collection[str]) -> list[Transition]:
        """Return the transitions roles could fire on subject now (a comment assumed given)."""
        return [
            t for t in self.definition.transitions_from(subject.state)
            if self.refusal(subject, t.name, roles, comment="-") is None
        ]

    def fire(self, subject, transition_name: str, roles: Collection[str],
             comment: str | None = None) -> TransitionResult:
        """Move subject.state along transition_name, or raise TransitionRefused."""
        refused = self._state_refusal(subject, transition_name)
        if refused:
            raise refused
        transition = self.definition.transitions[transition_name]
        binding = _Binding(self, subject, roles, comment)
        with self._lock:
            self._machine.add_model(binding, initial=subject.state)
            try:
                fired = binding.trigger(transition_name)
            except MachineError as error:
                raise TransitionRefused(f"不能执行「{transition.title}」：{error.value}") from error
            finally:
                self._machine.remove_model(binding)
        if not fired:
            raise binding.refused or TransitionRefused(f"不能执行「{transition.title}」")
        from_state, subject.state = subject.state, binding.state
        return TransitionResult(transition, from_state, subject.state)

    def mermaid(self) -> str:
        """Return the workflow as a Mermaid state diagram."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.definition.initial_state}"]
        for name, state in self.definition.states.items():
            lines.append(f"    {name}: {name} {state.title}")
        for transition in self.definition.transitions.values():
            for source in sorted(transition.sources, key=list(self.definition.states).index):
                lines.append(f"    {source} --> {transition.destination}: {transition.name}")
        return "\n".join(lines) + "\n"
