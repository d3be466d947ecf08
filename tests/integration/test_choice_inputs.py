"""The radio buttons and checkboxes of the field macro: kept once written, yet every tick and state of its own."""
import re

from flask import render_template_string

from kjdms.forms import TransitionForm
from kjdms.vocabulary import REJECTABLE_ITEMS

FIELD = '{% from "macros.html" import field %}{{ field(form.fields, readonly) }}'


def rendered(app, ticked=(), errors=(), readonly=False) -> str:
    """Render the review page's rejectable items with ticked items, errors and readonly."""
    with app.test_request_context("/"):
        form = TransitionForm(formdata=None, fields=list(ticked))
        form.fields.choices = REJECTABLE_ITEMS
        form.fields.errors = list(errors)
        return render_template_string(FIELD, form=form, readonly=readonly)


def test_each_option_once_with_its_tick(sqlite_app):
    codes = list(REJECTABLE_ITEMS)
    page = rendered(sqlite_app, ticked=codes[1:3])
    assert re.findall(r'name="fields" type="checkbox" value="([^"]*)"', page) == codes
    assert re.findall(r'<input checked [^>]*value="([^"]*)"', page) == codes[1:3]
    assert 'id="fields-0"' in page and f'id="fields-{len(codes) - 1}"' in page


def test_a_kept_answer_never_carries_another_forms_state(sqlite_app):
    codes = list(REJECTABLE_ITEMS)
    plain = rendered(sqlite_app)
    assert rendered(sqlite_app, ticked=codes[:1]).count(" checked") == 1
    assert rendered(sqlite_app) == plain and " checked" not in plain
    assert rendered(sqlite_app, errors=["错"]).count("form-check-input is-invalid") == len(codes)
    assert "is-invalid" not in rendered(sqlite_app) and " disabled" not in plain
    assert rendered(sqlite_app, readonly=True).count(" disabled") == len(codes)
