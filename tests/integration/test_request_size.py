"""The server refuses an oversized body with 413 before reading it: by its declared length, and while it streams."""
import socket
import threading
import time

import pytest
from waitress.server import create_server

from kjdms.backends import get_config


@pytest.fixture
def server(app):
    """The site under waitress as `kjdms serve` configures it, on a free port."""
    running = create_server(app, host="127.0.0.1", port=0, threads=2, **get_config().server_settings())
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running.effective_port
    running.close()
    thread.join(5)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def open_upload(port, headers: str) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(f"POST /me/documents/other HTTP/1.1\r\nHost: localhost\r\n"
                       f"Content-Type: multipart/form-data; boundary=x\r\n{headers}\r\n".encode("ascii"))
    return connection


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_sent(server):
    cap = get_config().max_request_bytes
    connection = open_upload(server, f"Content-Length: {cap + 20 * 1024 * 1024}\r\n")
    started = time.monotonic()
    reply = connection.recv(4096)  # nothing of the body was sent: only a refusal can answer now
    assert status_of(reply) == 413 and time.monotonic() - started < 5


def test_a_chunked_body_is_cut_off_once_it_passes_the_cap(server):
    cap = get_config().max_request_bytes
    connection = open_upload(server, "Transfer-Encoding: chunked\r\n")
    chunk, sent, reply = b"x" * 65536, 0, b""
    try:
        while sent < 3 * cap:
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            connection.settimeout(0.0)
            try:
                reply = connection.recv(4096)
            except BlockingIOError:
                continue
            finally:
                connection.settimeout(10)
            if reply:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    if not reply:
        connection.settimeout(10)
        reply = connection.recv(4096)
    assert status_of(reply) == 413
    # Refused once the cap was passed, not after the whole stream (the sockets' buffers hold a few MiB more).
    assert sent < cap + 8 * 1024 * 1024


def test_a_body_within_the_cap_still_reaches_the_site(server):
    connection = open_upload(server, "Content-Length: 4\r\n")
    connection.sendall(b"--x-")
    # Not signed in and no CSRF token: the site itself answers (400), not the server's cap.
    assert status_of(connection.recv(4096)) in (302, 400)
