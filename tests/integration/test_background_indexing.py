"""The index off the request: commits only queue, the indexer drains in batches, and an interrupted batch loses nothing."""
import threading

import pytest

from kjdms.backends import get_config, get_drainer, get_search_index
from kjdms.config import Config
from kjdms.extensions import db
from kjdms.services.indexing import drain_outbox, queued_count
from kjdms.worker import index_continuously
from tests.helpers import applicant, indexed, staff
from tests.integration.test_search_services import find, names
from tests.integration.test_web_search import hits
from tests.webclient import text

# Longer than any drain of a few dossiers can take: only a broken indexer waits this long.
INDEXER_PATIENCE = 60


class ProcessDied(BaseException):
    """The process ending where it stands (killed): no `except Exception` catches it."""


def run_indexer_until_a_drain(app, **options) -> None:
    """Run the worker's indexer in a thread until one of its drains indexes something, then stop it."""
    stop, drained = threading.Event(), threading.Event()
    indexer = threading.Thread(target=index_continuously, args=(app, stop),
                               kwargs={**options, "on_round": lambda done: drained.set()})
    indexer.start()
    try:
        assert drained.wait(INDEXER_PATIENCE)
    finally:
        stop.set()
        indexer.join()


@pytest.fixture
def background(app):
    """The embedded default: a commit queues its rows and wakes the indexer, and returns."""
    drainer = get_drainer()
    drainer.after_commit = False
    return drainer


@pytest.fixture
def reviewer(app):
    return staff("reviewer_shuangta", "reviewer", "211302")


def test_by_default_no_commit_waits_for_the_index(tmp_path):
    assert Config(environ={}, STORAGE_DIR=tmp_path, SECRET_KEY="k", ID_HASH_KEY="k").INDEX_AFTER_COMMIT is False
    assert Config(environ={"KJDMS_INDEX_AFTER_COMMIT": "1"}, STORAGE_DIR=tmp_path, SECRET_KEY="k",
                  ID_HASH_KEY="k").INDEX_AFTER_COMMIT is True


def test_a_commit_queues_and_wakes_the_indexer_without_indexing(app, background, reviewer):
    background.arrived.clear()
    background.wake.clear()
    applicant(name="欧阳娜娜")
    assert background.arrived.is_set() and background.wake.is_set()
    assert queued_count(db.session) >= 1
    assert find(reviewer, "欧阳").total == 0  # the commit returned before the index was written
    assert indexed() >= 1
    assert names(find(reviewer, "欧阳")) == ["欧阳娜娜"]
    assert queued_count(db.session) == 0


def test_the_indexer_writes_what_gathered_in_one_commit(app, background, reviewer, monkeypatch):
    index = get_search_index()
    real_write, batches = index.write, []

    def recording(documents, deleted_ids=()):
        documents = list(documents)
        batches.append(sorted(document["name"] for document in documents))
        real_write(documents, deleted_ids)

    monkeypatch.setattr(index, "write", recording)
    for name in ("赵一", "钱二", "孙三"):
        applicant(name=name)
    db.session.commit()  # no transaction of the test's left open while the indexer writes
    run_indexer_until_a_drain(app)
    assert batches == [sorted(["赵一", "钱二", "孙三"])]  # one Whoosh commit for the three
    assert queued_count(db.session) == 0
    assert names(find(reviewer, "钱二")) == ["钱二"]


def test_the_indexer_finds_rows_no_commit_of_its_process_woke_it_for(app, background, reviewer):
    applicant(name="卫东")
    background.arrived.clear()  # as when another process committed: nothing here was woken
    run_indexer_until_a_drain(app, poll_seconds=0.05)
    assert queued_count(db.session) == 0
    assert names(find(reviewer, "卫东")) == ["卫东"]


def test_a_batch_interrupted_after_its_index_commit_is_indexed_again_and_nothing_is_lost(
        app, background, reviewer, monkeypatch):
    people = ("周一", "吴二", "郑三", "王四")
    for name in people:
        applicant(name=name)
    queued = queued_count(db.session)
    assert queued >= len(people)
    index = get_search_index()
    real_write, writes = index.write, []

    def dies_after_the_second_commit(documents, deleted_ids=()):
        real_write(documents, deleted_ids)
        writes.append(1)
        if len(writes) == 2:
            raise ProcessDied  # the index has the batch; its outbox rows are not marked yet

    monkeypatch.setattr(index, "write", dies_after_the_second_commit)
    with pytest.raises(ProcessDied):
        drain_outbox(db.engine, index, get_config().ID_HASH_KEY, batch=2)
    assert queued_count(db.session) == queued - 2  # the first batch marked, the second still queued
    monkeypatch.setattr(index, "write", real_write)
    assert indexed() == queued - 2
    assert queued_count(db.session) == 0
    assert index.doc_count() == len(people)  # written again: replaced, never twice
    for name in people:
        assert names(find(reviewer, name)) == [name]


@pytest.mark.pages
def test_the_search_page_says_when_the_index_is_behind(app, background, auth, people):
    reviewer = auth("reviewer")
    applicant(name="冯晓")
    waiting = queued_count(db.session)
    behind = reviewer.get("/search/?q=冯晓")
    assert f"索引更新中：{waiting} 项待处理" in text(behind) and hits(behind) == []
    indexed()
    caught_up = reviewer.get("/search/?q=冯晓")
    assert "索引更新中" not in text(caught_up) and [name for _, name in hits(caught_up)] == ["冯晓"]
    assert auth(people["owner"]).get("/search/").status_code in (302, 403)  # applicants have no search, nor its notice
