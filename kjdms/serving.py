"""Serve the site with waitress in one process, or in several that share one listening socket."""
from __future__ import annotations

import gc
import io
import os
import signal
import socket
import time

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server as create_waitress_server
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import RequestEntityTooLarge

from . import cpu_affinity
from .extensions import db

# A child that dies this soon after its start is not restarted again and again: the parent stops.
QUICK_DEATH_SECONDS = 5


def serve_in_processes(app, host: str, port: int, *, workers: int, threads: int, settings: dict,
                       pin_cpus: bool | None = None, announce=print) -> None:
    """Bind once, fork workers that each run waitress on the shared socket; restart one that dies; stop all on a signal.

    The kernel hands each new connection to one waiting process, so processes add cores that one process's
    Python threads cannot use. No thread may run in the parent before the fork (each child would lose it).
    Each worker may run on a CPU of its own, as pin_cpus and the machine's CPUs decide (cpu_affinity.cpus_for).
    """
    listener = socket.create_server((host, port), backlog=1024)
    db.engine.dispose()  # a pooled connection must never be shared by two processes
    cpus = cpu_affinity.cpus_for(workers, pin_cpus)
    children: dict[int, tuple[float, int]] = {}  # pid: when it started, which worker it is
    stopping = False

    def start_child(worker: int) -> None:
        pid = os.fork()
        if pid == 0:
            _run_child(app, listener, threads, settings, cpus[worker] if cpus else None)
        children[pid] = time.monotonic(), worker

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _signal(pid, signal.SIGTERM)

    for worker in range(workers):
        start_child(worker)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    announce(f"kjdms 正在 http://{host}:{port}/ 以 {workers} 个进程提供服务（进程号 {', '.join(map(str, children))}）"
             + pinning_remark(cpus))
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        child = children.pop(pid, None)
        if stopping or child is None:
            continue
        started, worker = child
        if time.monotonic() - started < QUICK_DEATH_SECONDS:
            announce(f"服务进程 {pid} 启动后即退出（状态 {status}），停止全部进程")
            stop(None, None)
            continue
        announce(f"服务进程 {pid} 意外退出（状态 {status}），已重新启动")
        start_child(worker)  # on the CPU of the one that died
    listener.close()


def pin_single_process(pin_cpus: bool | None) -> list[int] | None:
    """Keep the calling thread, and the threads it starts, on one CPU as pin_cpus decides; return [that CPU] or None."""
    cpus = cpu_affinity.cpus_for(1, pin_cpus)
    return cpus if cpus and cpu_affinity.pin_this_thread(cpus[0]) else None


def pinning_remark(cpus: list[int] | None) -> str:
    """Return how the serving processes are placed on the CPUs, for the line that announces them."""
    if not cpus:
        return ""
    if len(cpus) == 1:
        return f"，请求线程固定在 CPU {cpus[0]} 上"
    return f"，每个进程固定在一个 CPU 上（CPU {'、'.join(map(str, cpus))}）"


def _run_child(app, listener: socket.socket, threads: int, settings: dict, cpu: int | None) -> None:
    """Serve on the inherited socket until told to stop, on cpu when given; never return into the parent's code."""
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when Ctrl+C stops everyone
    try:
        if cpu is not None:
            cpu_affinity.pin_this_thread(cpu)  # before waitress starts its threads, which inherit it
        serve(app, sockets=[listener], threads=threads, **settings)
    finally:
        os._exit(0)


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def serve(app, **settings) -> None:
    """Run waitress with settings until the process is stopped, oversized bodies refused in the site's own page."""
    # What exists now (the application, its mappers, tables and workflow, the imported libraries) lives as long as
    # the process: frozen out of the collector's full passes, which otherwise walk its ~190,000 objects again and
    # again (85-99 ms each, one every 1,000-2,000 pages here: 2-3% of a page; frozen, 0.4 ms).
    gc.freeze()
    create_server(app, **settings).run()


def create_server(app, **settings):
    """Return waitress's server for app with settings, not yet running, oversized bodies refused in the site's page."""
    dispatchers: dict = {}
    server = create_waitress_server(app, map=dispatchers, **settings)
    # One listening server per address (localhost may be two): each makes its connections' channels.
    for dispatcher in dispatchers.values():
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = SiteChannel
    return server


class OversizedBodyTask(WSGITask):
    """Hand a request whose body waitress refused as too large to the site without that body, for its 413 page.

    waitress stops reading at max_request_body_size, so no huge body is ever buffered; the site sees the declared
    length (or what a chunked body reached), over its MAX_CONTENT_LENGTH, and refuses before any view runs.
    """

    def get_environment(self):
        """Return the request's environment with an empty body and the refused length."""
        environ = super().get_environment()
        environ["wsgi.input"] = io.BytesIO()
        environ["CONTENT_LENGTH"] = str(max(self.request.content_length, self.request.body_bytes_received))
        return environ

    def execute(self):
        """Answer through the site, then close: the rest of the refused body may still be on its way."""
        self.set_close_on_finish()
        super().execute()


class SiteChannel(HTTPChannel):
    """waitress's connection, except that a body over the cap is refused by the site rather than in plain English."""

    @staticmethod
    def error_task_class(channel, request):
        """Return the task answering request's error: the site's page for a body too large, else waitress's own."""
        if isinstance(request.error, RequestEntityTooLarge):
            return OversizedBodyTask(channel, request)
        return ErrorTask(channel, request)
