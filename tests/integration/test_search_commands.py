"""kjdms reindex, index check/status, search and worker: rebuilt from the database, resumable, checked."""
import pytest
from sqlalchemy import text, update

from kjdms.backends import get_config, get_search_index
from kjdms.extensions import db
from kjdms.models import Dossier, Person
from kjdms.samples import sample_pdf
from kjdms.search import whoosh_index
from kjdms.search.postgres_index import PostgresRebuild
from kjdms.search.whoosh_index import REBUILD, WhooshRebuild
from kjdms.services.attachments import add_attachment_version
from kjdms.services.reindex import check_index, reindex
from tests.helpers import BOTH_SEARCH_INDEXES, applicant, make_id_number, staff

NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊"]


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args), catch_exceptions=False)


@pytest.fixture
def dossiers(app):
    return [applicant(name=name)[0] for name in NAMES]


def wipe_live_index():
    """Drop every entry, as if the index folder had been lost."""
    index = get_search_index()
    index.write([], [int(key) for key in index.stamps()])


@BOTH_SEARCH_INDEXES
def test_reindex_rebuilds_the_index_from_the_database(app, dossiers):
    wipe_live_index()
    assert get_search_index().doc_count() == 0
    result = run(app, "reindex", "--chunk", "3")
    assert result.exit_code == 0 and f"{len(NAMES)} 份档案" in result.output
    assert get_search_index().doc_count() == len(NAMES)
    assert check_index(db.session, get_search_index(), get_config().ID_HASH_KEY).ok
    assert not leftovers()


def leftovers() -> list[str]:
    """Return what a finished rebuild must not leave: a rebuild in progress, an older generation."""
    if get_config().SEARCH == "postgres":
        return db.session.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                       "AND tablename LIKE 'search%' AND tablename <> 'search_documents'")).all()
    folder = get_config().INDEX_DIR
    generations = [path.name for path in folder.iterdir() if path.name.startswith("gen-")]
    return [REBUILD] * (folder / REBUILD).exists() + generations[1:]


@BOTH_SEARCH_INDEXES
def test_an_interrupted_reindex_resumes_from_its_checkpoint(app, dossiers, monkeypatch):
    rebuild = PostgresRebuild if get_config().SEARCH == "postgres" else WhooshRebuild
    real_add, calls = rebuild.add, []

    def add_then_crash(self, documents, last_id):
        calls.append(last_id)
        if len(calls) == 2:
            raise KeyboardInterrupt("operator pressed Ctrl+C")
        real_add(self, documents, last_id)

    monkeypatch.setattr(rebuild, "add", add_then_crash)
    # A segment's worth per chunk: every chunk is committed and checkpointed (a real rebuild commits every 256 MB).
    monkeypatch.setattr(whoosh_index, "REBUILD_SEGMENT_MB", -1)
    with pytest.raises(KeyboardInterrupt):
        reindex(db.session, get_search_index(), get_config().ID_HASH_KEY, chunk=2)
    # The first chunk is in, the second is not: the rebuild to resume says so.
    assert get_search_index().start_rebuild().resume_after == dossiers[1].id
    assert get_search_index().doc_count() == len(NAMES)  # the live index kept serving meanwhile
    monkeypatch.setattr(rebuild, "add", real_add)
    result = run(app, "reindex", "--chunk", "2")
    assert f"已完成至档案 #{dossiers[1].id}" in result.output
    assert get_search_index().doc_count() == len(NAMES)
    assert check_index(db.session, get_search_index(), get_config().ID_HASH_KEY).ok


@BOTH_SEARCH_INDEXES
def test_changes_made_while_a_reindex_runs_reach_the_new_index(app, dossiers):
    first = dossiers[0]

    def rename_once(done, renamed=[]):
        if not renamed:
            # Another request commits a change while the rebuild is under way.
            person = db.session.get(Person, first.person_id)
            person.name = "张伟伟"
            db.session.commit()
            renamed.append(True)

    reindex(db.session, get_search_index(), get_config().ID_HASH_KEY, chunk=2, progress=rename_once)
    assert check_index(db.session, get_search_index(), get_config().ID_HASH_KEY).ok
    assert "张伟伟" in run(app, "search", "张伟伟").output


@BOTH_SEARCH_INDEXES
def test_index_check_names_missing_stale_and_extra_entries_and_repairs_them(app, dossiers):
    assert run(app, "index", "check").exit_code == 0
    index = get_search_index()
    index.write([], [dossiers[0].id])  # missing
    db.session.execute(update(Person).where(Person.id == dossiers[1].person_id).values(name="王芳芳"))  # stale
    db.session.execute(update(Dossier).where(Dossier.id == dossiers[2].id).values(state="purged"))  # extra
    db.session.commit()
    result = run(app, "index", "check")
    assert result.exit_code == 1
    assert f"缺失：1  #{dossiers[0].id}" in result.output
    assert f"过期：1  #{dossiers[1].id}" in result.output
    assert f"多余：1  #{dossiers[2].id}" in result.output
    assert "已修复 3 条" in run(app, "index", "check", "--repair").output
    assert run(app, "index", "check").exit_code == 0


@BOTH_SEARCH_INDEXES
def test_search_prints_masked_matches_scoped_by_the_user_given(app, dossiers):
    number = make_id_number()
    applicant(name="欧阳修", id_number=number, region_code="211303")
    staff("reviewer_shuangta", "reviewer", "211302")
    everywhere = run(app, "search", number)
    assert "欧阳修" in everywhere.output and number not in everywhere.output
    assert number[:4] + "*" * 10 + number[-4:] in everywhere.output
    assert "共 1 条" in everywhere.output
    assert "没有找到" in run(app, "search", "欧阳修", "--as", "reviewer_shuangta").output
    assert "张伟" in run(app, "search", "张伟", "--as", "reviewer_shuangta").output
    unknown = app.test_cli_runner().invoke(args=["search", "张伟", "--as", "nobody"])
    assert unknown.exit_code == 2 and "nobody" in unknown.output


@BOTH_SEARCH_INDEXES
def test_worker_once_extracts_pending_text_and_index_status_reports_the_queue(app, workflow, blobs):
    dossier, owner = applicant(name="钱学森")
    add_attachment_version(db.session, workflow, blobs, dossier, "other", sample_pdf("Award No. QX1911"),
                           owner, filename="award.pdf")
    assert "待提取文字的材料：1" in run(app, "index", "status").output
    assert "没有找到" in run(app, "search", "QX1911").output
    result = run(app, "worker", "--once")
    assert "提取文字 1 份" in result.output
    assert "钱学森" in run(app, "search", "QX1911").output
    status = run(app, "index", "status").output
    assert "待提取文字的材料：0" in status and "待更新索引：0" in status and "索引中的档案：1" in status


def test_a_multi_process_deployment_leaves_the_outbox_to_the_worker(tmp_path, sqlite_template):
    import shutil

    from kjdms import create_app
    from tests.conftest import make_config

    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    app = create_app(make_config(tmp_path, INDEX_AFTER_COMMIT="0"))
    with app.app_context():
        applicant(name="华罗庚")
        assert "待更新索引：1" in run(app, "index", "status").output
        assert "没有找到" in run(app, "search", "华罗庚").output
        assert "更新索引 1 条" in run(app, "worker", "--once").output
        assert "华罗庚" in run(app, "search", "华罗庚").output
        db.session.remove()
        db.engine.dispose()


def test_the_postgresql_index_is_refused_on_sqlite_naming_both_settings(tmp_path):
    from kjdms import create_app
    from tests.conftest import make_config

    with pytest.raises(RuntimeError) as refused:
        create_app(make_config(tmp_path, SEARCH="postgres"))
    assert "KJDMS_SEARCH=postgres" in str(refused.value) and "KJDMS_DATABASE_URL" in str(refused.value)
    assert "不是 PostgreSQL 数据库" in str(refused.value)


@pytest.mark.postgres
@pytest.mark.parametrize("app", ["postgres_search"], indirect=True)
def test_init_creates_the_postgresql_index_table_and_a_second_run_keeps_it(app):
    get_search_index().drop()
    assert "检索索引表：已创建" in run(app, "init").output
    applicant(name="华罗庚")
    assert "检索索引表：已存在" in run(app, "init").output
    assert "华罗庚" in run(app, "search", "华罗庚").output
