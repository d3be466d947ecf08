"""The reviewer queue's counts on both databases: each region's count, the filters' totals, the regions left out."""
import pytest

from kjdms.extensions import db
from kjdms.services.reference import region_by_code
from kjdms.services.worklist import PAGE_SIZE, reviewer_queue
from tests.helpers import review_queue


@pytest.fixture
def queue(people, workflow, blobs):
    """Three dossiers waiting in 双塔区 (10, 5 and 1 days), one in 龙城区 (2 days), and one approved in 双塔区."""
    return review_queue(people, workflow, blobs)


def counts(page):
    return {region.code: count for region, count in page.counts_by_region}


def test_the_city_reviewer_gets_the_count_of_each_county_that_has_any_and_of_no_other(app, workflow, people, queue):
    page = reviewer_queue(db.session, workflow, people["city_reviewer"])
    # 朝阳市 has seven counties and itself; only two hold queued dossiers, and only they are listed, in tree order.
    assert counts(page) == {"211302": 3, "211303": 1} and list(counts(page)) == ["211302", "211303"]
    assert (page.total, page.page, page.pages) == (4, 1, 1) and len(page.dossiers) == 4 <= PAGE_SIZE


@pytest.mark.parametrize("region, waited, total", [
    (None, 3, 2),          # 孙三 (10 days) and 赵一 (5 days)
    (None, 7, 1),          # 孙三
    (None, 30, 0),
    ("211302", None, 3),
    ("211303", None, 1),
    ("211303", 3, 0),       # 李四 waited 2 days
    ("211302", 3, 2),
])
def test_the_total_follows_the_region_and_waiting_filters_and_the_counts_do_not(
        app, workflow, people, queue, region, waited, total):
    region_id = region_by_code(db.session, region).id if region else None
    page = reviewer_queue(db.session, workflow, people["city_reviewer"], region_id=region_id, waited_days=waited)
    assert page.total == total == len(page.dossiers)
    assert counts(page) == {"211302": 3, "211303": 1}


def test_a_region_outside_the_scope_counts_nothing(app, workflow, people, queue):
    outside = region_by_code(db.session, "211303").id
    page = reviewer_queue(db.session, workflow, people["reviewer"], region_id=outside, waited_days=3)
    assert (page.total, page.dossiers) == (0, []) and counts(page) == {"211302": 3}


def test_a_row_carries_the_dossier_number_and_cannot_be_changed(app, workflow, people, queue):
    row = reviewer_queue(db.session, workflow, people["reviewer"]).dossiers[0]
    assert (row.name, row.number, row.is_working_copy) == ("孙三", f"KJ{queue['孙三'].id:010d}", False)
    with pytest.raises(AttributeError):
        row.name = "钱二"
    with pytest.raises(AttributeError):
        row.note = "加急"
