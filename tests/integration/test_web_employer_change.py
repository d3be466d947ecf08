"""Changing employer: the organisation code derived from the old USCC follows the new one."""
import pytest

from kjdms.models import Dossier
from kjdms.services.demo import demo_uscc
from tests.helpers import USCC_SHUANGTA
from tests.webclient import basic_information, fresh, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

NEW_USCC = demo_uscc("91211303", "MA0Y9B2C")


def test_a_new_uscc_replaces_the_code_derived_from_the_old_one(auth, people):
    browser = auth("owner")
    assert f'value="{USCC_SHUANGTA[8:17]}"' in text(browser.get("/me/edit"))  # shown as the page will send it back
    response = browser.submit("/me/edit", basic_information(
        employer_name="朝阳市龙城区新单位有限公司", employer_uscc=NEW_USCC, employer_org_code=USCC_SHUANGTA[8:17]))
    assert response.status_code == 302, text(response)
    dossier = fresh(Dossier, people["dossier"].id)
    assert dossier.employer_uscc == NEW_USCC and dossier.employer_org_code == NEW_USCC[8:17]


def test_a_code_typed_by_hand_that_contradicts_the_new_uscc_is_still_refused(auth, people):
    browser = auth("owner")
    other = demo_uscc("91211302", "MA0YAAAA")[8:17]
    response = browser.submit("/me/edit", basic_information(employer_uscc=NEW_USCC, employer_org_code=other))
    assert response.status_code == 422
    assert "组织机构代码：与统一社会信用代码第9至17位不一致" in text(response)
    assert fresh(Dossier, people["dossier"].id).employer_uscc == USCC_SHUANGTA


def test_the_code_typed_to_match_the_new_uscc_is_kept(auth, people):
    browser = auth("owner")
    response = browser.submit("/me/edit", basic_information(employer_uscc=NEW_USCC, employer_org_code=NEW_USCC[8:17]))
    assert response.status_code == 302
    assert fresh(Dossier, people["dossier"].id).employer_org_code == NEW_USCC[8:17]
