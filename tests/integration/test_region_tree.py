"""The region tree each process keeps: reread on the next request once any process's commit changed a region."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from kjdms import create_app
from kjdms.backends import get_config
from kjdms.extensions import db
from kjdms.models import Region, Setting
from kjdms.schema import upgrade_schema
from kjdms.services import regions
from kjdms.services.reference import region_by_code
from kjdms.services.region_tree import VERSION_KEY, region_tree
from kjdms.services.worklist import covered_region_ids
from tests.conftest import make_config, pushed
from tests.helpers import submitted
from tests.webclient import WebClient, text

SHUANGTA, CHAOYANG, SHENYANG = "211302", "211300", "210100"


@pytest.fixture(autouse=True)
def shipped_regions(app):
    """Put the region rows back as they were after each test: PostgreSQL keeps them from one test to the next."""
    table = Region.__table__
    before = [dict(row._mapping) for row in db.session.execute(table.select())]
    db.session.rollback()
    yield
    db.session.rollback()
    db.session.execute(table.delete().where(table.c.id.not_in([row["id"] for row in before])))
    for row in before:
        db.session.execute(table.update().where(table.c.id == row["id"]).values(**row))
    db.session.commit()


@pytest.fixture
def other(app, tmp_path):
    """A second instance of the application on the same database: another worker process's view of it."""
    application = create_app(make_config(tmp_path / "other", get_config().DATABASE_URL))
    with pushed(application):  # its own engine, so its own copy of the tree, as in another process
        region_tree(db.session)
        db.session.rollback()
    return application


def tree_in(application):
    """Return the region tree application sees now, and end its transaction as a request would."""
    with pushed(application):
        tree = region_tree(db.session)
        db.session.rollback()
        return tree


def node(tree, code):
    return next(node for node in tree.nodes.values() if node.code == code)


def test_a_rename_in_one_instance_is_seen_by_another_on_its_next_read(app, people, other):
    assert node(tree_in(other), SHUANGTA).name == "双塔区"

    regions.update_region(db.session, people["administrator"], region_by_code(db.session, SHUANGTA),
                          name="双塔区（新）")

    assert node(tree_in(other), SHUANGTA).name == "双塔区（新）"


def test_a_move_changes_the_regions_a_reviewer_covers_in_every_instance(app, people, other):
    shuangta = region_by_code(db.session, SHUANGTA)
    with pushed(other):
        reviewer = db.session.get(type(people["city_reviewer"]), people["city_reviewer"].id)
        assert shuangta.id in covered_region_ids(db.session, reviewer, "reviewer")

    regions.update_region(db.session, people["administrator"], shuangta, parent=region_by_code(db.session, SHENYANG))

    with pushed(other):
        reviewer = db.session.get(type(people["city_reviewer"]), people["city_reviewer"].id)
        assert shuangta.id not in covered_region_ids(db.session, reviewer, "reviewer")
        assert region_by_code(db.session, "211303").id in covered_region_ids(db.session, reviewer, "reviewer")
    assert tree_in(other).nodes[shuangta.id].parent_id == region_by_code(db.session, SHENYANG).id


def test_the_worklist_of_another_instance_shows_a_renamed_region(app, people, workflow, blobs, other):
    submitted(workflow, blobs, "钱二")
    other.test_client_class = WebClient
    with other.app_context():
        reviewer = other.test_client().enter_as(people["reviewer"])
        assert ">双塔区 <span" in text(reviewer.get("/review/"))

    regions.update_region(db.session, people["administrator"], region_by_code(db.session, SHUANGTA), name="双塔新区")

    with other.app_context():
        page = text(reviewer.get("/review/"))
    assert ">双塔新区 <span" in page and '<td data-label="地区">双塔新区</td>' in page
    assert ">双塔区 <span" not in page and ">双塔区<" not in page


def test_the_tree_is_kept_while_no_region_changes(app, people):
    # An edit gives the database a version to check against (the tests' PostgreSQL schema starts without one).
    regions.update_region(db.session, people["administrator"], region_by_code(db.session, SHUANGTA), phone="0421-1")
    first = region_tree(db.session)
    people["reviewer"].display_name = "改名的审核员"  # a commit that changes no region
    db.session.commit()
    assert region_tree(db.session) is first


def test_each_region_edit_gives_a_new_version_and_a_rolled_back_one_none(app, people):
    versions = []
    for name in ("甲区", "乙区", "甲区"):
        regions.update_region(db.session, people["administrator"], region_by_code(db.session, SHUANGTA), name=name)
        versions.append(db.session.scalar(select(Setting.value).where(Setting.key == VERSION_KEY)))
    assert len(set(versions)) == 3 and None not in versions  # the third edit restores a name, not the version

    region_by_code(db.session, SHUANGTA).name = "未保存"
    db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(Setting.value).where(Setting.key == VERSION_KEY)) == versions[-1]
    assert node(region_tree(db.session), SHUANGTA).name == "甲区"


def test_adding_and_deleting_a_region_is_seen_by_another_instance(app, people, other):
    administrator = people["administrator"]
    added = regions.add_region(db.session, administrator, code="211399", parent=region_by_code(db.session, CHAOYANG),
                               name="朝阳新区")
    assert node(tree_in(other), "211399").parent_id == region_by_code(db.session, CHAOYANG).id

    regions.delete_region(db.session, administrator, added)

    assert "211399" not in {node.code for node in tree_in(other).nodes.values()}
    assert db.session.scalar(select(Region.id).where(Region.code == "211399")) is None


def test_a_newly_migrated_database_has_a_version_so_each_process_keeps_its_copy(tmp_path):
    application = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'fresh.sqlite3'}"))
    with pushed(application):
        upgrade_schema()
        assert db.session.get(Setting, VERSION_KEY) is not None  # migration 0020, before any region edit
        first, second = region_tree(db.session), region_tree(db.session)
        assert first is second
