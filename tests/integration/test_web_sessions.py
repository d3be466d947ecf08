"""Revocable sessions: sign-out, a password change, disabling and losing a role end every copy of the cookie; idle and absolute limits."""
from datetime import timedelta

import pytest
from sqlalchemy import delete

from kjdms.extensions import db
from kjdms.models import RoleAssignment, User, utcnow
from kjdms.services.accounts import set_password
from kjdms.services.sessions import LAST_SEEN_AT, SIGNED_IN_AT, end_all_sessions
from tests.helpers import APPLICANT_PASSWORD, STAFF_PASSWORD
from tests.webclient import csrf_of, fresh, text


def copy_of(browser, into):
    """Give the browser into a copy of browser's session cookie, as a thief who copied it would hold."""
    into.set_cookie("session", browser.get_cookie("session").value)
    return into


def signed_in_applicant(browser, owner):
    page = browser.submit("/login", {"name": owner.person.name, "id_number": owner.person.id_number,
                                     "password": APPLICANT_PASSWORD})
    assert page.status_code == 302
    return browser


def signed_in_staff(browser, username):
    page = browser.submit("/login/staff", {"staff-username": username, "staff-password": STAFF_PASSWORD},
                          page="/login")
    assert page.status_code == 302
    return browser


def reaches(browser, path="/me/") -> bool:
    return browser.get(path).status_code == 200


def shift_clock(browser, **ago):
    """Make the browser's session look as if it signed in and was last used that long ago."""
    with browser.session_transaction() as session:
        for key, delta in ago.items():
            session[key] = int((utcnow() - delta).timestamp())


class TestRevocation:
    def test_a_cookie_copied_before_sign_out_no_longer_works_after_it(self, browser, people):
        owner = people["owner"]
        victim = signed_in_applicant(browser(), owner)
        thief = copy_of(victim, browser())
        assert reaches(thief) and owner.person.id_number in text(thief.get("/me/"))
        assert victim.submit("/logout", page="/me/").status_code == 302
        gone = thief.get("/me/")
        assert gone.status_code == 302 and gone.headers["Location"].startswith("/login")

    def test_a_staff_cookie_copied_before_sign_out_cannot_reveal_an_id_number(self, browser, people):
        dossier = people["dossier"]
        reviewer = signed_in_staff(browser(), "reviewer_shuangta")
        thief = copy_of(reviewer, browser())
        page = thief.get(f"/review/{dossier.id}")
        token = csrf_of(page)
        reviewer.submit("/logout", page="/review/")
        response = thief.post(f"/review/{dossier.id}/reveal", data={"csrf_token": token})
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
        assert dossier.person.id_number not in text(response)

    def test_signing_out_ends_the_sessions_on_other_devices_too(self, browser, people):
        phone = signed_in_applicant(browser(), people["owner"])
        laptop = signed_in_applicant(browser(), people["owner"])
        phone.submit("/logout", page="/me/")
        assert not reaches(laptop)

    def test_signing_in_again_after_sign_out_works(self, browser, people):
        first = signed_in_applicant(browser(), people["owner"])
        first.submit("/logout", page="/me/")
        assert reaches(signed_in_applicant(browser(), people["owner"]))

    def test_a_password_change_ends_every_session(self, browser, people):
        owner = people["owner"]
        signed = signed_in_applicant(browser(), owner)
        set_password(db.session, fresh(User, owner.id), "another-pass-9")
        db.session.commit()
        assert not reaches(signed)

    def test_disabling_an_account_ends_its_sessions_for_good(self, browser, people):
        owner = people["owner"]
        signed = signed_in_applicant(browser(), owner)
        user = fresh(User, owner.id)
        user.is_active = False
        db.session.commit()
        assert not reaches(signed)
        user.is_active = True  # enabling again does not bring the old session back
        db.session.commit()
        assert not reaches(signed)

    def test_removing_a_role_ends_the_staff_session(self, browser, people):
        signed = signed_in_staff(browser(), "reviewer_shuangta")
        assert reaches(signed, "/review/")
        for assignment in fresh(User, people["reviewer"].id).role_assignments:
            db.session.delete(assignment)
        db.session.commit()
        assert signed.get("/review/").status_code == 302

    def test_end_all_sessions_is_the_call_for_any_other_reason(self, browser, people):
        signed = signed_in_staff(browser(), "admin")
        other = signed_in_staff(browser(), "reviewer_shuangta")
        end_all_sessions(db.session, fresh(User, people["administrator"].id))
        db.session.commit()
        assert signed.get("/search/").status_code == 302 and reaches(other, "/review/")

    def test_a_role_removed_in_sql_bypassing_the_orm_still_loses_its_rights_at_once(self, browser, people):
        signed = signed_in_staff(browser(), "reviewer_shuangta")
        db.session.execute(delete(RoleAssignment).where(RoleAssignment.user_id == people["reviewer"].id))
        db.session.commit()
        assert signed.get(f"/review/{people['dossier'].id}").status_code in (403, 404)

    def test_a_cookie_without_the_session_stamps_is_not_a_session(self, browser, people):
        forged = browser()
        with forged.session_transaction() as session:
            session["_user_id"] = str(people["owner"].id)
            session["_fresh"] = True
        assert not reaches(forged)


class TestLifetimes:
    def test_staff_sessions_end_after_thirty_idle_minutes(self, browser, people):
        signed = signed_in_staff(browser(), "reviewer_shuangta")
        shift_clock(signed, **{LAST_SEEN_AT: timedelta(minutes=29)})
        assert reaches(signed, "/review/")
        shift_clock(signed, **{LAST_SEEN_AT: timedelta(minutes=31)})
        assert signed.get("/review/").status_code == 302

    def test_each_request_restarts_the_idle_clock(self, browser, people):
        signed = signed_in_staff(browser(), "reviewer_shuangta")
        shift_clock(signed, **{LAST_SEEN_AT: timedelta(minutes=20)})
        assert reaches(signed, "/review/")
        with signed.session_transaction() as session:
            assert utcnow().timestamp() - session[LAST_SEEN_AT] < 60

    def test_staff_sessions_end_eight_hours_after_signing_in_however_busy(self, browser, people):
        signed = signed_in_staff(browser(), "reviewer_shuangta")
        shift_clock(signed, **{SIGNED_IN_AT: timedelta(hours=7, minutes=59)})
        assert reaches(signed, "/review/")
        shift_clock(signed, **{SIGNED_IN_AT: timedelta(hours=8, minutes=1)})
        assert signed.get("/review/").status_code == 302

    def test_applicants_get_longer_limits(self, browser, people):
        signed = signed_in_applicant(browser(), people["owner"])
        shift_clock(signed, **{LAST_SEEN_AT: timedelta(minutes=90), SIGNED_IN_AT: timedelta(hours=20)})
        assert reaches(signed)
        shift_clock(signed, **{LAST_SEEN_AT: timedelta(minutes=121)})
        assert not reaches(signed)
        fresh_one = signed_in_applicant(browser(), people["owner"])
        shift_clock(fresh_one, **{SIGNED_IN_AT: timedelta(hours=24, minutes=1)})
        assert not reaches(fresh_one)

    @pytest.mark.parametrize("lifetime_in_setting", ["STAFF_SESSION_IDLE_MINUTES"])
    def test_the_limits_are_configurable(self, tmp_path, lifetime_in_setting):
        from tests.conftest import make_config
        config = make_config(tmp_path, **{lifetime_in_setting: "5"})
        assert config.STAFF_SESSION_IDLE == timedelta(minutes=5)
        with pytest.raises(ValueError, match=f"KJDMS_{lifetime_in_setting}"):
            make_config(tmp_path, **{lifetime_in_setting: "soon"})
