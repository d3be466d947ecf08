"""templates/admin/ shadows three of Flask-Admin's macro files only to drop their inline handlers; an upgrade of
Flask-Admin that changes one of them fails here, so the copy is brought in step rather than silently stale."""
from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path

import flask_admin
import pytest

from kjdms.config import PROJECT_ROOT

UPSTREAM = Path(flask_admin.__file__).parent / "templates" / "bootstrap4"
# Each shadowed file and the sha256 of Flask-Admin's own copy it was made from (Flask-Admin 2.2.1).
MADE_FROM = {
    "admin/model/layout.html": "9801f7f6e21b6dfef6231ea0a2e297ff9903692e894ac1f72e84bd6dddea8cbe",
    "admin/model/row_actions.html": "4dc1ade152ecd029860ea8248d10d60ec558571d798ccb20017cd2cc4bb42a7d",
    "admin/actions.html": "685288ebd9108462ae72a04b894303142f1f6b953834295a85f4c4e8d233a514",
}
HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


def ours(name: str) -> list[str]:
    """Return the lines of kjdms's copy of name, without the comment at its head saying why it exists."""
    text = (PROJECT_ROOT / "templates" / name).read_text(encoding="utf-8")
    assert text.startswith("{#"), f"templates/{name} should say why it shadows Flask-Admin's"
    return text.split("#}\n", 1)[1].splitlines()


@pytest.mark.parametrize("name", MADE_FROM)
def test_flask_admins_file_is_still_the_one_the_copy_was_made_from(name):
    digest = hashlib.sha256((UPSTREAM / name).read_bytes()).hexdigest()
    assert digest == MADE_FROM[name], (f"Flask-Admin's {name} changed: bring templates/{name} in step with it "
                                       f"(no inline handler), then record the new sha256 here")


@pytest.mark.parametrize("name", MADE_FROM)
def test_the_copy_differs_only_where_an_inline_handler_was(name):
    theirs = (UPSTREAM / name).read_text(encoding="utf-8").splitlines()
    changed = [line for line in difflib.ndiff(theirs, ours(name)) if line[:2] in ("- ", "+ ")]
    removed = [line[2:] for line in changed if line.startswith("- ")]
    assert removed and all(HANDLER.search(line) for line in removed), changed
    assert len(changed) == 2 * len(removed), changed  # each such line replaced by one, nothing else touched
    assert not any(HANDLER.search(line) for line in ours(name))
