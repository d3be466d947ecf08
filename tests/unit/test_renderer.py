"""The PDF renderer zygote: a fresh child per render, killed at its deadline, replaced when it dies, never orphaned."""
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from kjdms import cpu_affinity
from kjdms.documents import renderer
from kjdms.documents.images import PREVIEW_FAILED, PreviewUnavailable, RenderTimedOut, pdf_first_page_png
from kjdms.samples import pdf_of_objects, sample_pdf

WORKTREE = Path(__file__).resolve().parents[2]


def endless_pdf(levels: int = 4, fan_out: int = 10) -> bytes:
    """Return a 53 KB PDF whose page draws a form that draws the next form fan_out times, levels deep.

    Each of the fan_out ** (levels - 1) innermost forms strokes 3,000 thick lines across the page: PDFium
    needs about 0.3 s for one, so the page takes minutes to render (a hostile file that seems to loop).
    """
    leaf = b"40 w " + b"".join(b"%d 0 m %d 842 l " % (i % 595, (i * 7) % 595) for i in range(3000)) + b"S"
    first_form = 5
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /XObject << /X0 %d 0 R >> >> >>" % first_form,
        b"<< /Length 6 >>\nstream\n/X0 Do\nendstream",
    ]
    for level in range(levels):
        if level + 1 < levels:
            stream = b" ".join([b"/X0 Do"] * fan_out)
            resources = b"/Resources << /XObject << /X0 %d 0 R >> >>" % (first_form + level + 1)
        else:
            stream, resources = leaf, b""
        objects.append(b"<< /Type /XObject /Subtype /Form /BBox [0 0 595 842] %s /Length %d >>\nstream\n"
                       % (resources, len(stream)) + stream + b"\nendstream")
    return pdf_of_objects(objects)


def running(pid: int) -> bool:
    """Return whether pid is a live process (a zombie waiting for its parent is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children(pid: int) -> set[int]:
    """Return the live children of pid."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return {child for child in found if running(child)}


def cpu_ticks(pid: int) -> int:
    """Return the CPU time pid has used, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime and stime


def wait_for(condition, seconds: float = 20.0) -> bool:
    """Poll condition until it holds or seconds pass (a bound for a loaded machine, not a speed claim)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def render_in_thread(data: bytes, timeout: float) -> tuple[threading.Thread, dict]:
    """Start rendering data in a thread; return it and the dict its PNG or refusal lands in."""
    outcome = {"earlier children": children(renderer.zygote_pid())}

    def run():
        try:
            outcome["png"] = pdf_first_page_png(data, width=200, timeout=timeout)
        except PreviewUnavailable as refusal:
            outcome["refusal"] = refusal

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def render_child(outcome: dict) -> int:
    """Wait until the zygote has forked the thread's child; return the child's pid."""
    # A child of an earlier render may still be exiting after its answer arrived: it is not this one.
    def new_children():
        return children(renderer.zygote_pid()) - outcome["earlier children"]
    assert wait_for(lambda: bool(new_children()))
    (child,) = new_children()
    return child


def works() -> bool:
    return pdf_first_page_png(sample_pdf("next"), width=120)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def own_zygote():
    """Each test starts and ends without a zygote, so it sees only the children of its own renders."""
    renderer.stop()
    yield
    renderer.stop()


def test_a_render_that_never_ends_is_killed_at_the_timeout_and_the_next_render_works():
    assert works()
    thread, outcome = render_in_thread(endless_pdf(), timeout=2.0)
    child = render_child(outcome)
    thread.join()
    assert isinstance(outcome["refusal"], RenderTimedOut)
    assert wait_for(lambda: not running(child)), "the child outlived its deadline"
    assert works()


def test_a_render_child_killed_by_a_signal_is_refused_and_the_next_render_works(caplog):
    assert works()
    zygote = renderer.zygote_pid()
    thread, outcome = render_in_thread(endless_pdf(), timeout=120.0)
    child = render_child(outcome)
    # Killed while it renders (it has used CPU), not before it has even said it started: a child that never
    # started is asked for again from a new zygote, which would render the endless page to its deadline.
    assert wait_for(lambda: cpu_ticks(child) >= 20)
    os.kill(child, signal.SIGKILL)  # what a PDF that crashes PDFium does to the child
    thread.join()
    refusal = outcome["refusal"]
    assert not isinstance(refusal, RenderTimedOut) and str(refusal) == PREVIEW_FAILED
    assert f"renderer {child} ended without a whole answer" in caplog.text
    assert works() and renderer.zygote_pid() == zygote  # the zygote was not touched


def test_a_killed_zygote_is_replaced_by_the_next_render():
    assert works()
    zygote = renderer.zygote_pid()
    os.kill(zygote, signal.SIGKILL)
    assert works()
    assert renderer.zygote_pid() not in (None, zygote)


def test_a_stopped_zygote_times_the_render_out_and_is_replaced_by_the_next_render():
    assert works()
    zygote = renderer.zygote_pid()
    os.kill(zygote, signal.SIGSTOP)  # stuck: alive to poll(), but it forks no child
    try:
        with pytest.raises(RenderTimedOut):
            pdf_first_page_png(sample_pdf("stuck"), width=120, timeout=renderer.STUCK_AFTER_SECONDS + 0.5)
        assert works()
        assert renderer.zygote_pid() not in (None, zygote)
        assert wait_for(lambda: not running(zygote)), "the stuck zygote was left running"
    finally:
        if running(zygote):
            os.kill(zygote, signal.SIGKILL)


def test_a_render_with_too_little_time_left_times_out_and_leaves_the_zygote_alone():
    assert works()
    zygote = renderer.zygote_pid()
    # What a request that waited for a render slot until near its deadline brings: no time for any zygote.
    with pytest.raises(RenderTimedOut):
        pdf_first_page_png(sample_pdf("late"), width=120, timeout=1e-6)
    assert renderer.zygote_pid() == zygote and works()


def test_a_zygote_killed_during_a_render_leaves_that_render_alone():
    assert works()
    thread, outcome = render_in_thread(sample_pdf("survives"), timeout=30.0)
    os.kill(renderer.zygote_pid(), signal.SIGKILL)
    thread.join()
    # Either the child had been forked (it finishes on its own channel) or the request found the zygote
    # dead; both answer, and the render after it works.
    assert "png" in outcome or str(outcome["refusal"]) == PREVIEW_FAILED
    assert works()


def test_renders_in_several_threads_each_get_their_own_answer():
    results = {}

    def run(width):
        results[width] = pdf_first_page_png(sample_pdf(f"thread {width}"), width=width)

    threads = [threading.Thread(target=run, args=(width,)) for width in range(100, 108)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {width: Image.open(io.BytesIO(png)).width for width, png in results.items()} == {w: w for w in range(100, 108)}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two CPUs or more")
def test_a_zygote_started_by_a_request_thread_of_a_pinned_server_renders_on_every_cpu(monkeypatch):
    monkeypatch.setattr(cpu_affinity, "_cpus_before_pinning", None)
    every_cpu = os.sched_getaffinity(0)
    seen = {}

    def request_thread():
        cpu_affinity.pin_this_thread(min(every_cpu))  # as a worker of `kjdms serve` pins itself
        seen["rendered"] = works()
        seen["zygote"] = os.sched_getaffinity(renderer.zygote_pid())

    thread = threading.Thread(target=request_thread)
    thread.start()
    thread.join()
    assert seen == {"rendered": True, "zygote": every_cpu}


def test_stop_ends_the_zygote():
    assert works()
    zygote = renderer.zygote_pid()
    renderer.stop()
    assert not running(zygote) and renderer.zygote_pid() is None
    assert works()  # and a later render starts another


SERVER = """
import os, signal, sys
from kjdms import cpu_affinity
from kjdms.documents import renderer
from kjdms.documents.images import pdf_first_page_png
from kjdms.samples import sample_pdf

pdf_first_page_png(sample_pdf())
parent_zygote = renderer.zygote_pid()
reader, writer = os.pipe()
child = os.fork()
if child == 0:  # a worker of `kjdms serve --workers N`: its own zygote, and it never stops the parent's
    pdf_first_page_png(sample_pdf())
    os.write(writer, str(renderer.zygote_pid()).encode())
    os._exit(0)  # as a worker ends on SIGTERM: no atexit handlers run
os.close(writer)
child_zygote = int(os.read(reader, 100))
os.waitpid(child, 0)
pdf_first_page_png(sample_pdf())
print(parent_zygote, child_zygote, renderer.zygote_pid(), flush=True)
if sys.argv[1] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("ending", ["exits", "killed"])
def test_no_zygote_outlives_its_server_process_or_a_forked_worker(ending):
    server = subprocess.run([sys.executable, "-c", SERVER, ending], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(WORKTREE)})
    parent_zygote, child_zygote, parent_zygote_after = map(int, server.stdout.split())
    assert parent_zygote_after == parent_zygote != child_zygote
    assert wait_for(lambda: not running(parent_zygote) and not running(child_zygote)), server.stderr
