"""Searches keep answering while a writer commits and merges segments under them: a consistent snapshot, 0 errors."""
import threading

import pytest

from kjdms.backends import get_search_index
from kjdms.extensions import db
from kjdms.search import SearchRequest
from kjdms.services.indexing import documents_for
from kjdms.services.search import operator_grants
from tests.helpers import applicant


@pytest.mark.parametrize("rounds", [40])
def test_concurrent_searches_while_a_writer_commits_and_merges(sqlite_app, rounds):
    from kjdms.backends import get_config, get_workflow

    dossiers = [applicant(name=name, employer_name=f"朝阳市{name}会计服务有限公司")[0]
                for name in ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊")]
    index, key = get_search_index(), get_config().ID_HASH_KEY
    documents, _ = documents_for(db.session, [dossier.id for dossier in dossiers], key)
    index.write(documents)
    request = SearchRequest(text="会计", grants=operator_grants(db.session, get_workflow()))
    errors, searches, writing = [], [0], threading.Event()
    writing.set()

    def search():
        try:
            while writing.is_set():
                assert index.search(request).total == len(dossiers)
                index.stamps()
                searches[0] += 1
        except Exception as error:  # noqa: BLE001  (any failure is what the test counts)
            errors.append(repr(error))
        finally:
            index.close()

    readers = [threading.Thread(target=search) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for round_number in range(rounds):
            # Small commits pile up segments; every fifth merges them all away under the readers.
            index.write(documents[round_number % len(documents):][:2], optimize=round_number % 5 == 4)
    finally:
        writing.clear()
        for reader in readers:
            reader.join(30)
    assert errors == [] and searches[0] > rounds


def test_a_reader_whose_segments_are_merged_away_mid_search_is_replaced(sqlite_app, monkeypatch):
    from kjdms.backends import get_config, get_workflow

    dossiers = [applicant(name=name)[0] for name in ("张伟", "王芳", "李娜")]
    index, key = get_search_index(), get_config().ID_HASH_KEY
    documents, _ = documents_for(db.session, [dossier.id for dossier in dossiers], key)
    for document in documents:
        index.write([document])  # three segments
    index.close()
    stale = index._live().searcher()
    index.write([], optimize=True)  # merged into one: the stale reader's segment files are gone
    # The race, made certain: the reader handed to this search is one a commit has just merged away.
    real_searcher, handed = index._searcher, []

    def racing_searcher():
        if not handed:
            handed.append(stale)
            return stale
        return real_searcher()

    monkeypatch.setattr(index, "_searcher", racing_searcher)
    request = SearchRequest(text="张伟", grants=operator_grants(db.session, get_workflow()))
    assert index.search(request).total == 1
    assert len(index.stamps()) == 3


class PrunedMeanwhile(dict):
    """The index's segment cache as another request thread prunes it: a stale entry vanishes just after listing."""

    def __iter__(self):
        yield from list(super().__iter__())
        self.pop("merged-away", None)


def test_two_searches_pruning_the_segment_cache_at_once_do_not_fail(sqlite_app):
    # Found by bench/attack.py on PostgreSQL: KeyError in run_search when two threads dropped the same segment.
    from kjdms.backends import get_config, get_workflow

    dossiers = [applicant(name=name)[0] for name in ("张伟", "王芳")]
    index = get_search_index()
    documents, _ = documents_for(db.session, [dossier.id for dossier in dossiers], get_config().ID_HASH_KEY)
    index.write(documents)
    index._segment_data = PrunedMeanwhile({"merged-away": None})
    request = SearchRequest(text="", grants=operator_grants(db.session, get_workflow()))
    assert index.search(request).total == 2
    assert "merged-away" not in index._segment_data


@pytest.mark.postgres
@pytest.mark.parametrize("app", ["postgres_search"], indirect=True)
def test_searches_on_postgresql_keep_answering_while_writes_and_a_rebuild_swap_run(app):
    from kjdms.backends import get_config, get_workflow
    from kjdms.services.reindex import reindex

    dossiers = [applicant(name=name, employer_name=f"朝阳市{name}会计服务有限公司")[0]
                for name in ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊")]
    index, key = get_search_index(), get_config().ID_HASH_KEY
    documents, _ = documents_for(db.session, [dossier.id for dossier in dossiers], key)
    request = SearchRequest(text="会计", grants=operator_grants(db.session, get_workflow()))
    errors, searches, writing = [], [0], threading.Event()
    writing.set()

    def search():
        with app.app_context():
            try:
                while writing.is_set():
                    assert index.search(request).total == len(dossiers)
                    assert len(index.stamps()) == len(dossiers)
                    searches[0] += 1
            except Exception as error:  # noqa: BLE001  (any failure is what the test counts)
                errors.append(repr(error))

    readers = [threading.Thread(target=search) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for round_number in range(20):
            index.write(documents[round_number % len(documents):][:2])
            if round_number % 5 == 4:
                # The live table is dropped and the new one renamed into its place under the readers.
                reindex(db.session, index, key, chunk=4)
    finally:
        writing.clear()
        for reader in readers:
            reader.join(30)
    assert errors == [] and searches[0] > 20
