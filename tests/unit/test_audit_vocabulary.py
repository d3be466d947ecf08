"""Every audit action code written anywhere in kjdms has a Chinese label in the audit log."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from kjdms.admin.audit_text import action_labels
from kjdms.vocabulary import CREDIT_ACTIONS
from kjdms.workflow.definition import load_definition

PACKAGE = Path(__file__).resolve().parents[2] / "kjdms"
DEFINITION = load_definition(PACKAGE.parent / "workflows" / "dossier.yaml")
# The codes built at run time: the prefix of each f-string → the values its one placeholder takes.
# A new f-string code fails below until its values are named here (and labelled in the vocabulary).
DYNAMIC = {
    "workflow.": set(DEFINITION.transitions),        # services/lifecycle.fire_transition
    "credit.": set(CREDIT_ACTIONS),                  # services/credit._add
    "document.": {"download", "preview"},            # services/disclosures.document_read (views/files.py)
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def codes_of(node: ast.expr, path: Path) -> set[str]:
    """Return the action codes an audit.record call's argument can hold."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return codes_of(node.body, path) | codes_of(node.orelse, path)
    if isinstance(node, ast.Name):
        return {getattr(importlib.import_module(module_name(path)), node.id)}
    if isinstance(node, ast.JoinedStr):
        prefix = "".join(part.value for part in node.values if isinstance(part, ast.Constant))
        assert len(node.values) == 2 and prefix in DYNAMIC, f"{path}:{node.lineno}: name this code's values in DYNAMIC"
        return {prefix + value for value in DYNAMIC[prefix]}
    raise AssertionError(f"{path}:{node.lineno}: an action code this test cannot read: {ast.dump(node)}")


def written_codes() -> set[str]:
    """Return every action code passed to audit.record in the package."""
    codes = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "record"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit"):
                codes |= codes_of(node.args[2], path)
    return codes


def test_every_written_action_code_has_a_chinese_label():
    codes = written_codes()
    # The scan itself works: it finds the codes of the services, the API, the commands and the back office.
    assert {"role.assign", "workflow.approve", "credit.revoke", "document.preview", "api_status_lookup",
            "backup.restore", "audit.export", "user.disable", "deadline_purge.partial"} <= codes
    labels = action_labels(DEFINITION)
    missing = sorted(code for code in codes if code not in labels)
    assert missing == [], f"label these in kjdms/vocabulary.py AUDIT_ACTIONS: {missing}"
    not_chinese = sorted(code for code in codes if not re.search(r"[\u4e00-\u9fff]", labels[code]))
    assert not_chinese == []


def test_the_workflow_actions_are_named_by_the_workflow_file():
    labels = action_labels(DEFINITION)
    assert labels["workflow.approve"] == "档案：审核确认"
    assert labels["workflow.purge"] == "档案：删除个人信息"
