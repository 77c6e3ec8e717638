"""Cluster reliability and security: deadlines, heartbeat and node events, authentication,
the exposure policy and the caps on the inbound path."""
import os
import signal
import socket
import struct
import time

from lib import check, free_port, slow, wait_for

SETUP_CALLEE = """
G.p = skynet.newservice("probe")
cluster.register("probe", G.p)
skynet.name(".probe", G.p)
return G.p
"""


# connections the callee's cluster listener counts now
LIVE = 'local _, l = next(skynet.call(".clusterd", "lua", "listeners")) return l.live'


def pair(ctx, caller="", callee="", extra="", callee_node=""):
    p1, p2 = free_port(), free_port()
    cf = ctx.cluster_file({"n1": p1, "n2": p2}, extra)
    a = ctx.ctl_node("n1", cf, cluster=caller)
    b = ctx.ctl_node("n2", cf, cluster=callee, node=callee_node)
    handle = b.eval1(SETUP_CALLEE)
    b.eval('cluster.open("n2")')
    a.port2 = p2
    return a, b, handle




def test_call_timeout_fails_with_node_address_and_deadline(ctx):
    a, b, _ = pair(ctx, caller="call_timeout = 300")
    t0 = time.time()
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "sleep", 300))')
    check("call failed" in err and "timeout after 300 ms" in err and "n2" in err and
          "@probe" in err and f"127.0.0.1:{a.port2}" in err, err)
    check(time.time() - t0 < 2.5, "failed by the deadline")
    # per-call deadline overrides the default; the late answer is dropped quietly
    err = a.eval1('return select(2, pcall(cluster.call_timeout, 100, "n2", "@probe", "sleep", 50))')
    check("timeout after 100 ms" in err, err)
    check(a.eval1('return cluster.call_timeout(5000, "n2", "@probe", "echo", "in time")') == "in time",
          "a call inside its deadline")
    time.sleep(3.5)  # the late answers arrive now
    check(a.eval1('return cluster.call("n2", "@probe", "echo", "still fine")') == "still fine", "link ok")
    check("unknown session" not in a.text(), "late answers are dropped without noise")
    st = a.eval1("return cluster.status().n2")
    check(st["errors"]["timeout"] == 2 and st["pending"] == 0, st)


def test_proxy_calls_honour_the_deadline(ctx):
    a, b, _ = pair(ctx, caller="call_timeout = 200")
    err = a.eval1('local p = cluster.proxy("n2@probe") return select(2, pcall(skynet.call, p, "lua", "sleep", 300))')
    check("call failed" in err and "timeout after 200 ms" in err, err)


def test_connect_timeout_on_a_blackholed_address(ctx):
    # A loopback blackhole: a listener whose accept queue is full drops new SYNs, so a connect
    # to it hangs (no traffic leaves 127.0.0.1).
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    time.sleep(0.2)
    p1 = free_port()
    cf = ctx.cluster_file({"n1": p1, "hole": port})
    a = ctx.ctl_node("n1", cf, cluster="connect_timeout = 300")
    t0 = time.time()
    err = a.eval1('return select(2, pcall(cluster.call, "hole", "@x", 1))')
    check("call failed" in err, err)
    check(time.time() - t0 < 3, f"connect gave up by its timeout ({time.time() - t0:.1f}s)")
    a.wait_log(r"connect timeout after 300 ms")
    for f in fillers:
        f.close()
    hole.close()


def test_sigstopped_peer_is_declared_down_and_comes_back(ctx):
    a, b, _ = pair(ctx, caller="heartbeat = 300\nheartbeat_timeout = 600")
    a.eval("""
        G.events = {}
        local states, stop = cluster.watch(function(node, state, detail)
            G.events[#G.events + 1] = { node = node, state = state, detail = detail, t = skynet.time() }
        end)
    """)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "up")
    wait_for(lambda: any(e["state"] == "up" for e in a.eval1("return G.events")), what="up event")
    # the pending calls sleep on the callee (5 s), so neither can be answered before the stop
    # takes effect, however late a loaded machine delivers it
    a.eval('skynet.fork(function() G.pending = table.pack(pcall(cluster.call, "n2", "@probe", "sleep", 500)) end)')
    os.kill(b.pid, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        a.eval('skynet.fork(function() G.pending = table.pack(pcall(cluster.call, "n2", "@probe", "sleep", 500)) end)')
        down = wait_for(lambda: [e for e in a.eval1("return G.events") if e["state"] == "down"],
                        timeout=10, what="down event")
        detected = down[0]["t"] - stopped_at
        # heartbeat 300 ms + timeout 600 ms, with slack for a loaded machine (3x under ASan)
        check(detected < 2.0 * slow(ctx), f"declared down {detected:.2f}s after SIGSTOP")
        check("heartbeat" in down[0]["detail"], down[0])
        r = wait_for(lambda: a.eval1("return G.pending"), timeout=5, what="the pending call to fail")
        check(r["1"] is False and "call failed" in r["2"], r)
        a.wait_log(r"cluster node n2 .* is down: no answer to a heartbeat")
    finally:
        os.kill(b.pid, signal.SIGCONT)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", "back")') == "back", "back after SIGCONT")
    wait_for(lambda: a.eval1("return G.events")[-1]["state"] == "up", what="up again")
    st = a.eval1("return cluster.status().n2")
    check(st["state"] == "up" and st["rtt_us"] > 0, st)


def test_authenticated_nodes_talk(ctx):
    secret = ctx.write("secret", "correct horse battery staple 42")
    a, b, _ = pair(ctx, caller=f"secret_file = {secret}", callee=f"secret_file = {secret}",
                   callee_node="loglevel = debug")  # a link's success is logged at debug level
    check(a.eval1('return cluster.call("n2", "@probe", "echo", "authed")') == "authed", "call works")
    b.wait_log(r"node n1 authenticated")
    a.eval('cluster.send("n2", "@probe", "record", "p")')
    check(a.eval1('return cluster.call("n2", "@probe", "records")') == ["p"], "send works")


def test_wrong_secret_is_refused_and_logged(ctx):
    good = ctx.write("good", "the right secret, long enough")
    bad = ctx.write("bad", "a wrong secret, also long....")
    a, b, _ = pair(ctx, caller=f"secret_file = {bad}", callee=f"secret_file = {good}")
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "echo", 1))')
    check("call failed" in err and "authentication" in err, err)
    a.wait_log(r"authentication failed")
    check(b.eval1("return skynet.call(G.p, 'lua', 'count')") == 0, "nothing executed")


def test_unauthenticated_peer_is_closed_and_nothing_runs(ctx):
    secret = ctx.write("secret", "the right secret, long enough")
    a, b, handle = pair(ctx, callee=f"secret_file = {secret}")  # the caller has no secret
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "record", "x"))')
    check("call failed" in err, err)
    b.wait_log(r"request before authentication; closing")
    # a raw client that skips the handshake: its push is not executed
    s = socket.create_connection(("127.0.0.1", a.port2))
    payload = bytes.fromhex("3472656364") + bytes.fromhex("0c79")  # pack("recd"...) anything
    body = b"\x00" + struct.pack("<II", handle, 0) + payload
    s.sendall(struct.pack(">H", len(body)) + body)
    s.settimeout(5)
    check(s.recv(10) == b"", "closed")
    s.close()
    check(b.eval1("return skynet.call(G.p, 'lua', 'count')") == 0, "nothing executed")


def test_replayed_handshake_fails(ctx):
    secret = ctx.write("secret", "the right secret, long enough")
    a, b, handle = pair(ctx, caller=f"secret_file = {secret}", callee=f"secret_file = {secret}")
    # record a real handshake through a relay, then replay the client's bytes on a new link
    relay_port = free_port()
    a.eval('cluster.reload { relay = "127.0.0.1:%d" }' % relay_port)
    import threading
    captured = []
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", relay_port))
    lsock.listen(1)

    def relay():
        c, _ = lsock.accept()
        u = socket.create_connection(("127.0.0.1", a.port2))
        c.settimeout(3)
        u.settimeout(3)
        try:
            for _ in range(2):  # AUTH1 and AUTH2 frames, each answered
                data = c.recv(65536)
                captured.append(data)
                u.sendall(data)
                c.sendall(u.recv(65536))
            data = c.recv(65536)  # the real request
            captured.append(data)
            u.sendall(data)
            c.sendall(u.recv(65536))
        except OSError:
            pass
        c.close()
        u.close()

    t = threading.Thread(target=relay)
    t.start()
    check(a.eval1('return cluster.call("relay", "@probe", "echo", "relayed")') == "relayed", "relayed")
    t.join(5)
    lsock.close()
    check(len(captured) >= 3, f"captured {len(captured)} client writes")
    # replay the client's handshake and request on a fresh connection
    s = socket.create_connection(("127.0.0.1", a.port2))
    s.settimeout(5)
    s.sendall(captured[0])
    s.recv(65536)  # the server answers AUTH1 with a fresh nonce
    s.sendall(captured[1])  # the old proof does not match the new nonce
    try:
        data = s.recv(65536)
        while data:
            data = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    b.wait_log(r"authentication failed \(wrong proof")


def test_plain_peers_may_skip_authentication(ctx):
    secret = ctx.write("secret", "the right secret, long enough")
    # n1 has no secret (a stock Skynet node, say); n2 lists it as a plain peer
    a, b, _ = pair(ctx, callee=f"secret_file = {secret}\nplain_peers = n1")
    check(a.eval1('return cluster.call("n2", "@probe", "echo", "plain")') == "plain", "allowed")


def test_default_exposure_serves_skynet_usage_and_hides_internal_services(ctx):
    # a fresh config: Skynet's documented usage works (.name, proxy of .name, handles, @names)
    a, b, handle = pair(ctx)
    check(a.eval1('return cluster.call("n2", ".probe", "echo", "dot")') == "dot", ".name")
    r = a.eval('local p = cluster.proxy("n2", ".probe") return skynet.call(p, "lua", "echo", "px"), '
               'skynet.call(cluster.proxy("n2.probe"), "lua", "echo", "py")')
    check(r == ["px", "py"], r)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "@name")
    check(a.eval1(f'return cluster.call("n2", {handle}, "echo", 2)') == 2, "handle of a user service")
    check(a.eval1(f'return cluster.call("n2", ":{handle:08x}", "echo", 3)') == 3, ":hex")
    # a bare name (skynet.register "NAME", as Skynet's examples/simpledb.lua does) is served too
    b.eval1(f'require "skynet.manager" skynet.name("PROBE", {handle}) return true')
    check(a.eval1('return cluster.call("n2", "PROBE", "echo", 4)') == 4, "bare NAME")
    # node-internal services stay out of reach by name and by handle
    launcher = b.eval1('return skynet.localname(".launcher")')
    clusterd = b.eval1('return skynet.localname(".clusterd")')
    for target in (launcher, clusterd, '".launcher"', '".clusterd"', '".service"'):
        err = a.eval1(f'return select(2, pcall(cluster.call, "n2", {target}, "LIST"))')
        check("call failed" in err and "not exposed" in err and "node-internal" in err, err)
    err = a.eval1('return select(2, pcall(skynet.call, cluster.proxy("n2", ".launcher"), "lua", "LIST"))')
    check("not exposed" in err, err)
    err = a.eval1('return select(2, pcall(cluster.call, "n2", ".nosuch", "echo", 1))')
    check("call failed" in err and "Invalid name .nosuch" in err, err)


def test_expose_registered_hides_local_names(ctx):
    a, b, handle = pair(ctx, callee="expose = registered")
    err = a.eval1('return select(2, pcall(cluster.call, "n2", ".probe", "echo", 1))')
    check("not exposed" in err and "node-local name" in err, err)
    b.eval1(f'require "skynet.manager" skynet.name("PROBE", {handle}) return true')
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "PROBE", "echo", 1))')
    check("not exposed" in err and "node-local name" in err, err)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "@name")
    check(a.eval1(f'return cluster.call("n2", {handle}, "echo", 2)') == 2, "handle of a user service")
    launcher = b.eval1('return skynet.localname(".launcher")')
    err = a.eval1(f'return select(2, pcall(cluster.call, "n2", {launcher}, "LIST"))')
    check("not exposed" in err, err)


def test_expose_names_allows_only_registered_names(ctx):
    a, b, handle = pair(ctx, callee="expose = names")
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "@name")
    err = a.eval1(f'return select(2, pcall(cluster.call, "n2", {handle}, "echo", 2))')
    check("not exposed" in err, err)


def test_expose_all_is_skynet_behaviour(ctx):
    a, b, handle = pair(ctx, callee="expose = all")
    check(isinstance(a.eval1('return cluster.call("n2", ".launcher", "LIST")'), dict), "launcher callable")


def frame(body):
    return struct.pack(">H", len(body)) + body


def header(handle, session, total):
    return frame(b"\x01" + struct.pack("<III", handle, session, total))


def part(session, data, last):
    return frame((b"\x03" if last else b"\x02") + struct.pack("<I", session) + data)


def read_replies(s, n, timeout=5):
    s.settimeout(timeout)
    out, buf = [], b""
    while len(out) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            n_ = struct.unpack(">H", buf[:2])[0]
            out.append(buf[2:2 + n_])
            buf = buf[2 + n_:]
    return out


def test_cap_max_message_rejects_a_large_declared_total(ctx):
    a, b, handle = pair(ctx, callee="max_message = 100K")
    r = a.eval('local ok, e = pcall(cluster.call, "n2", "@probe", "echo", string.rep("x", 200000)) '
               'return ok, ok and #e or e')
    check(r[0] is False and "call failed" in r[1], r)
    b.wait_log(r"exceeds max_message")
    n = a.eval1('return #cluster.call("n2", "@probe", "echo", string.rep("y", 50000))')
    check(n == 50000, f"a message under the cap still works ({n})")


def test_cap_max_assemblies_per_link(ctx):
    a, b, handle = pair(ctx, callee="max_assemblies = 3")
    s = socket.create_connection(("127.0.0.1", a.port2))
    s.sendall(b"".join(header(handle, i, 40000) for i in range(1, 5)))
    replies = read_replies(s, 1)
    check(replies and replies[0][:4] == struct.pack("<I", 4) and replies[0][4] == 0 and
          b"max_assemblies" in replies[0], replies)
    b.wait_log(r"cap max_assemblies \(3\) reached")
    s.close()
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "other links untouched")


def test_cap_assembly_timeout(ctx):
    a, b, handle = pair(ctx, callee="assembly_timeout = 300")
    s = socket.create_connection(("127.0.0.1", a.port2))
    s.sendall(header(handle, 9, 40000) + part(9, b"x" * 100, False))
    replies = read_replies(s, 1, timeout=5)
    check(replies and replies[0][:4] == struct.pack("<I", 9) and b"assembly_timeout" in replies[0], replies)
    b.wait_log(r"cap assembly_timeout \(300 ms\)")
    s.close()


def test_cap_max_pending_per_link(ctx):
    a, b, _ = pair(ctx, callee="max_pending = 5")
    r = a.eval("""
        local ok, err = 0, 0
        local done = 0
        for i = 1, 8 do
            skynet.fork(function()
                local good, e = pcall(cluster.call, "n2", "@probe", "sleep", 50)
                if good then ok = ok + 1 else err = err + 1; G.pending_err = e end
                done = done + 1
            end)
        end
        while done < 8 do skynet.sleep(5) end
        return ok, err, G.pending_err
    """)
    check(r[0] == 5 and r[1] == 3 and "max_pending" in r[2], r)
    b.wait_log(r"cap max_pending \(5\) reached")


def test_cap_maxclient_counts_live_links_and_refuses_beyond_them(ctx):
    a, b, _ = pair(ctx, callee="maxclient = 2")
    links = []
    for i in range(2):  # two established links: each sent a frame and got its answer
        s = socket.create_connection(("127.0.0.1", a.port2))
        s.sendall(frame(b"\x00" + struct.pack("<II", 0, 1) + b"junk"))
        check(read_replies(s, 1), "answered")
        links.append(s)
    extra = socket.create_connection(("127.0.0.1", a.port2))
    extra.settimeout(5)
    check(extra.recv(10) == b"", "the third link is closed at once")
    extra.close()
    b.wait_log(r"cluster listener 127\.0\.0\.1:\d+: 1 connection\(s\) refused at maxclient 2")
    links.pop().close()  # the slot comes back as soon as the socket closes
    wait_for(lambda: b.eval1(LIVE) == 1, what="the closed link's slot back")
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "a slot came back")
    links.pop().close()
