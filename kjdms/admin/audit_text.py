"""Name audit events as a finance clerk reads them: Chinese actions, the detail as 键：值 pairs, ID numbers masked."""
from __future__ import annotations

import re
from urllib.parse import unquote_plus

from markupsafe import Markup, escape
from sqlalchemy import select

from ..display import mask_id_number
from ..models import Region
from ..services.settings import TITLES as SETTING_TITLES
from ..vocabulary import (ATTACHMENT_SLOTS, AUDIT_ACTIONS, AUDIT_DETAIL_KEYS, AUDIT_FIELD_LABELS, AUDIT_OBJECT_TYPES,
                          STAFF_ROLES, WORKFLOW_ACTION_PREFIX, flagged_titles)
from ..workflow.definition import WorkflowDefinition

# A resident ID number (18 characters, the last may be X) or an old 15-digit one, standing alone: the detail
# holds none by design (services/audit.py), but free text (a reason, a purpose, a filter typed) may.
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
REGION_KEYS = ("region", "code", "parent")
# Actors without a staff username, as services/audit.py and the callers of SystemActor label them (stored so:
# the labels are part of the hash chain; only their display is Chinese).
ACTOR_NAMES = {"anonymous": "未登录的访问者", "system": "系统（定时任务）", "cli": "命令行操作员", "kjdms demo": "演示数据"}
ACTOR_PREFIXES = {"applicant:": "会计人员本人（账号{}）", "api:": "API 调用方：{}"}
DOSSIER_KEYS = ("dossier_id", "working_copy")


def masked(text: str) -> str:
    """Return text with every ID number in it masked."""
    return ID_NUMBER.sub(lambda match: mask_id_number(match.group()), text)


def dossier_number(dossier_id) -> str:
    """Return a dossier's id as the number people see (KJ0000000012)."""
    return f"KJ{dossier_id:010d}" if isinstance(dossier_id, int) else str(dossier_id)


def action_labels(definition: WorkflowDefinition) -> dict[str, str]:
    """Return every action code the log names → its label, the workflow's transitions included."""
    transitions = {WORKFLOW_ACTION_PREFIX + name: f"档案：{transition.title}"
                   for name, transition in definition.transitions.items()}
    return {**AUDIT_ACTIONS, **transitions}


def region_names(session) -> dict[str, str]:
    """Return every region's code → name (a few hundred rows: read once for a page or an export)."""
    return dict(session.execute(select(Region.code, Region.name)).all())


class AuditText:
    """The names of one page's or one export's events: the workflow's and the regions', read once."""

    def __init__(self, definition: WorkflowDefinition, regions: dict[str, str]):
        self.actions = action_labels(definition)
        self.states = {name: state.title for name, state in definition.states.items()}
        self.region_names = regions

    def action(self, code: str) -> str:
        """Return the Chinese name of an action code (an unknown one as itself)."""
        return self.actions.get(code, code)

    @staticmethod
    def actor(label: str) -> str:
        """Return who acted as a clerk reads it: staff by username, the others by what they are."""
        if label in ACTOR_NAMES:
            return ACTOR_NAMES[label]
        for prefix, shown in ACTOR_PREFIXES.items():
            if label.startswith(prefix):
                return shown.format(label[len(prefix):])
        return label

    @staticmethod
    def stored_actor(text: str) -> str:
        """Return the stored label of an actor typed as the page shows it (a username stays itself)."""
        for label, shown in ACTOR_NAMES.items():
            if text == shown:
                return label
        for prefix, shown in ACTOR_PREFIXES.items():
            before, after = shown.split("{}")
            if text.startswith(before) and text.endswith(after) and len(text) > len(before) + len(after):
                return prefix + text[len(before):len(text) - len(after)]
        return text

    @staticmethod
    def object_type(code: str) -> str:
        """Return the Chinese name of an event's kind of object."""
        return AUDIT_OBJECT_TYPES.get(code, code)

    @staticmethod
    def object_id(event) -> str:
        """Return the event's object as people number it: a dossier by its KJ number."""
        if event.object_id is None:
            return ""
        return dossier_number(event.object_id) if event.object_type == "dossier" else str(event.object_id)

    def pairs(self, event) -> list[str]:
        """Return the event's detail as 键：值 texts, keys and codes in Chinese, ID numbers masked."""
        return [f"{AUDIT_DETAIL_KEYS.get(key, key)}：{masked(self.value(event, key, value))}"
                for key, value in (event.detail or {}).items()]

    def detail_html(self, event) -> Markup:
        """Return the detail for the list page: one escaped pair a line."""
        return Markup("<br>").join(escape(pair) for pair in self.pairs(event))

    def detail_text(self, event) -> str:
        """Return the detail for the CSV export: the pairs on one line."""
        return "；".join(self.pairs(event))

    def region(self, code) -> str:
        """Return a region code with its name when the region exists."""
        name = self.region_names.get(code)
        return f"{name}（{code}）" if name else self.plain(code)

    def value(self, event, key: str, value) -> str:
        """Return one detail value as Chinese text."""
        fields = AUDIT_FIELD_LABELS.get(event.object_type, {})
        if key in ("from_state", "to_state"):
            return self.states.get(value, self.plain(value))
        if key == "role":
            return STAFF_ROLES.get(value, self.plain(value))
        if key in REGION_KEYS:
            return self.region(value) if value else "—"
        if key == "regions":
            return "、".join(self.region(code) for code in value or ()) or "—"
        if key == "flagged":
            return "、".join(flagged_titles(value)) or "—"
        if key == "fields":
            return "、".join(fields.get(name, name) for name in value or ()) or "—"
        if key == "changes" and isinstance(value, dict):
            return "；".join(self.change(fields.get(name, name), self.region if name == "parent" else self.plain, change)
                            for name, change in value.items())
        if key == "slot":
            return ATTACHMENT_SLOTS[value].title if value in ATTACHMENT_SLOTS else self.plain(value)
        if key == "slots":
            return "、".join(ATTACHMENT_SLOTS[slot].title if slot in ATTACHMENT_SLOTS else slot
                            for slot in value or ()) or "—"
        if key == "key":
            return SETTING_TITLES.get(value, self.plain(value))
        if key in DOSSIER_KEYS:
            return dossier_number(value) if value is not None else "—"
        if key == "dossiers":
            return "、".join(dossier_number(dossier) for dossier in value or ()) or "无"
        if key == "query":
            return unquote_plus(value or "") or "无"
        return self.plain(value)

    @staticmethod
    def change(label: str, shown, change: dict) -> str:
        """Return one changed field as "label old → new"."""
        return f"{label} {shown(change.get('old'))} → {shown(change.get('new'))}"

    def plain(self, value) -> str:
        """Return a value with no meaning of its own as text: yes/no, lists, counts."""
        if value is None or value == "" or value == []:
            return "—"
        if isinstance(value, bool):
            return "是" if value else "否"
        if isinstance(value, list):
            return "、".join(self.plain(item) for item in value)
        if isinstance(value, dict):
            return "，".join(f"{AUDIT_DETAIL_KEYS.get(key, key)} {self.plain(item)}" for key, item in value.items())
        return str(value)
