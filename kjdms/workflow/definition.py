"""Load a workflow definition from YAML into validated, frozen dataclasses."""
from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

PERMISSIONS = ("view", "edit", "add_attachment", "review", "annotate", "view_credit_file", "reveal_id_number")
ANY_STATE = "*"


class WorkflowDefinitionError(ValueError):
    """A workflow file that cannot be used, with the file and line at fault."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Guard:
    """What an actor needs to fire a transition (DCWorkflow's Guard)."""

    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True)
class State:
    """One workflow state and the roles holding each permission while in it."""

    name: str
    title: str
    description: str
    permissions: Mapping[str, frozenset[str]]
    line: int

    def roles_with(self, permission: str) -> frozenset[str]:
        """Return the roles that hold permission in this state."""
        return self.permissions.get(permission, frozenset())


@dataclass(frozen=True)
class Transition:
    """One named transition from a set of states to a destination."""

    name: str
    title: str
    sources: frozenset[str]
    destination: str
    guard: Guard
    comment_required: bool
    line: int


@dataclass(frozen=True)
class Worklist:
    """A saved query: objects in a state on which the user holds a permission."""

    name: str
    title: str
    state: str
    permission: str


@dataclass(frozen=True)
class WorkflowDefinition:
    """A whole validated workflow."""

    id: str
    title: str
    path: str
    initial_state: str
    roles: Mapping[str, str]
    permission_titles: Mapping[str, str]
    states: Mapping[str, State]
    transitions: Mapping[str, Transition]
    worklists: Mapping[str, Worklist] = field(default_factory=dict)

    def transitions_from(self, state: str) -> list[Transition]:
        """Return the transitions whose sources include state, in file order."""
        return [t for t in self.transitions.values() if state in t.sources]

    def line_of_condition(self, condition: str) -> int | None:
        """Return the line of the first transition naming condition."""
        for transition in self.transitions.values():
            if condition in transition.guard.conditions:
                return transition.line
        return None


class _Mapping(dict):
    """A YAML mapping that remembers its own line and each key's line."""

    line: int = 0
    key_lines: dict


class _LineLoader(yaml.SafeLoader):
    """A safe loader whose mappings carry line numbers and refuse duplicate keys."""

    def construct_mapping(self, node, deep=False):
        mapping = _Mapping()
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in mapping:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)


def load_definition(path: Path | str) -> WorkflowDefinition:
    """Read and validate the workflow file at path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise WorkflowDefinitionError(path, None, f"cannot read: {error.strerror}") from error
    return _parsed(path, text)


@functools.lru_cache(maxsize=16)
def _parsed(path: Path, text: str) -> WorkflowDefinition:
    """Parse and validate text, read from path, once per content.

    Every application parses the file when it starts (each test makes one), and the line-tracking loader is pure
    Python: 6 ms of CPU, a fifth of create_app. The definition is immutable, so engines may share it; an error is
    raised again each time (lru_cache keeps only results).
    """
    try:
        raw = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else None
        raise WorkflowDefinitionError(path, line, f"invalid YAML: {error.problem}") from error
    return _Builder(path, raw).build()


class _Builder:
    """Turn the raw YAML tree into a WorkflowDefinition, checking every reference."""

    def __init__(self, path: Path, raw: Any):
        self.path = path
        if not isinstance(raw, _Mapping):
            self.fail(None, "the file must hold a mapping with states and transitions")
        self.raw = raw

    def fail(self, line: int | None, message: str):
        raise WorkflowDefinitionError(self.path, line, message)

    def section(self, parent: _Mapping, key: str, kind: type = _Mapping, required=True):
        if key not in parent:
            if required:
                self.fail(parent.line, f"missing '{key}'")
            return kind()
        value = parent[key]
        if not isinstance(value, kind):
            self.fail(parent.key_lines[key], f"'{key}' must be a {_kind_name(kind)}")
        return value

    def names(self, parent: _Mapping, key: str, known: Mapping, what: str) -> frozenset[str]:
        value = parent.get(key) or []
        line = parent.key_lines.get(key, parent.line)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(line, f"'{key}' must be a list of names")
        for name in value:
            if name not in known:
                self.fail(line, f"unknown {what} '{name}' in '{key}'")
        return frozenset(value)

    def build(self) -> WorkflowDefinition:
        raw = self.raw
        roles = self.section(raw, "roles")
        permission_titles = self.section(raw, "permissions")
        for name in permission_titles:
            if name not in PERMISSIONS:
                self.fail(permission_titles.key_lines[name], f"unknown permission '{name}'")
        raw_states = self.section(raw, "states")
        if not raw_states:
            self.fail(raw.key_lines["states"], "'states' is empty")
        states = {name: self.state(name, body, roles, permission_titles)
                  for name, body in raw_states.items()}
        initial = raw.get("initial_state")
        if initial not in states:
            self.fail(raw.key_lines.get("initial_state", raw.line),
                      f"initial_state '{initial}' is not a state")
        transitions = {name: self.transition(name, body, states, roles, permission_titles)
                       for name, body in self.section(raw, "transitions").items()}
        worklists = {name: self.worklist(name, body, states, permission_titles)
                     for name, body in self.section(raw, "worklists", required=False).items()}
        self.check_reachable(initial, states, transitions)
        return WorkflowDefinition(
            id=str(raw.get("id", self.path.stem)),
            title=str(raw.get("title", self.path.stem)),
            path=str(self.path),
            initial_state=initial,
            roles=MappingProxyType(dict(roles)),
            permission_titles=MappingProxyType(dict(permission_titles)),
            states=MappingProxyType(states),
            transitions=MappingProxyType(transitions),
            worklists=MappingProxyType(worklists),
        )

    def state(self, name, body, roles, permission_titles) -> State:
        if not isinstance(body, _Mapping):
            self.fail(self.raw["states"].key_lines[name], f"state '{name}' must be a mapping")
        permission_map = self.section(body, "permissions")
        for permission in permission_map:
            if permission not in permission_titles:
                self.fail(permission_map.key_lines[permission],
                          f"state '{name}': unknown permission '{permission}'")
        permissions = {
            permission: self.names(permission_map, permission, roles, "role")
            for permission in permission_titles
        }
        return State(name, str(body.get("title", name)), str(body.get("description", "")),
                     MappingProxyType(permissions), self.raw["states"].key_lines[name])

    def transition(self, name, body, states, roles, permission_titles) -> Transition:
        line = self.raw["transitions"].key_lines[name]
        if not isinstance(body, _Mapping):
            self.fail(line, f"transition '{name}' must be a mapping")
        destination = body.get("to")
        if destination not in states:
            self.fail(body.key_lines.get("to", body.line),
                      f"transition '{name}' goes to unknown state '{destination}'")
        sources = body.get("from")
        if sources == ANY_STATE:
            sources = [state for state in states if state != destination]
        if not isinstance(sources, list) or not sources:
            self.fail(body.key_lines.get("from", body.line),
                      f"transition '{name}': 'from' must be a list of states or \"*\"")
        for source in sources:
            if source not in states:
                self.fail(body.key_lines["from"],
                          f"transition '{name}' comes from unknown state '{source}'")
        guard_body = self.section(body, "guard", required=False)
        for key in guard_body:
            if key not in ("roles", "permissions", "conditions"):
                self.fail(guard_body.key_lines[key], f"transition '{name}': unknown guard key '{key}'")
        conditions = guard_body.get("conditions") or []
        if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
            self.fail(guard_body.key_lines.get("conditions"),
                      f"transition '{name}': 'conditions' must be a list of names")
        guard = Guard(
            roles=self.names(guard_body, "roles", roles, "role"),
            permissions=self.names(guard_body, "permissions", permission_titles, "permission"),
            conditions=tuple(conditions),
        )
        return Transition(name, str(body.get("title", name)), frozenset(sources), destination,
                          guard, bool(body.get("comment_required", False)), line)

    def worklist(self, name, body, states, permission_titles) -> Worklist:
        if body.get("state") not in states:
            self.fail(body.key_lines.get("state", body.line), f"worklist '{name}' names unknown state '{body.get('state')}'")
        if body.get("permission") not in permission_titles:
            self.fail(body.key_lines.get("permission", body.line), f"worklist '{name}' names unknown permission '{body.get('permission')}'")
        return Worklist(name, str(body.get("title", name)), body["state"], body["permission"])

    def check_reachable(self, initial, states, transitions):
        reached, queue = {initial}, deque([initial])
        while queue:
            current = queue.popleft()
            for transition in transitions.values():
                if current in transition.sources and transition.destination not in reached:
                    reached.add(transition.destination)
                    queue.append(transition.destination)
        for name, state in states.items():
            if name not in reached:
                self.fail(state.line, f"state '{name}' cannot be reached from '{initial}'")


def _kind_name(kind: type) -> str:
    return {_Mapping: "mapping", list: "list", str: "string"}.get(kind, kind.__name__)
