"""The PDF renderer zygote as the server sees it: started lazily, one fresh forked child per render.

Starting `python pdf_render.py` for every preview cost an interpreter start and the imports of
pypdfium2 and Pillow each time. Instead, each server process starts one zygote (pdf_render.serve)
the first time it renders: it has imported both and forks a fresh child per render. The guarantees
of a process per render stay: the child sets its memory limit, the kernel ends it at the deadline
(SIGALRM at its default action works even inside PDFium's C code), a crash ends only that child, and
the next render forks another from the zygote, which never reads a PDF. A render's request goes to
the zygote with one end of a new socket pair (SCM_RIGHTS); the child reads the PDF from it and answers
on it, so renders in several request threads run side by side and never share a channel.

No orphans: the zygote exits when its control socket closes, which happens when this process stops
it (stop(), at exit), exits or dies; a forked copy of this process (`kjdms serve --workers N`) forgets
its parent's zygote and starts its own. A child the zygote forked ends at its deadline at the latest.
"""
from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import threading
import time

from .. import cpu_affinity
from . import pdf_render


# A zygote that has not forked a child for a request within this long is stuck, not slow.
STUCK_AFTER_SECONDS = 1.0


class RendererCrashed(OSError):
    """The render's child ended without a whole answer (a crash, a signal, or the zygote died first)."""


class _Zygote:
    """One running zygote process and the control socket its requests go through."""

    def __init__(self, command: list[str], environment: dict[str, str]):
        self.command = command
        self.control, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # The zygote's stdin is its control socket; close_fds keeps every other descriptor of the server out.
            self.process = subprocess.Popen(command, stdin=remote, stdout=subprocess.DEVNULL, env=environment)
            # Started from a request thread of a pinned server it would share that one CPU; renders need none of it.
            cpu_affinity.release(self.process.pid)
        except BaseException:
            self.control.close()
            raise
        finally:
            remote.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork_child(self, request: dict) -> socket.socket:
        """Ask the zygote for a child that serves request; return this side of the child's channel."""
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self.control, [json.dumps(request).encode()], [theirs.fileno()])
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return ours

    def stop(self) -> None:
        """Close the control socket, which ends the zygote; kill it if it does not end in a few seconds."""
        self.control.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_zygote: _Zygote | None = None
_zygote_lock = threading.Lock()


def render(command: list[str], environment: dict[str, str], mode: str, arguments: list[str], data: bytes,
           timeout: float) -> tuple[int, bytes]:
    """Render data in a fresh child of the zygote that command starts; return its status and bytes.

    Raise TimeoutError when no answer came within timeout seconds, RendererCrashed when the child died first.
    """
    deadline = time.monotonic() + timeout
    channel, child = _started_child(command, environment, {"mode": mode, "arguments": arguments}, deadline)
    with channel:
        _set_timeout(channel, deadline)
        try:
            channel.sendall(data)
            channel.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise RendererCrashed(f"the PDF renderer {child} ended before it had read the PDF") from error
        answer = _receive(channel, deadline)
    if _incomplete(answer) and time.monotonic() >= deadline:
        # Its alarm ended it at the deadline, and on a busy machine this thread woke after that.
        raise TimeoutError("the PDF renderer did not answer in time")
    if _incomplete(answer):
        raise RendererCrashed(f"the PDF renderer {child} ended without a whole answer")
    status, _ = pdf_render.RESPONSE.unpack_from(answer)
    return status, answer[pdf_render.RESPONSE.size:]


def _incomplete(answer: bytes) -> bool:
    if len(answer) < pdf_render.RESPONSE.size:
        return True
    return len(answer) != pdf_render.RESPONSE.size + pdf_render.RESPONSE.unpack_from(answer)[1]


def _started_child(command: list[str], environment: dict[str, str], request: dict,
                   deadline: float) -> tuple[socket.socket, int]:
    """Return the channel to a child that runs, and its process id; start a new zygote once if the old one died."""
    for _ in range(2):
        # The child's own alarm gets what is left of the deadline (starting a zygote took some of it): a child
        # never renders past the moment this thread gives up and frees its render slot.
        remaining = {**request, "timeout": deadline - time.monotonic()}
        zygote, channel = _fork_child(command, environment, remaining)
        if channel is not None:
            try:
                started = _receive(channel, deadline, pdf_render.STARTED.size)
            except TimeoutError:
                # A zygote forks in milliseconds; one given a second that forked nothing is stuck (stopped, say)
                # and would fail every later render too. No child started, so none is left behind. A request that
                # came with less (it waited for a render slot) says nothing about the zygote: others share it.
                channel.close()
                if remaining["timeout"] >= STUCK_AFTER_SECONDS:
                    _discard(zygote, stuck=True)
                raise
            except BaseException:
                channel.close()
                raise
            if len(started) == pdf_render.STARTED.size:
                return channel, pdf_render.STARTED.unpack(started)[0]
            channel.close()
        # The zygote died (killed, say) before it forked a child for the request, so no child saw the PDF and
        # asking a new zygote is safe. A dying zygote may look alive until it is reaped: stop it, never reuse it.
        _discard(zygote)
    raise RendererCrashed("the PDF renderer's zygote ended before it forked a child")


def _fork_child(command: list[str], environment: dict[str, str],
                request: dict) -> tuple[_Zygote, socket.socket | None]:
    """Return the zygote (started if need be) and the channel to the child it forks, None if it could not ask."""
    global _zygote
    with _zygote_lock:  # held while sending too: stop() in another thread must not close the socket meanwhile
        # Another command (a test's renderer that crashes, say) gets a zygote of its own.
        if _zygote is not None and (_zygote.command != command or not _zygote.alive()):
            _zygote.stop()
            _zygote = None
        if _zygote is None:
            _zygote = _Zygote(command, environment)
        try:
            return _zygote, _zygote.fork_child(request)
        except OSError:
            return _zygote, None


def _discard(zygote: _Zygote, stuck: bool = False) -> None:
    """Stop zygote if it is still this process's, so that the next render starts a new one."""
    global _zygote
    with _zygote_lock:
        if _zygote is zygote:
            if stuck:
                _zygote.process.kill()  # it would not see its control socket close: no grace period under the lock
            _zygote.stop()
            _zygote = None


def _receive(channel: socket.socket, deadline: float, size: int | None = None) -> bytes:
    """Return what channel sends until it ends (or size bytes); raise TimeoutError past the deadline."""
    received = bytearray()
    while size is None or len(received) < size:
        _set_timeout(channel, deadline)
        try:
            chunk = channel.recv(1 << 20 if size is None else size - len(received))
        except ConnectionResetError:
            chunk = b""  # the peer died with unread data on its side: the same as ending there
        if not chunk:
            break
        received += chunk
    return bytes(received)


def _set_timeout(channel: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the PDF renderer did not answer in time")
    channel.settimeout(remaining)


def zygote_pid() -> int | None:
    """Return the process id of this process's zygote while it runs (for diagnostics and tests)."""
    with _zygote_lock:
        return _zygote.process.pid if _zygote is not None and _zygote.alive() else None


def stop() -> None:
    """Stop this process's zygote, if it runs (at exit, and in tests)."""
    if _zygote is not None:
        _discard(_zygote)


def _forget_after_fork() -> None:
    """In a forked copy of the server: drop the parent's zygote without ending it; a render starts our own."""
    global _zygote, _zygote_lock
    _zygote_lock = threading.Lock()  # another thread may have held it at the fork
    if _zygote is not None:
        _zygote.control.close()  # our copy only: the parent's zygote still has the parent's
        _zygote.process.returncode = 0  # not our child: never wait for it here
        _zygote = None


atexit.register(stop)
os.register_at_fork(after_in_child=_forget_after_fork)
