"""What the pages build once instead of on every request writes exactly what the generic way wrote (issue 15)."""
import re

import pytest
from flask import render_template_string, url_for

from wtforms import SelectField, TextAreaField

from kjdms.forms import ActionForm, Form, TransitionForm, wtforms_messages
from kjdms.vocabulary import DOSSIER_LABELS, REJECTABLE_ITEMS
from kjdms.views import id_link_prefix
from kjdms.views.filters import bootstrap_tags, fixed_address, id_address, with_query
from tests.helpers import review_queue
from tests.webclient import csrf_of, text

pytestmark = pytest.mark.pages


class TestAddresses:
    @pytest.mark.parametrize("arguments", [
        {}, {"waited": None}, {"region": 7, "waited": None}, {"region": None, "waited": 30},
        {"region": 12, "waited": 15, "page": 3}, {"region": None, "waited": None, "page": 2},
    ])
    def test_with_query_writes_what_url_for_writes(self, sqlite_app, arguments):
        with sqlite_app.test_request_context("/"):
            assert with_query(url_for("review.worklist"), **arguments) == url_for("review.worklist", **arguments)

    def test_fixed_addresses_follow_the_application_root(self, sqlite_app):
        for root in ("", "/kjdms", "/other"):
            with sqlite_app.test_request_context("/", base_url=f"http://localhost{root}/"):
                for endpoint in ("home.index", "review.worklist", "notices.index", "auth.logout"):
                    # Built once per root: the second root must not get the first one's addresses.
                    assert fixed_address(endpoint) == url_for(endpoint) and url_for(endpoint).startswith(f"{root}/")
                assert fixed_address("static", filename="site.css") == url_for("static", filename="site.css")

    def test_id_addresses_are_url_fors_wherever_the_integer_sits(self, sqlite_app):
        for root in ("", "/kjdms"):
            with sqlite_app.test_request_context("/", base_url=f"http://localhost{root}/"):
                for endpoint, argument in [("files.preview", "version_id"), ("files.download", "version_id"),
                                           ("credit.dossier_file", "dossier_id")]:
                    for value in (1, 12, 2**31 - 1):
                        assert id_address(endpoint, argument, value) == url_for(endpoint, **{argument: value})
                assert id_link_prefix("review.dossier", "dossier_id") == f"{root}/review/"
                with pytest.raises(ValueError):
                    id_link_prefix("files.preview", "version_id")  # the number is not the address's end

    def test_bootstraps_tags_are_bootstrap_flasks_and_follow_the_application_root(self, sqlite_app):
        bootstrap = sqlite_app.extensions["bootstrap"]
        for root in ("", "/kjdms"):
            with sqlite_app.test_request_context("/", base_url=f"http://localhost{root}/"):
                assert bootstrap_tags("css") == bootstrap.load_css() and f'href="{root}/bootstrap/' in bootstrap_tags("css")
                assert bootstrap_tags("js") == bootstrap.load_js() and f'src="{root}/bootstrap/' in bootstrap_tags("js")


class TestHiddenInputs:
    def test_the_hand_written_inputs_are_the_ones_wtforms_writes(self, sqlite_app):
        """base.html and the review page write the CSRF and version inputs themselves; wtforms wrote these."""
        with sqlite_app.test_request_context("/"):
            form = TransitionForm(lock_version=7)
            by_hand = render_template_string(
                '<input id="csrf_token" name="csrf_token" type="hidden" value="{{ csrf_token() }}">'
                '<input id="lock_version" name="lock_version" type="hidden" '
                'value="{{ \'\' if form.lock_version.data is none else form.lock_version.data }}">', form=form)
            assert by_hand == f"{form.csrf_token}{form.lock_version}"
            assert str(ActionForm(formdata=None).csrf_token) == by_hand.split("><")[0] + ">"

    def test_the_review_page_carries_the_dossiers_version_and_a_token_that_is_accepted(self, auth, people, workflow,
                                                                                         blobs):
        queue = review_queue(people, workflow, blobs)
        reviewer = auth("reviewer")
        dossier = queue["孙三"]
        page = reviewer.get(f"/review/{dossier.id}")
        assert page.status_code == 200
        assert (f'<input id="lock_version" name="lock_version" type="hidden" value="{dossier.lock_version}">'
                in text(page))
        # Every form of the page carries the request's one token (sign-out, reveal, the decision).
        assert len(set(re.findall(r'name="csrf_token" type="hidden" value="([^"]+)"', text(page)))) == 1
        answer = reviewer.post(f"/review/{dossier.id}/approve",
                               data={"csrf_token": csrf_of(page), "lock_version": str(dossier.lock_version)})
        assert answer.status_code == 302
        assert reviewer.post(f"/review/{dossier.id}/reveal", data={"csrf_token": "forged"}).status_code == 400

    def test_the_review_pages_information_rows_are_the_field_filters_values_under_their_labels(
            self, auth, people, workflow, blobs):
        """The rows come from review.field_rows; the template wrote them with the field filter, these names."""
        dossier = review_queue(people, workflow, blobs)["孙三"]
        page = text(auth("reviewer").get(f"/review/{dossier.id}"))
        names = ["sex", "birth_date", "phone", "education", "scope_category", "job_types", "employer_name",
                 "employer_uscc", "employer_org_code", "employer_region", "household_region", "is_student",
                 "school_region", "qualification_level", "qualification_certificate_number",
                 "legacy_certificate_number", "job_started_on", "information_changed_on", "region"]
        by_filter = render_template_string(
            "{% for name in names %}\n        <tr><th>{{ labels.get(name, '归属地区') }}</th><td>{{ dossier | "
            "field(name) }}</td></tr>\n      {% endfor %}", names=names, labels=DOSSIER_LABELS, dossier=dossier)
        rows = re.compile(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>")
        assert rows.findall(page)[1:] == rows.findall(by_filter)  # after the name row
        assert len(rows.findall(by_filter)) == 19 and rows.findall(page)[-1][0] == "归属地区"

    def test_signing_out_with_the_pages_token_works_and_without_it_is_refused(self, auth):
        reviewer = auth("reviewer")
        page = reviewer.get("/review/")
        assert reviewer.post("/logout", data={"csrf_token": "forged"}).status_code == 400
        assert reviewer.get("/review/").status_code == 200  # still signed in
        assert reviewer.post("/logout", data={"csrf_token": csrf_of(page)}).status_code == 302
        assert reviewer.get("/review/").status_code == 302  # to the sign-in page


class TestWtformsMessages:
    def test_read_once_and_in_chinese(self, sqlite_app):
        with sqlite_app.test_request_context("/"):
            translations = ActionForm(formdata=None).meta.get_translations(None)
            assert translations is wtforms_messages("zh_Hans_CN")
            assert translations.gettext("Not a valid choice.") == "不是有效的选择。"

    def test_wtforms_own_refusals_still_speak_chinese(self, sqlite_app):
        class Choice(Form):
            level = SelectField("级别", choices={"junior": "初级"})

        with sqlite_app.test_request_context("/", method="POST", data={"level": "forged"}):
            form = Choice(meta={"csrf": False})
            assert not form.validate()
            assert form.level.errors == ["不是有效的选择。"]


FIELD = '{% from "macros.html" import field %}{{ field(form.fields, readonly) }}'


def rendered(app, ticked=(), errors=(), readonly=False) -> str:
    """Render the review page's rejectable items with ticked items, errors and readonly."""
    with app.test_request_context("/"):
        form = TransitionForm(formdata=None, fields=list(ticked))
        form.fields.choices = REJECTABLE_ITEMS
        form.fields.errors = list(errors)
        return render_template_string(FIELD, form=form, readonly=readonly)


class TestChoiceInputs:
    """The radio buttons and checkboxes of the field macro: kept once written, yet every tick and state of its own."""

    def test_each_option_once_with_its_tick(self, sqlite_app):
        codes = list(REJECTABLE_ITEMS)
        page = rendered(sqlite_app, ticked=codes[1:3])
        assert re.findall(r'name="fields" type="checkbox" value="([^"]*)"', page) == codes
        assert re.findall(r'<input checked [^>]*value="([^"]*)"', page) == codes[1:3]
        assert 'id="fields-0"' in page and f'id="fields-{len(codes) - 1}"' in page

    def test_a_kept_answer_never_carries_another_forms_state(self, sqlite_app):
        codes = list(REJECTABLE_ITEMS)
        plain = rendered(sqlite_app)
        assert rendered(sqlite_app, ticked=codes[:1]).count(" checked") == 1
        assert rendered(sqlite_app) == plain and " checked" not in plain
        assert rendered(sqlite_app, errors=["错"]).count("form-check-input is-invalid") == len(codes)
        assert "is-invalid" not in rendered(sqlite_app) and " disabled" not in plain
        assert rendered(sqlite_app, readonly=True).count(" disabled") == len(codes)


MACRO = '{% from "macros.html" import field %}{{ field(f) }}'
KEPT = "{{ field_once(f) }}"


def both_ways(app, make_form, name):
    """Render the field name of a fresh form by the field macro and by field_once; return (macro's, field_once's)."""
    with app.test_request_context("/"):
        form = make_form()
        by_macro = render_template_string(MACRO, f=form[name])
        return by_macro, render_template_string(KEPT, f=make_form()[name])


def transition_form(comment=None, ticked=None, errors=()):
    """Return a TransitionForm as the review page builds it, with what was typed, ticked and refused."""
    def make():
        form = TransitionForm(formdata=None, comment=comment, fields=ticked)
        form.fields.choices = REJECTABLE_ITEMS
        form.comment.errors = list(errors)
        return form
    return make


class TestFieldOnce:
    """The review page's comment box and checkboxes: the field macro's answer, kept while nobody touched them."""

    @pytest.mark.parametrize("name", ["comment", "fields"])
    def test_an_untouched_field_is_written_as_the_macro_writes_it_and_kept(self, sqlite_app, name):
        by_macro, kept = both_ways(sqlite_app, transition_form(), name)
        assert kept == by_macro and ('<textarea' in kept if name == "comment" else 'type="checkbox"' in kept)
        with sqlite_app.test_request_context("/"):
            first, second = (sqlite_app.jinja_env.globals["field_once"](transition_form()()[name]) for _ in "12")
        assert first is second  # written once, kept

    @pytest.mark.parametrize("state", [{"comment": "材料不清晰 <b>&"}, {"ticked": ["phone"]}, {"errors": ["意见：必填"]}])
    def test_what_was_typed_ticked_or_refused_is_written_afresh_and_never_kept(self, sqlite_app, state):
        blank = both_ways(sqlite_app, transition_form(), "comment")[1] + both_ways(sqlite_app, transition_form(),
                                                                                     "fields")[1]
        for name in ("comment", "fields"):
            by_macro, kept = both_ways(sqlite_app, transition_form(**state), name)
            assert kept == by_macro
        assert both_ways(sqlite_app, transition_form(**state), "comment")[1] + both_ways(
            sqlite_app, transition_form(**state), "fields")[1] != blank
        # The kept answers still are the untouched fields'.
        again = both_ways(sqlite_app, transition_form(), "comment")[1] + both_ways(sqlite_app, transition_form(),
                                                                                     "fields")[1]
        assert again == blank and "材料不清晰" not in again and " checked" not in again and "必填" not in again

    def test_another_forms_field_of_the_same_name_gets_its_own_answer(self, sqlite_app):
        class Note(Form):
            comment = TextAreaField("备注", render_kw={"rows": 2}, description="两百字以内")

        transition = both_ways(sqlite_app, transition_form(), "comment")[1]
        by_macro, kept = both_ways(sqlite_app, Note, "comment")
        assert kept == by_macro != transition and "备注" in kept and 'rows="2"' in kept and "两百字以内" in kept
