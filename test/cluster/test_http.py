"""http.* against real peers on 127.0.0.1: curl against a skyjet HTTP service (http.httpd),
http.httpc against Python's http.server, http.websocket against Python's websockets library."""
import asyncio
import http.server
import random
import socket
import subprocess
import sys
import threading
import time

from lib import check, free_port, recv_until_eof

try:
    import websockets
except ImportError:  # the Debian package, when the runner's python3 is not Debian's
    sys.path.append("/usr/lib/python3/dist-packages")
    import websockets


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
        return recv_until_eof(s)


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
            time.sleep(2)
            try:
                self._send(200, b"late")
            except OSError:  # the client gave up first, as it should
                pass
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


# ---------------------------------------------------------------------------------------------
# http.websocket against Python's websockets (Debian python3-websockets)

def ws_node(ctx):
    port = free_port()
    n = ctx.node("ws", "ws_echo", env=f"ws_port = {port}")
    n.wait_log(r"WS listening")
    return n, f"ws://127.0.0.1:{port}/chat?room=1", port


def test_ws_server_text_binary_fragmented_and_ping(ctx):
    n, url, _ = ws_node(ctx)

    async def client():
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send("héllo")
            r1 = await ws.recv()
            big = bytes(range(256)) * 400  # 100 KiB binary
            await ws.send(big)
            r2 = await ws.recv()
            await ws.send(["frag-", "ment-", "ed"])  # one text message in three frames
            r3 = await ws.recv()
            await ws.send([b"\x00\x01", b"\x02"])
            r4 = await ws.recv()
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.send("ping-me")  # the server pings; websockets answers with a pong
            await ws.send("after")
            r5 = await ws.recv()
            return r1, r2 == big, r3, r4, r5
    got = asyncio.run(client())
    check(got == ("héllo", True, "frag-ment-ed", b"\x00\x01\x02", "after"), got)
    n.wait_log(r"WS handshake /chat\?room=1 127\.0\.0\.1:\d+")
    n.wait_log(r"WS ping \[are you there\]")
    n.wait_log(r"WS pong")
    n.wait_log(r"WS message text 12")  # the fragmented text
    n.wait_log(r"WS close 1000 ")  # websockets closes with 1000 on leaving the block
    n.wait_log(r"WS done true nil")


def test_ws_server_close_codes_both_ways(ctx):
    n, url, _ = ws_node(ctx)

    async def client():
        ws = await websockets.connect(url)
        await ws.close(4000, "client done")
        first = (ws.close_code, ws.close_reason)
        ws = await websockets.connect(url)
        await ws.send("close-me")
        try:
            await ws.recv()
            second = "no close"
        except websockets.ConnectionClosed as e:
            second = (e.code, e.reason)
        ws = await websockets.connect(url)
        await ws.send("raise-me")
        try:
            await ws.recv()
            third = "no close"
        except websockets.ConnectionClosed as e:
            third = (e.code, e.reason)
        return first, second, third
    got = asyncio.run(client())
    check(got == ((4000, ""), (4001, "bye"), (1011, "internal error")), got)
    n.wait_log(r"WS close 4000 client done")
    n.wait_log(r"WS done false .*handler failed on purpose")


def handshake(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(UPGRADE)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    check(b"101" in head and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, head)
    return s


UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def read_close(s):
    out = b""
    while True:
        got = s.recv(4096)
        if not got:
            break
        out += got
    check(len(out) >= 4 and out[0] == 0x88, out)
    return int.from_bytes(out[2:4], "big")


def test_ws_malformed_frames_close_with_the_right_code(ctx):
    n, _, port = ws_node(ctx)
    mask = b"\x01\x02\x03\x04"
    cases = [
        (b"\x81\x05hello", 1002),  # unmasked client frame
        (b"\xc1\x85" + mask + b"hello", 1002),  # RSV1 without an extension
        (b"\x83\x80" + mask, 1002),  # unknown opcode 3
        (b"\x09\x80" + mask, 1002),  # fragmented ping
        (b"\x80\x80" + mask, 1002),  # continuation with no message
        (b"\x82\xff" + (1 << 40).to_bytes(8, "big") + mask, 1009),  # 1 TiB frame
        (b"\x82\xff" + (300 * 1024).to_bytes(8, "big") + mask, 1009),  # over MAX_FRAME_SIZE
        (b"\x81\x82" + mask + bytes(a ^ b for a, b in zip(b"\xff\xfe", mask)), 1007),  # bad UTF-8
        (b"\x88\x81" + mask + b"\x00", 1002),  # close with 1-byte payload
    ]
    for frame, code in cases:
        s = handshake(port)
        s.sendall(frame)
        got = read_close(s)
        s.close()
        check(got == code, f"{frame[:12]!r}: close code {got}, want {code}")
    n.wait_log(r"WS done false websocket protocol error 1007")
    # bad handshakes get an HTTP error answer
    r = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 400 "), r)
    r = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 426 "), r)
    # and the server still serves a good client
    s = handshake(port)
    s.sendall(b"\x81\x82" + mask + bytes(a ^ b for a, b in zip(b"ok", mask)))
    check(s.recv(4) == b"\x81\x02ok", "echo after the bad ones")
    s.close()


def python_ws_server(handler):
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box = {}

    async def main():
        box["server"] = await websockets.serve(handler, "127.0.0.1", 0)
        box["port"] = box["server"].sockets[0].getsockname()[1]
        started.set()
        await box["server"].wait_closed()
    threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True).start()
    check(started.wait(10), "python websocket server started")

    def stop():
        loop.call_soon_threadsafe(box["server"].close)
    return box["port"], stop


async def _py_server(ws, path=None):
    try:
        await _py_serve(ws)
    except websockets.ConnectionClosed:
        pass


async def _py_serve(ws):
    async for msg in ws:
        if msg == "fragments":
            await ws.send(["one ", "two ", "three"])
        elif msg == "ping":
            await asyncio.wait_for(await ws.ping(b"py"), 5)
            await ws.send("got pong")
        elif msg == "bye":
            await ws.close(4002, "server bye")
        else:
            await ws.send(msg)


WSC = 'local websocket = require "http.websocket"\n'


def test_ws_client_against_python_server(ctx):
    port, stop = python_ws_server(_py_server)
    try:
        n = ctx.ctl_node("wsc")
        got = n.eval1(WSC + f"""
            local id = websocket.connect("ws://127.0.0.1:{port}/path", nil, 200)
            local r = {{ websocket.addrinfo(id) }}
            websocket.write(id, "text ü")
            r[#r + 1] = websocket.read(id) == "text ü"
            local bin = string.rep("\\0\\255", 40000)
            websocket.write(id, bin, "binary")
            r[#r + 1] = websocket.read(id) == bin
            websocket.write(id, "fragments")
            r[#r + 1] = websocket.read(id)
            websocket.write(id, "ping")
            r[#r + 1] = websocket.read(id)
            websocket.ping(id)
            websocket.write(id, "bye")
            local ok, reason, code = websocket.read(id)
            r[#r + 1] = ok; r[#r + 1] = reason; r[#r + 1] = code
            r[#r + 1] = websocket.is_close(id)
            return r
        """)
        check(got == [f"127.0.0.1:{port}", True, True, "one two three", "got pong", False,
                      "server bye", 4002, True], got)
        got = n.eval(WSC + f"""
            local id = websocket.connect("ws://127.0.0.1:{port}/")
            websocket.close(id, 1000, "client bye")
            local ok, err = pcall(websocket.connect, "wss://127.0.0.1:{port}/")
            local ok2, err2 = pcall(websocket.connect, "ws://127.0.0.1:{free_port()}/")
            return websocket.is_close(id), ok, tostring(err), ok2, tostring(err2)
        """)
        check(got[0] is True and got[1] is False and "invalid protocol: wss" in got[2], got)
        check(got[3] is False and "connect failed" in got[4], got)
    finally:
        stop()


def test_ws_client_refuses_a_bad_server(ctx):
    """A server that answers the upgrade wrongly, or sends a masked frame: connect raises /
    read reports the violation."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    port = lsock.getsockname()[1]

    def serve():
        c, _ = lsock.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        c.close()
        c, _ = lsock.accept()
        req = c.recv(4096).decode()
        key = [l.split(":", 1)[1].strip() for l in req.split("\r\n")
               if l.lower().startswith("sec-websocket-key")][0]
        import base64
        import hashlib
        acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                            .encode()).digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n" + b"\x81\x82abcd" + b"xx")
        time.sleep(1)
        c.close()
    threading.Thread(target=serve, daemon=True).start()
    n = ctx.ctl_node("wsc")
    got = n.eval(WSC + f"""
        local ok, err = pcall(websocket.connect, "ws://127.0.0.1:{port}/")
        local id = websocket.connect("ws://127.0.0.1:{port}/")
        local r, reason, code = websocket.read(id)
        return ok, tostring(err), r, reason, code
    """)
    lsock.close()
    check(got[:2] == [False, "websocket handshake error: code[200]"], got)
    check(got[2] is False and "masked frame from the server" in got[3] and got[4] == 1002, got)


def _masked(op_byte, payload, key=b"\x11\x22\x33\x44"):
    n = len(payload)
    if n < 126:
        head = bytes([op_byte, 0x80 | n])
    elif n < 65536:
        head = bytes([op_byte, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([op_byte, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_ws_server_survives_random_frames(ctx):
    """Mutated and random frames, each sent right behind the upgrade request: the server answers,
    closes, or waits for the rest (then sees our EOF); it never hangs or raises a Lua error, and
    still echoes afterwards."""
    n, _, port = ws_node(ctx)
    seed = int(time.time())
    rng = random.Random(seed)
    valid = [_masked(0x81, b"hello"), _masked(0x82, bytes(300)), _masked(0x01, b"ab") +
             _masked(0x80, b"cd"), _masked(0x89, b"p"), _masked(0x88, b"\x03\xe8ok"),
             _masked(0x82, bytes(70000))]
    for i in range(150):
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 3)):
            if len(data) < 2:
                break
            pos = rng.randrange(len(data))
            op = rng.randrange(4)
            if op == 0:
                data[pos] ^= 1 << rng.randrange(8)
            elif op == 1:
                del data[pos:]
            elif op == 2:
                data[pos:pos] = rng.randbytes(rng.randint(1, 12))
            else:
                data[:2] = rng.randbytes(2)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(UPGRADE + bytes(data))
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
    s = handshake(port)
    mask = b"\x01\x02\x03\x04"
    s.sendall(b"\x81\x82" + mask + bytes(a ^ b for a, b in zip(b"ok", mask)))
    check(s.recv(4) == b"\x81\x02ok", f"echo after the random frames (seed {seed})")
    s.close()
    check("traceback" not in n.text(), f"seed {seed}: " + n.tail())
