"""A generation left on disk by a crash after a swap is removed by the next reindex, index check --repair and the purge."""
import shutil
import time

import pytest

from kjdms.backends import get_search_index
from kjdms.extensions import db
from kjdms.services.indexing import documents_for
from tests.helpers import applicant

CANARY = "旧版本遗留的单位名称"


@pytest.fixture
def stale(sqlite_app):
    """The live index, and a copy of it as an older generation, as a crash between swap and cleanup leaves it."""
    from kjdms.backends import get_config

    dossier, _ = applicant(employer_name=CANARY)
    index = get_search_index()
    index.write(documents_for(db.session, [dossier.id], get_config().ID_HASH_KEY)[0])
    live = index.folder / index._live_target()
    older = index.folder / "gen-1"
    shutil.copytree(live, older)
    assert any(CANARY.encode("utf-8") in path.read_bytes() for path in older.iterdir() if path.is_file())
    return older


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args), catch_exceptions=False)


def test_index_check_repair_removes_it(sqlite_app, stale):
    result = run(sqlite_app, "index", "check", "--repair")
    assert not stale.exists() and "gen-1" in result.output


def test_the_next_reindex_removes_it(sqlite_app, stale):
    run(sqlite_app, "reindex")
    assert not stale.exists()
    assert sorted(path.name for path in stale.parent.glob("gen-*")) == [get_search_index()._live_target()]


def test_the_purge_cleanup_removes_it(sqlite_app, stale):
    get_search_index().purge_deleted()
    assert not stale.exists()


def test_a_newer_generation_being_swapped_in_is_left_alone(sqlite_app, stale):
    newer = stale.parent / f"gen-{time.time_ns() + 10**12}"
    newer.mkdir()
    get_search_index().remove_stale_generations()
    assert newer.exists() and not stale.exists()
