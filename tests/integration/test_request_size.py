"""The server refuses an oversized body with 413 before reading it, by its declared length and while it streams,
and the site words the refusal: a Chinese page naming the limit and the way back."""
import hashlib
import io
import socket
import tempfile
import threading

import pytest
from flask import request
from kjdms.backends import get_blob_store, get_config
from kjdms.blobs.staging import StagedBlob
from kjdms.serving import create_server
from tests.webclient import text


@pytest.fixture
def server(app):
    """The site under waitress as `kjdms serve` configures it, on a free port."""
    running = create_server(app, host="127.0.0.1", port=0, threads=2, **get_config().server_settings())
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running.effective_port

    def close_everything():
        # Inside the server's own loop: closed from another thread, its sockets vanish under a waiting select().
        for channel in list(running.active_channels.values()):
            channel.close()
        running.close()

    running.trigger.pull_trigger(close_everything)
    thread.join(10)  # the loop ends once nothing is left to watch
    running.task_dispatcher.shutdown()
    assert not thread.is_alive()


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def open_upload(port, headers: str, path: str = "/me/documents/other") -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
                       f"Content-Type: multipart/form-data; boundary=x\r\n{headers}\r\n".encode("ascii"))
    return connection


def read_reply(connection: socket.socket, reply: bytes = b"") -> bytes:
    """Read the rest of the reply until the server closes the connection."""
    while True:
        try:
            part = connection.recv(65536)
        except ConnectionResetError:  # what arrived before the reset is what the server said
            return reply
        if not part:
            return reply
        reply += part


def assert_the_sites_own_refusal(reply: bytes) -> None:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert status_of(head) == 413 and b"Content-Type: text/html; charset=utf-8" in head
    assert b"Connection: close" in head  # the rest of the body may still be coming: no second request on it
    page = body.decode("utf-8")
    assert "<h1 class=\"h4\">文件过大</h1>" in page and "单个文件不超过 10 MB" in page
    assert 'href="/me/documents">返回证明材料页面，重新选择文件</a>' in page
    assert "Request Entity Too Large" not in page and "waitress" not in page


def test_a_declared_length_over_the_cap_is_refused_in_chinese_before_the_body_is_sent(server):
    cap = get_config().max_request_bytes
    connection = open_upload(server, f"Content-Length: {cap + 20 * 1024 * 1024}\r\n")
    # Nothing of the body was sent: only a refusal can answer now, and the whole page arrives.
    assert_the_sites_own_refusal(read_reply(connection))


def test_a_chunked_body_is_cut_off_once_it_passes_the_cap_and_refused_in_chinese(server):
    cap = get_config().max_request_bytes
    connection = open_upload(server, "Transfer-Encoding: chunked\r\n")
    chunk, sent, reply = b"x" * 65536, 0, b""
    try:
        while sent < 3 * cap:
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            connection.settimeout(0.0)
            try:
                reply = connection.recv(65536)
            except BlockingIOError:
                continue
            finally:
                connection.settimeout(10)
            if reply:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert_the_sites_own_refusal(read_reply(connection, reply))
    # Refused once the cap was passed, not after the whole stream (the sockets' buffers hold a few MiB more).
    assert sent < cap + 8 * 1024 * 1024


def test_the_site_refuses_a_body_declared_over_the_cap_before_any_view_runs(client):
    cap = get_config().max_request_bytes
    # The home page reads no body: only the refusal before every view can answer it with 413.
    response = client.get("/", environ_overrides={"CONTENT_LENGTH": str(cap + 1)})
    assert response.status_code == 413 and "单个文件不超过 10 MB" in text(response)
    assert client.get("/", environ_overrides={"CONTENT_LENGTH": str(cap)}).status_code == 200
    # waitress refuses a body of its limit or more, the site one over its cap: the same bodies, by one byte.
    assert get_config().server_settings()["max_request_body_size"] == cap + 1


def test_a_body_within_the_cap_still_reaches_the_site(server):
    connection = open_upload(server, "Content-Length: 4\r\n")
    connection.sendall(b"--x-")
    # Not signed in and no CSRF token: the site itself answers (400), not the server's cap.
    assert status_of(connection.recv(4096)) in (302, 400)


def test_an_uploaded_file_within_the_cap_is_parsed_into_the_stores_staging_not_a_temporary_file(app):
    scan = b"%PDF-1.4\n" + bytes(range(256)) * 2400  # 600 KB: past the 500 KB where werkzeug spills to disk

    def parsed_file(cap):
        app.config["MAX_CONTENT_LENGTH"] = cap
        with app.test_request_context("/me/documents/other", method="POST", content_type="multipart/form-data",
                                      data={"file": (io.BytesIO(scan), "扫描件.pdf")}):
            stream = request.files["file"].stream
            stream.seek(0)
            return stream, stream.read()

    cap = app.config["MAX_CONTENT_LENGTH"]
    try:
        stream, content = parsed_file(cap)
        # Hashed, counted and its head kept as it was parsed: the store installs it without reading it again.
        assert isinstance(stream, StagedBlob) and content == scan
        assert (stream.sha256, stream.size, stream.head) == (hashlib.sha256(scan).hexdigest(), len(scan), scan[:8192])
        # The request ended without a put: its staging file is gone.
        assert stream.closed and not stream.path.exists()
        # Without a cap nothing bounds the body: werkzeug's own spooling, to disk past 500 KB.
        stream, content = parsed_file(None)
        assert isinstance(stream, tempfile.SpooledTemporaryFile) and content == scan
    finally:
        app.config["MAX_CONTENT_LENGTH"] = cap


@pytest.mark.parametrize("cut", ["no closing boundary", "too many parts"])
def test_a_body_that_breaks_off_inside_a_file_part_leaves_no_staged_file(app, cut):
    # Werkzeug drops the parts of a body it cannot parse to the end without handing them to request.files: the
    # staged file must still go when the request ends, or anyone could fill the blob volume without signing in.
    boundary = "x" * 16
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode() + b"%PDF-1.4\n" + b"0" * 200_000
    if cut == "no closing boundary":
        body = part
    else:
        body = part + b"\r\n" + b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n"
                                         .encode() for i in range(2000)) + f"--{boundary}--\r\n".encode()
    with app.app_context():
        root = get_blob_store().root
    before = set(root.glob(".tmp-*"))
    with app.test_request_context("/login", method="POST", data=body,
                                  content_type=f"multipart/form-data; boundary={boundary}"):
        try:
            request.form  # what the CSRF check reads before any view
        except Exception:
            pass  # too many parts: werkzeug refuses the body (413); the staged file is the point here
        assert set(root.glob(".tmp-*")) - before, "the part was not staged: the test would prove nothing"
    assert set(root.glob(".tmp-*")) == before
