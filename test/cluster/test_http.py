"""http.* against real peers on 127.0.0.1: curl against a skyjet HTTP service (http.httpd),
http.httpc against Python's http.server, http.websocket against Python's websockets library."""
import http.server
import socket
import threading
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


# ---------------------------------------------------------------------------------------------
# http.httpc against Python's http.server

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/hello":
            self._send(200, b"hello from python", [("X-Two", "a"), ("X-Two", "b")])
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"one,", b"two,", b"three" * 1000):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")
        elif self.path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"no length, ends at close")
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, b"late")
        elif self.path == "/host":
            self._send(200, self.headers["Host"].encode())
        else:
            self._send(404, b"no such page")

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._send(201, self.headers["Content-Type"].encode() + b"|" + body)


def python_http_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def with_server(fn):
    def run(ctx):
        srv = python_http_server()
        try:
            fn(ctx, ctx.ctl_node("cli"), srv.server_address[1])
        finally:
            srv.shutdown()
            srv.server_close()
    run.__name__ = fn.__name__
    return run


HTTPC = 'local httpc = require "http.httpc"\n'


@with_server
def test_httpc_get_post_head_against_python(ctx, n, port):
    got = n.eval(HTTPC + f"""
        local h = {{}}
        local code, body = httpc.get("127.0.0.1:{port}", "/hello", h)
        local c2, b2 = httpc.post("127.0.0.1:{port}", "/form", {{ name = "sky jet&co" }})
        local c3, b3 = httpc.request("POST", "http://127.0.0.1:{port}", "/raw", nil,
            {{ ["content-type"] = "text/plain" }}, "raw body")
        local c4, b4 = httpc.get("127.0.0.1:{port}", "/missing")
        return code, body, h["x-two"], c2, b2, c3, b3, c4, b4, httpc.head("127.0.0.1:{port}", "/")
    """)
    check(got == [200, "hello from python", ["a", "b"], 201,
                  "application/x-www-form-urlencoded|name=sky%20jet%26co", 201, "text/plain|raw body",
                  404, "no such page", 200], got)


@with_server
def test_httpc_chunked_close_delimited_and_hostname(ctx, n, port):
    got = n.eval(HTTPC + f"""
        local h = {{}}
        local code, body = httpc.get("127.0.0.1:{port}", "/chunked", h)
        local c2, b2 = httpc.get("127.0.0.1:{port}", "/until-close")
        local c3, b3 = httpc.get("localhost:{port}", "/host")
        return code, #body, body:sub(1, 12), h["x-trailer"], c2, b2, c3, b3
    """)
    check(got == [200, 8 + 5000, "one,two,thre", "done", 200, "no length, ends at close", 200,
                  f"localhost:{port}"], got)


@with_server
def test_httpc_stream_reads_pieces(ctx, n, port):
    got = n.eval(HTTPC + f"""
        local s = httpc.request_stream("GET", "127.0.0.1:{port}", "/chunked")
        local pieces = {{}}
        for piece in s do pieces[#pieces + 1] = piece end
        return s.status, pieces[1], pieces[2], #pieces[3], s.header["x-trailer"]
    """)
    check(got == [200, "one,", "two,", 5000, "done"], got)


@with_server
def test_httpc_timeout_and_connect_errors(ctx, n, port):
    err = n.eval(HTTPC + f"""
        httpc.timeout = 50
        local t0 = skynet.now()
        local ok, err = pcall(httpc.get, "127.0.0.1:{port}", "/slow")
        httpc.timeout = nil
        return ok, tostring(err), skynet.now() - t0 < 250
    """)
    check(err[0] is False and "timeout" in err[1] and err[2], err)
    dead = free_port()
    got = n.eval(HTTPC + f"""
        local ok, err = pcall(httpc.get, "127.0.0.1:{dead}", "/")
        local ok2, err2 = pcall(httpc.get, "https://127.0.0.1:{port}", "/")
        local ok3, err3 = pcall(httpc.get, "no-such-host.invalid:{port}", "/")
        return ok, tostring(err), ok2, tostring(err2), ok3, tostring(err3)
    """)
    check(got[0] is False and "connect failed" in got[1], got)
    check(got[2] is False and "Invalid protocol: https" in got[3], got)
    check(got[4] is False and "connect failed" in got[5], got)


def test_httpc_against_a_malformed_server(ctx):
    """A peer that answers garbage, an oversized header, or stops mid-body: httpc raises."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    answers = [b"NOT HTTP\r\n\r\n", b"HTTP/1.1 200 OK\r\nx: " + b"a" * 9000 + b"\r\n\r\n",
               b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort",
               b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"]

    def serve():
        for a in answers:
            c, _ = lsock.accept()
            c.recv(4096)
            c.sendall(a)
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    n = ctx.ctl_node("cli")
    got = n.eval(HTTPC + f"""
        local r = {{}}
        for i = 1, 4 do
            local ok, err = pcall(httpc.get, "127.0.0.1:{port}", "/")
            r[#r + 1] = tostring(ok) .. " " .. tostring(err)
        end
        return r
    """)
    lsock.close()
    check("bad status line" in got[0][0], got)
    check("response header too large" in got[0][1], got)
    check("Socket Error" in got[0][2], got)
    check("bad chunk size" in got[0][3], got)
