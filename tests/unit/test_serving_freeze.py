"""Unit test: a serving process keeps what it made at start out of the garbage collector's full passes."""
import gc

from kjdms import serving


class FakeServer:
    """Stands for waitress's server: records how many objects were frozen when it started running."""

    frozen_at_run = None

    def run(self):
        FakeServer.frozen_at_run = gc.get_freeze_count()


def test_serve_freezes_what_exists_before_it_runs(monkeypatch):
    monkeypatch.setattr(serving, "create_server", lambda app, **settings: FakeServer())
    gc.unfreeze()
    try:
        serving.serve(app=None, host="127.0.0.1", port=0)
        assert FakeServer.frozen_at_run > 1000  # the imported libraries at least, not nothing
    finally:
        gc.unfreeze()  # the other tests' objects are collected as usual
