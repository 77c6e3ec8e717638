"""http.* against real peers on 127.0.0.1: curl against a skyjet HTTP service (http.httpd),
http.httpc against Python's http.server, http.websocket against Python's websockets library."""
import socket
import subprocess
import time

from lib import check, free_port


def http_node(ctx):
    port = free_port()
    n = ctx.node("web", "http_echo", env=f"http_port = {port}")
    n.wait_log(r"HTTPD listening")
    return n, port


def curl(*args, timeout=20):
    r = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def raw(port, data, timeout=5):
    """Send bytes, return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            got = s.recv(65536)
            if not got:
                return out
            out += got


def test_curl_get_with_query(ctx):
    n, port = http_node(ctx)
    rc, out, err = curl("-i", f"http://127.0.0.1:{port}/a%20b/c?x=1&name=sky+jet&e=%41")
    check(rc == 0, err)
    check(out.startswith("HTTP/1.1 200 OK\r\n"), out)
    head, body = out.split("\r\n\r\n", 1)
    check("x-multi: one" in head and "x-multi: two" in head, head)
    lines = body.split("\n")
    check(lines[:5] == ["method GET", "path /a b/c", "query e=A", "query name=sky jet",
                        "query x=1"], lines)
    check(f"header host=127.0.0.1:{port}" in lines and "body " == lines[-1], lines)


def test_curl_post_body_and_chunked_upload(ctx):
    n, port = http_node(ctx)
    rc, out, err = curl("--data-binary", "hello=world&a=b", f"http://127.0.0.1:{port}/post")
    check(rc == 0 and "method POST" in out and out.endswith("body hello=world&a=b"), out + err)
    payload = "x" * 5000 + "END"
    rc, out, err = curl("-H", "Transfer-Encoding: chunked", "--data-binary", payload,
                        f"http://127.0.0.1:{port}/up")
    check(rc == 0 and out.endswith("body " + payload), out[-200:] + err)
    check("header transfer-encoding=chunked" in out, out[:400])


def test_curl_reads_chunked_and_large_answers(ctx):
    n, port = http_node(ctx)
    rc, out, err = curl("-i", f"http://127.0.0.1:{port}/chunked")
    check(rc == 0 and "transfer-encoding: chunked" in out.lower(), out + err)
    check(out.endswith("\r\n\r\nalpha-beta-gamma"), out)
    rc, out, err = curl(f"http://127.0.0.1:{port}/big")
    check(rc == 0 and out == "0123456789abcdef" * 65536, f"{len(out)} bytes {err}")


def test_curl_keep_alive_reuses_the_connection(ctx):
    n, port = http_node(ctx)
    rc, out, err = curl("-v", f"http://127.0.0.1:{port}/whoami", f"http://127.0.0.1:{port}/whoami")
    check(rc == 0, err)
    check("Re-using existing connection" in err, err)
    check(len(out) > 0 and out[:len(out) // 2] == out[len(out) // 2:], out)


def test_bad_requests_get_error_answers(ctx):
    n, port = http_node(ctx)
    cases = [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\nhost: x\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),  # no Host
        (b"GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nhost: x\r\nna me: v\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 12x\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd", b"400"),
        (b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n", b"501"),
        (b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 999999\r\n\r\n", b"413"),
        (b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
         + b"8000\r\n" + b"y" * 0x8000 + b"\r\n" + b"8000\r\n" + b"y" * 0x8000 + b"\r\n"
         + b"1\r\ny\r\n0\r\n\r\n", b"413"),
        (b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 9000 + b"\r\n\r\n", b"413"),
        (b"GET / HTTP/1.1\r\nhost: x\r\n" + b"h: v\r\n" * 150 + b"\r\n", b"413"),
    ]
    for req, code in cases:
        got = raw(port, req)
        check(got.startswith(b"HTTP/1.1 " + code + b" "), f"{req[:60]!r} -> {got[:80]!r}")
    # curl's view of one of them, and the server still answers afterwards
    rc, out, err = curl("-i", "-H", "x-big: " + "a" * 9000, f"http://127.0.0.1:{port}/")
    check(rc == 0 and out.startswith("HTTP/1.1 413 "), out[:100] + err)
    rc, out, err = curl(f"http://127.0.0.1:{port}/still")
    check(rc == 0 and "path /still" in out, out + err)


def test_client_that_stops_mid_body_is_timed_out(ctx):
    n, port = http_node(ctx)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\npartial")
    n.wait_log(r"HTTPD error \[Socket Error\] read timeout", timeout=10)
    check(s.recv(100) == b"", "the server closed the connection")
    s.close()
    # a client that stops inside the header, and one that goes away mid-body
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nhost:")
    check(s.recv(100) == b"", "closed after the header stalled")
    s.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab")
    time.sleep(0.1)
    s.close()
    n.wait_log(r"HTTPD error \[Socket Error\] read failed")
    rc, out, err = curl(f"http://127.0.0.1:{port}/alive")
    check(rc == 0 and "path /alive" in out, out + err)
