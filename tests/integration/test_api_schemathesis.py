"""Schemathesis against the live application (in-process WSGI): answers generated from the served document itself.

Two callers run every generated case: a downstream client's key and a staff token. The document must hold for
every answer (status, content type, headers, body) and no answer may be a server error. The example count is
bounded (KJDMS_SCHEMATHESIS_EXAMPLES cases a mode, 60 by default, over all operations) so the suite stays quick on two cores.
"""
from __future__ import annotations

import os
import shutil

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from kjdms import create_app
from kjdms.extensions import db
from kjdms.permissions import SYSTEM
from kjdms.services.api_clients import create_client
from kjdms.services.api_tokens import issue_token
from kjdms.services.reference import region_by_code
from tests.conftest import make_config
from tests.helpers import applicant, staff

pytestmark = pytest.mark.pages  # SQLite only: what it drives is tested on both databases elsewhere

EXAMPLE_ID_NUMBER = "211302199001010017"
EXAMPLES = int(os.environ.get("KJDMS_SCHEMATHESIS_EXAMPLES", "60"))
# The document cannot say everything the server checks: an ID number's check digit (GB 11643) and a name in Han
# characters are refused with 422 and the field named, though the strings fit the schema's types and lengths.
CONFIG = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]}}})


@pytest.fixture
def live(tmp_path, sqlite_template):
    """The application with a person, a client key and a staff token; no application context left pushed."""
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    application = create_app(make_config(tmp_path))
    with application.app_context():
        applicant(name="张伟", id_number=EXAMPLE_ID_NUMBER)  # the document's example person: found
        reviewer = staff("reviewer_shuangta", "reviewer", "211302")
        _, key = create_client(db.session, SYSTEM, name="考试报名系统", purpose="资格考试报名核验",
                               regions=[region_by_code(db.session, "211300")], may_see_credit=True,
                               rate_per_minute=100_000)
        token = issue_token(application.secret_key, reviewer)
        db.session.remove()
    # Each request then pushes its own application context, as under a real server (nothing shared through g).
    yield {"app": application, "callers": {"client": f"Bearer {key}", "staff": f"Bearer {token}"}}
    with application.app_context():
        db.engine.dispose()


# Schemathesis' own pytest loader (from_fixture) reads a private attribute pytest 9 no longer has: the cases are
# drawn here with Hypothesis from the schema's strategy instead, which runs the same checks on each answer.
def call_all(case, live, statuses: Counter) -> None:
    """Call case as each caller and validate every answer against the document."""
    for authorization in live["callers"].values():
        response = case.call_and_validate(headers={"Authorization": authorization})
        statuses[f"{case.method} {case.path} {response.status_code}"] += 1


def summary(name: str, statuses: Counter) -> int:
    """Print the run's summary line (for the report) and return how many calls it made."""
    calls = sum(statuses.values())
    print(f"schemathesis {name}: {calls} calls, 0 failures; " +
          ", ".join(f"{key}×{count}" for key, count in sorted(statuses.items())))
    return calls


HYPOTHESIS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


# Schemathesis' own pytest loader (from_fixture) reads a private attribute pytest 9 no longer has: the cases are
# drawn here with Hypothesis from the schema's strategies instead; call_and_validate runs the same checks.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_generated_answer_conforms_and_none_is_a_server_error(live, mode):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", live["app"], config=CONFIG)
    statuses: Counter = Counter()

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, **HYPOTHESIS)
    def each_case(case):
        call_all(case, live, statuses)

    each_case()
    assert summary(mode.value, statuses) >= EXAMPLES


def test_the_documents_examples_are_answered_as_documented(live):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", live["app"], config=CONFIG)
    statuses: Counter = Counter()
    for result in schema.get_all_operations():
        for strategy in schema.get_strategies_from_examples(result.ok()):
            @given(case=strategy)
            @settings(max_examples=3, **HYPOTHESIS)
            def each_example(case):
                call_all(case, live, statuses)

            each_example()
    summary("examples", statuses)
    # The example person exists: the lookup finds them with the client's key (and refuses the staff token).
    assert statuses["POST /api/v1/status-lookups 200"] and statuses["POST /api/v1/status-lookups/batch 200"]
