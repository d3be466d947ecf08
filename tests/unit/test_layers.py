"""The dependency direction of ARCHITECTURE.md: views, admin, commands → services → documents → the rest."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kjdms"

# Each layer and the kjdms modules it must never import (a prefix names a package and all inside it).
FORBIDDEN = {
    "kjdms.documents": ("kjdms.services", "kjdms.views", "kjdms.admin", "kjdms.commands", "kjdms.backends",
                        "kjdms.worker", "kjdms.create_app"),
    "kjdms.services": ("kjdms.views", "kjdms.admin", "kjdms.commands", "kjdms.backends", "kjdms.worker",
                       "kjdms.create_app", "kjdms.forms"),
    "kjdms.search": ("kjdms.services", "kjdms.documents", "kjdms.views", "kjdms.commands", "kjdms.backends"),
    "kjdms.blobs": ("kjdms.services", "kjdms.documents", "kjdms.views", "kjdms.commands", "kjdms.backends"),
    # Sending is plumbing, like storing: it knows addresses and texts, not the application's tables.
    "kjdms.messaging": ("kjdms.services", "kjdms.documents", "kjdms.views", "kjdms.commands", "kjdms.backends",
                        "kjdms.models", "kjdms.extensions"),
    "kjdms.models": ("kjdms.services", "kjdms.documents", "kjdms.views", "kjdms.commands", "kjdms.backends"),
    "kjdms.vocabulary": ("kjdms.",),
}
# The workflow package is plain data and logic: no web framework, no database, nothing else of kjdms.
WORKFLOW_FORBIDDEN = ("flask", "sqlalchemy", "kjdms.models", "kjdms.services", "kjdms.extensions")


def module_name(path: Path) -> str:
    """Return the dotted name of a module file under kjdms/."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Return every module (and module.name for `from m import name`) that a file imports, resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            source = ".".join([*base, node.module] if node.module else base)
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def modules():
    return sorted(path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts)


def test_the_layer_rules_see_every_import():
    assert "kjdms.services.transaction.committing" in imported_names(PACKAGE / "services" / "dossiers.py")
    assert "kjdms.models.CreditChain" in imported_names(PACKAGE / "documents" / "credit_file.py")


@pytest.mark.parametrize("path", modules(), ids=lambda path: module_name(path))
def test_no_module_imports_a_layer_above_it(path):
    name = module_name(path)
    imported = imported_names(path)
    for layer, forbidden in FORBIDDEN.items():
        if name == layer or name.startswith(layer + "."):
            broken = sorted(i for i in imported if i.startswith(forbidden) and not i.startswith(layer))
            assert not broken, f"{name} imports {broken}, a layer above it"
    if name.startswith("kjdms.workflow"):
        broken = sorted(i for i in imported if i.split(".")[0] in ("flask", "sqlalchemy") or
                        i.startswith(WORKFLOW_FORBIDDEN))
        assert not broken, f"{name} imports {broken}"
