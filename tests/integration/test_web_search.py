"""The staff's search page: what each role finds, the facets, paging and order, escaping, hostile input, ID numbers."""
import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from kjdms.extensions import db
from kjdms.models import Dossier, utcnow
from kjdms.services.lifecycle import fire_transition
from kjdms.services.reference import region_by_code
from kjdms.services.working_copy import start_working_copy
from kjdms.validators import forbidden_character
from tests.helpers import applicant, upload_required
from tests.webclient import database_snapshot, fresh, text

# A page sweep: SQLite only; the services under these pages are tested on both databases and both indexes.
pytestmark = pytest.mark.pages
# A few pages once more with the search index in PostgreSQL: what is found, marked, counted, scoped and ordered.
ALSO_ON_THE_POSTGRESQL_INDEX = pytest.mark.parametrize(
    "app", ["sqlite", pytest.param("postgres_search", marks=pytest.mark.postgres)], indirect=True)

NO_RESULTS = "没有找到符合条件的档案"
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔"


def hits(response) -> list[tuple[int, str]]:
    """Return the (dossier id, name) of each result, top to bottom."""
    assert response.status_code == 200, response.status_code
    found = re.findall(r'<a class="fw-bold" href="/review/(\d+)">(.*?)</a>', text(response), re.S)
    return [(int(dossier_id), html.unescape(re.sub(r"<[^>]+>", "", name))) for dossier_id, name in found]


def names(response) -> list[str]:
    return [name for _, name in hits(response)]


def facets(response) -> dict[str, tuple[str, int, bool]]:
    """Return each facet value's label with its link, its count and whether it is the chosen one."""
    found = re.findall(r'<a class="list-group-item list-group-item-action ([a-z ]*)"\s*(?:aria-current="true")?\s*'
                       r'href="([^"]+)">([^<]+)<span class="float-end">(\d+)', text(response))
    return {label.strip(): (html.unescape(href), int(count), "active" in classes)
            for classes, href, label, count in found}


def total(response) -> int:
    return int(re.search(r'档案检索 <span class="badge text-bg-primary">(\d+)</span>', text(response)).group(1))


def follow(visitor, response):
    """Open the page a redirect points at."""
    assert response.status_code == 302
    return visitor.get(response.headers["Location"])


def approved(workflow, blobs, people, name, region_code="211302", **fields) -> Dossier:
    dossier, owner = applicant(name=name, region_code=region_code, **fields)
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    fire_transition(db.session, workflow, dossier, "approve", people["city_reviewer"])
    return dossier


@pytest.fixture
def scene(people, workflow, blobs):
    """In 双塔区: 张伟 (draft), 欧阳明月 (submitted), 周五 (approved, a change open), 孙三 (archived); 李四 in 龙城区 (submitted)."""
    main, owner = applicant(name="欧阳明月", employer_name="朝阳市双塔区新华会计师事务所有限公司")
    upload_required(workflow, blobs, main, owner)
    fire_transition(db.session, workflow, main, "submit", owner)
    elsewhere, elsewhere_owner = applicant(name="李四", region_code="211303", employer_name="朝阳市龙城区会计服务中心")
    upload_required(workflow, blobs, elsewhere, elsewhere_owner)
    fire_transition(db.session, workflow, elsewhere, "submit", elsewhere_owner)
    done = approved(workflow, blobs, people, "周五")
    copy = start_working_copy(db.session, workflow, done, done.person.user)
    archived = approved(workflow, blobs, people, "孙三")
    fire_transition(db.session, workflow, archived, "archive", people["archivist"])
    return {"main": main, "draft": people["dossier"], "elsewhere": elsewhere, "approved": done, "copy": copy,
            "archived": archived}


class TestAccess:
    def test_every_staff_role_may_search(self, auth, scene):
        for role in ("reviewer", "credit_officer", "archivist", "administrator"):
            page = auth(role).get("/search/")
            assert page.status_code == 200, role
            assert 'placeholder="姓名、单位名称、证书编号、完整身份证号、材料中的文字"' in text(page)
            assert '<a class="nav-link" href="/search/">档案检索</a>' in text(page)

    def test_applicants_are_refused_and_anonymous_visitors_sent_to_sign_in(self, browser, auth, people):
        page = auth(people["owner"]).get("/search/?q=张伟")
        assert page.status_code == 403 and "张伟</a>" not in text(page)
        assert "档案检索" not in text(auth(people["owner"]).get("/me/"))
        response = browser().get("/search/?q=张伟")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
        # A typed ID number is sealed before the sign-in check, so the sign-in page's next= never holds it.
        number = people["owner"].person.id_number
        for visitor in (browser(), auth(people["owner"])):
            response = visitor.get(f"/search/?q={number}", follow_redirects=True)
            assert response.status_code in (200, 403) and number not in text(response)
            assert all(number not in step.headers.get("Location", "") for step in response.history)

    def test_searching_writes_nothing_but_the_audit_of_a_search_by_id_number(self, auth, scene):
        counts, dossiers = database_snapshot()
        visitor = auth("city_reviewer")
        for path in ("/search/", "/search/?q=欧阳明月", f"/search/?q={scene['main'].person.id_number}",
                     "/search/?state=submitted&sort=date&page=3"):
            assert visitor.get(path, follow_redirects=True).status_code == 200
        assert database_snapshot() == ({**counts, "audit_events": counts["audit_events"] + 1}, dossiers)


class TestResults:
    @ALSO_ON_THE_POSTGRESQL_INDEX
    def test_a_name_is_found_marked_with_its_masked_number_region_state_and_link(self, auth, scene):
        main = scene["main"]
        page = auth("reviewer").get("/search/?q=欧阳明月")
        assert hits(page) == [(main.id, "欧阳明月")] and total(page) == 1 and "共 1 条" in text(page)
        body = text(page)
        number = main.person.id_number
        assert '<mark>欧阳明月</mark>' in body and f'href="/review/{main.id}"' in body
        assert f"{number[:4]}{'*' * 10}{number[-4:]}" in body and number not in body
        assert "辽宁省 / 朝阳市 / 双塔区" in body and '<span class="badge text-bg-primary">待审核</span>' in body
        assert "朝阳市双塔区新华会计师事务所有限公司" in body

    def test_a_fragment_of_the_employer_is_found_and_marked(self, auth, scene):
        page = auth("reviewer").get("/search/?q=新华会计")
        assert names(page) == ["欧阳明月"]
        assert "朝阳市双塔区<mark>新华会计</mark>师事务所有限公司" in text(page)

    @ALSO_ON_THE_POSTGRESQL_INDEX
    def test_the_full_id_number_finds_its_person_and_leaves_no_trace_of_itself(self, auth, scene):
        visitor, number = auth("reviewer"), scene["main"].person.id_number
        response = visitor.get(f"/search/?q={number}")
        # The address is rewritten at once: the number is sealed into an opaque parameter.
        assert number not in response.headers["Location"] and "idn=" in response.headers["Location"]
        page = follow(visitor, response)
        assert names(page) == ["欧阳明月"]
        body = text(page)
        assert number not in body and body.count(f"{number[:4]}{'*' * 10}{number[-4:]}") == 2  # the hit and the chip
        # The sealed number survives narrowing and paging; clearing its chip drops it.
        state_link = facets(page)["待审核"][0]
        assert number not in state_link and names(visitor.get(state_link)) == ["欧阳明月"]
        chip = re.search(r'<a class="btn btn-sm btn-outline-secondary" href="([^"]+)" title="清除此条件">身份证号', body)
        assert len(hits(visitor.get(html.unescape(chip.group(1))))) > 1

    def test_the_full_id_number_within_other_words_narrows_by_both(self, auth, scene):
        visitor, number = auth("reviewer"), scene["main"].person.id_number
        assert names(visitor.get(f"/search/?q=欧阳 {number}", follow_redirects=True)) == ["欧阳明月"]
        page = visitor.get(f"/search/?q=张伟 {number}", follow_redirects=True)
        assert NO_RESULTS in text(page) and 'value="张伟"' in text(page)

    def test_a_prefix_of_an_id_number_finds_nothing(self, auth, scene):
        number = scene["main"].person.id_number
        for typed in (number[:10], "2113*", number[:17], number[:17] + "?"):
            page = auth("city_reviewer").get(f"/search/?q={typed}")
            assert hits(page) == [] and NO_RESULTS in text(page) and total(page) == 0, typed

    def test_a_forged_sealed_number_is_dropped_with_a_warning(self, auth, scene):
        page = auth("reviewer").get("/search/?idn=not-a-token&q=欧阳明月")
        assert names(page) == ["欧阳明月"] and "身份证号检索条件已失效" in text(page)

    def test_nothing_typed_lists_everything_in_scope_the_latest_handled_first(self, auth, scene):
        page = auth("reviewer").get("/search/")
        expected = sorted((scene[key] for key in ("main", "draft", "approved", "copy", "archived")),
                          key=lambda dossier: (fresh(Dossier, dossier.id).state_changed_at, dossier.id), reverse=True)
        assert [dossier_id for dossier_id, _ in hits(page)] == [dossier.id for dossier in expected]
        assert total(page) == 5 and '<option value="date" selected>' in text(page)

    def test_a_working_copy_carries_its_badge(self, auth, scene):
        page = text(auth("reviewer").get("/search/?q=周五"))
        copy_link = f'href="/review/{scene["copy"].id}">'
        assert copy_link in page
        item = page.split(copy_link)[1].split('class="list-group-item"')[0]
        assert "信息变更" in item and "填报中" in item

    def test_words_in_the_documents_show_in_snippets_with_numbers_masked(self, auth, scene):
        hidden = scene["main"].person.id_number
        version = scene["main"].attachment("education_certificate").current
        # Two snippets: the first holds the whole number, the second cuts it at its edge.
        version.extracted_text = (f"普通高等学校毕业证书 {hidden} 于二〇一二年七月毕业" + "。" * 40
                                  + f"毕业证书 学生欧阳明月 身份证号{hidden} 学制四年")
        db.session.commit()
        page = auth("reviewer").get("/search/?q=毕业证书")
        assert names(page) == ["欧阳明月"]
        body = text(page)
        assert "学历证书：" in body and "普通高等学校<mark>毕业证书</mark>" in body
        assert f"{hidden[:4]}{'*' * 10}{hidden[-4:]} 于二〇一" in body
        assert f"身份证号{'*' * 12}…" in body
        assert hidden not in body and hidden[:10] not in body and hidden[6:14] not in body


class TestScope:
    @ALSO_ON_THE_POSTGRESQL_INDEX
    def test_another_countys_reviewer_sees_no_result_count_or_facet_of_it(self, auth, scene):
        visitor = auth("other_reviewer")
        page = visitor.get("/search/")
        assert names(page) == ["李四"] and total(page) == 1
        assert "双塔区" not in text(page)
        assert set(facets(page)) == {"龙城区", "待审核", "无", f"{utcnow().year}年", "无信用记录"}
        for typed in ("欧阳明月", "双塔区", "新华会计"):
            page = visitor.get(f"/search/?q={typed}")
            assert hits(page) == [] and total(page) == 0 and facets(page) == {} and NO_RESULTS in text(page), typed
        page = visitor.get(f"/search/?q={scene['main'].person.id_number}", follow_redirects=True)
        assert hits(page) == [] and NO_RESULTS in text(page)
        # Nor does choosing the other county's region as a filter reach it.
        shuangta = region_by_code(db.session, "211302").id
        page = visitor.get(f"/search/?region={shuangta}")
        assert hits(page) == [] and total(page) == 0

    def test_an_archivist_sees_only_approved_and_archived_dossiers(self, auth, scene):
        page = auth("archivist").get("/search/")
        assert sorted(names(page)) == ["周五", "孙三"]
        shown = facets(page)
        assert shown["已审核确认"][1] == 1 and shown["已归档"][1] == 1
        assert "待审核" not in shown and "填报中" not in shown
        # Each result opens: the review page lets an archivist view what the workflow lets them view.
        for dossier_id, _ in hits(page):
            assert auth("archivist").get(f"/review/{dossier_id}").status_code == 200

    def test_a_credit_officer_sees_all_but_drafts_and_can_open_each(self, auth, scene):
        visitor = auth("credit_officer")
        page = visitor.get("/search/")
        assert sorted(names(page)) == sorted(["欧阳明月", "李四", "周五", "孙三"])
        for dossier_id, _ in hits(page):
            assert visitor.get(f"/review/{dossier_id}").status_code == 200

    def test_a_stale_index_entry_is_not_shown_to_a_reviewer_who_may_no_longer_see_it(self, auth, scene):
        main = scene["main"]
        # Core UPDATE: the ORM's flush would queue the dossier for indexing, this bypasses the outbox.
        db.session.execute(update(Dossier).where(Dossier.id == main.id)
                           .values(region_id=region_by_code(db.session, "211303").id))
        db.session.commit()
        # The index still files it under 双塔区: 龙城区's reviewer does not find it yet.
        assert names(auth("other_reviewer").get("/search/?q=欧阳明月")) == []
        page = auth("reviewer").get("/search/?q=欧阳明月")
        assert hits(page) == [] and total(page) == 0 and NO_RESULTS in text(page)
        # The contradicted entry was repaired: it is counted where it now belongs.
        assert "双塔区" not in facets(auth("reviewer").get("/search/?q=欧阳明月"))
        assert names(auth("other_reviewer").get("/search/?q=欧阳明月")) == ["欧阳明月"]


class TestFacets:
    @ALSO_ON_THE_POSTGRESQL_INDEX
    def test_counts_match_and_a_facet_link_narrows_keeping_the_query(self, auth, scene):
        visitor = auth("city_reviewer")
        page = visitor.get("/search/?q=朝阳市")
        shown = facets(page)
        assert shown["双塔区"][1] == 5 and shown["龙城区"][1] == 1 and total(page) == 6
        assert shown["待审核"][1] == 2 and shown["填报中"][1] == 2
        narrowed = visitor.get(shown["龙城区"][0])
        assert names(narrowed) == ["李四"] and total(narrowed) == 1 and 'value="朝阳市"' in text(narrowed)
        assert facets(narrowed)["龙城区"][2] is True  # shown as chosen, its link now clears it
        assert total(visitor.get(facets(narrowed)["龙城区"][0])) == 6

    def test_facets_combine_and_each_clears_alone(self, auth, scene):
        visitor = auth("city_reviewer")
        by_state = visitor.get(facets(visitor.get("/search/?q=朝阳市"))["待审核"][0])
        both = visitor.get(facets(by_state)["双塔区"][0])
        assert names(both) == ["欧阳明月"]
        assert "地区：双塔区" in text(both) and "状态：待审核" in text(both)
        region_cleared = visitor.get(facets(both)["双塔区"][0])
        assert sorted(names(region_cleared)) == ["李四", "欧阳明月"] and 'value="朝阳市"' in text(region_cleared)
        # The search box keeps the chosen facets for the next words typed.
        assert '<input type="hidden" name="state" value="submitted">' in text(both)

    def test_a_chosen_city_shows_as_chosen_though_its_counties_are_listed(self, auth, scene):
        chaoyang = region_by_code(db.session, "211300").id
        page = auth("city_reviewer").get(f"/search/?region={chaoyang}")
        assert total(page) == 6 and "地区：朝阳市" in text(page)

    def test_unknown_facet_values_are_ignored(self, auth, scene):
        visitor = auth("city_reviewer")
        for query in ("region=abc", "region=99999999999999999999", "region=%C2%B2", "region=-1", "state=nope",
                      "year=%C2%B2%C2%B2%C2%B2%C2%B2", "year=1", "qualification=x", "has_credit=2",
                      "sort=%27", "page=%C2%B2", "page=-3", "page=99999999999999999999", "state=submitted&state=draft"):
            page = visitor.get(f"/search/?{query}")
            assert page.status_code == 200, query
            assert total(page) in (6, 2), query


class TestPagingAndOrder:
    @pytest.fixture
    def many(self, people):
        """25 people with 分页 in their name, handled one hour apart, the first the latest."""
        dossiers = [applicant(name=f"{surname}分页")[0] for surname in SURNAMES]
        now = utcnow()
        for hours, dossier in enumerate(dossiers):
            dossier.state_changed_at = now - timedelta(hours=hours)
        db.session.commit()
        return dossiers

    def test_page_two_holds_the_rest_with_links_both_ways(self, auth, many):
        visitor = auth("reviewer")
        first = visitor.get("/search/?q=分页&sort=date")
        assert len(hits(first)) == 20 and total(first) == 25 and "共 25 条，第 1/2 页" in text(first)
        assert 'href="/search/?q=%E5%88%86%E9%A1%B5&amp;sort=date&amp;page=2" rel="next"' in text(first)
        second = visitor.get("/search/?q=分页&sort=date&page=2")
        assert [name for name in names(second)] == [f"{surname}分页" for surname in SURNAMES[20:]]
        assert 'rel="prev"' in text(second) and "第 2/2 页" in text(second)
        assert names(visitor.get("/search/?q=分页&sort=date&page=99")) == names(second)

    def test_the_pages_show_a_window_of_numbers(self, auth, many):
        page = text(auth("reviewer").get("/search/?q=分页&page=1"))
        assert re.findall(r'<a class="page-link" href="[^"]*page=(\d)"\s*(?:aria-current="page")?>', page) == ["1", "2"]

    @ALSO_ON_THE_POSTGRESQL_INDEX
    def test_sorting_by_date_puts_the_latest_handled_first(self, auth, many):
        visitor = auth("reviewer")
        assert names(visitor.get("/search/?q=分页&sort=date")) == [f"{surname}分页" for surname in SURNAMES[:20]]
        oldest = many[-1]
        oldest.state_changed_at = utcnow() + timedelta(minutes=1)
        db.session.commit()
        page = visitor.get("/search/?q=分页&sort=date")
        assert names(page)[0] == "孔分页" and '<option value="date" selected>' in text(page)
        assert '<option value="relevance" selected>' in text(visitor.get("/search/?q=分页"))


class TestHostileInput:
    def test_markup_in_a_name_or_employer_is_shown_escaped(self, auth, scene):
        person = scene["main"].person
        person.name = "<script>alert(1)</script>欧阳"
        scene["main"].employer_name = '"><img src=x onerror=alert(2)>新华'
        db.session.commit()
        page = text(auth("reviewer").get("/search/?q=script 新华"))
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt;欧阳" in page
        assert "<mark>新华</mark>" in page and "&lt;img src=x onerror=alert(2)&gt;" in page

    def test_no_query_fails(self, auth, scene):
        visitor = auth("city_reviewer")
        for typed in ("*", "?", "2113*", "name:张", "employer:朝阳", '"欧阳明月', '"', "(", ")", "[张 TO 李]", "{", "张伟~2",
                      "^", "AND", "欧阳 OR", "NOT 张伟", "\\", "/", "%", "&", "<", "\x00", "\x01\x02欧阳\x7f", "\u200b",
                      "，。！？", "...", "*:*", "张" * 1000, "a" * 1000, "😀", "欧阳明月" * 30, "%00", "\t\n"):
            page = visitor.get("/search/", query_string={"q": typed})
            if forbidden_character(typed):  # refused naming the box, like every form (test_web_control_characters)
                assert page.status_code == 400 and "检索内容：不能包含控制字符" in text(page), repr(typed)
                continue
            assert page.status_code == 200, repr(typed)
            assert hits(page) or NO_RESULTS in text(page), repr(typed)
        assert visitor.get("/search/?q=%FF%FE").status_code == 200
        assert names(visitor.get("/search/", query_string={"q": "欧阳\u200b明月"})) == ["欧阳明月"]
