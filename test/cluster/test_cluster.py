"""The cluster between real skyjet processes on 127.0.0.1: calls, sends, proxies, names, large
messages, ordering, errors, __nowaiting, reload (table and SIGHUP), a callee killed mid-traffic,
and hostile input on the cluster port."""
import os
import signal
import socket
import struct
import time

from lib import check, free_port

SETUP_CALLEE = """
G.p = skynet.newservice("probe")
cluster.register("probe", G.p)
skynet.name(".probe", G.p)
return G.p
"""


def pair(ctx, extra="", callee_cluster=""):
    p1, p2 = free_port(), free_port()
    cf = ctx.cluster_file({"n1": p1, "n2": p2}, extra)
    a = ctx.ctl_node("n1", cf)
    b = ctx.ctl_node("n2", cf, cluster=callee_cluster)
    handle = b.eval1(SETUP_CALLEE)
    b.eval('cluster.open("n2")')
    a.port2 = p2
    return a, b, handle


def test_call_send_query_and_address_forms(ctx):
    a, b, handle = pair(ctx, callee_cluster="expose = all")
    check(a.eval('return cluster.call("n2", "@probe", "echo", "hi", 42, {x = 1})') ==
          ["hi", 42, {"x": 1}], "call by @name")
    check(a.eval1('return cluster.query("n2", "probe")') == handle, "query gives the handle")
    check(a.eval1(f'return cluster.call("n2", {handle}, "echo", "numeric")') == "numeric", "numeric")
    check(a.eval1('return cluster.call("n2", ".probe", "echo", "dot")') == "dot", ".name")
    check(a.eval1(f'return cluster.call("n2", ":{handle:08x}", "echo", "hex")') == "hex", ":hex")
    check(a.eval('return cluster.call("n2", "@probe", "echo")') == [], "empty reply: no values")
    a.eval('cluster.send("n2", "@probe", "record", "pushed")')
    check(a.eval1('return cluster.call("n2", "@probe", "records")') == ["pushed"], "send arrived")
    err = a.eval1('return select(2, pcall(cluster.query, "n2", "nosuch"))')
    check("call failed" in err and "name not found" in err, err)
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@nosuch", "echo", 1))')
    check("call failed" in err and "Invalid name" in err, err)
    err = a.eval1('return select(2, pcall(cluster.call, "n2", 0x777777, "echo", 1))')
    check("call failed" in err and "invalid address" in err, err)
    check(a.eval1('return cluster.get_sender("n2") == cluster.get_sender("n2")'), "sender cached")


def test_proxy_in_all_three_forms(ctx):
    a, b, handle = pair(ctx, callee_cluster="expose = all")
    r = a.eval("""
        local p1 = cluster.proxy("n2", "@probe")
        local p2 = cluster.proxy("n2@probe")
        local p3 = cluster.proxy("n2.probe")
        local p4 = cluster.proxy("n2", %d)
        skynet.send(p1, "lua", "record", "via proxy send")
        return p1 == p2, p3 ~= p1, skynet.call(p1, "lua", "echo", "a"), skynet.call(p3, "lua", "echo", "b"),
            skynet.call(p4, "lua", "echo", "c"), cluster.call("n2", "@probe", "records")
    """ % handle)
    check(r == [True, True, "a", "b", "c", ["via proxy send"]], r)
    err = a.eval1('return select(2, pcall(cluster.proxy, "nodot"))')
    check("call failed" in err, err)


def test_register_unregister_and_duplicates(ctx):
    a, b, handle = pair(ctx)
    err = b.eval1('return select(2, pcall(cluster.register, "probe", G.p))')
    check("call failed" in err and "already registered" in err, err)
    b.eval('G.q = skynet.newservice("probe"); cluster.register("other", G.q)')
    check(a.eval1('return cluster.call("n2", "@other", "echo", 1)') == 1, "second name")
    b.eval('cluster.unregister("other")')
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@other", "echo", 1))')
    check("Invalid name" in err, "unregistered name fails: " + err)
    b.eval('cluster.register("other", G.q)')
    check(a.eval1('return cluster.call("n2", "@other", "echo", 2)') == 2, "registered again")
    # a handle registered under a new name loses its old name
    b.eval('cluster.register("renamed", G.q)')
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@other", "echo", 1))')
    check("Invalid name" in err, err)
    check(a.eval1('return cluster.call("n2", "@renamed", "echo", 3)') == 3, "renamed")
    b.wait_log(r"Register \[renamed\]")


def test_large_requests_and_replies_around_the_split_threshold(ctx):
    a, b, _ = pair(ctx)
    # request payload = pack("echo", s) = 5 + 3 + n (n < 65536); reply = pack(s) = 3 + n
    sizes = list(range(32756, 32772)) + [65530, 65536, 70000, 1024 * 1024, 3 * 1024 * 1024 + 7]
    bad = a.eval1("""
        local bad = {}
        for _, n in ipairs(%s) do
            local s = string.rep("x", n - 1) .. string.char(n %% 256)
            local r = cluster.call("n2", "@probe", "echo", s)
            if r ~= s then bad[#bad + 1] = n end
        end
        return bad
    """ % ("{" + ",".join(map(str, sizes)) + "}"), timeout=120)
    check(bad == [], f"sizes that did not round-trip: {bad}")
    # a large push arrives too (its parts go out at low priority, so a later call may overtake
    # it: wait for it rather than expecting it before the next call)
    a.eval('cluster.send("n2", "@probe", "record", string.rep("p", 100000))')
    deadline = time.time() + 10
    while time.time() < deadline and not a.eval1('return cluster.call("n2", "@probe", "count") == 1'):
        time.sleep(0.05)
    check(a.eval1('return #cluster.call("n2", "@probe", "records")[1]') == 100000, "large push")


def test_ten_thousand_pushes_then_a_call_arrive_in_order(ctx):
    a, b, _ = pair(ctx)
    r = a.eval("""
        for i = 1, 10000 do cluster.send("n2", "@probe", "record", i) end
        local got = cluster.call("n2", "@probe", "records")
        for i = 1, 10000 do
            if got[i] ~= i then return false, i, got[i] end
        end
        return #got
    """, timeout=120)
    check(r == [10000], f"pushes out of order or lost: {r}")


def test_remote_error_reaches_the_caller_with_its_message(ctx):
    a, b, _ = pair(ctx)
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "fail", "remote boom"))')
    check("call failed" in err and "remote boom" in err, err)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", "after")') == "after", "still up")
    # an undecodable argument never leaves the caller: pack raises locally
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "echo", function() end))')
    check("Unsupport type function" in err, err)


def test_nowaiting_unset_waits_for_the_node(ctx):
    a, b, _ = pair(ctx)
    a.eval('skynet.fork(function() G.ghost = table.pack(pcall(cluster.call, "n3", "@probe", "echo", "late")) end)')
    time.sleep(0.5)
    check(a.eval1("return G.ghost") is None, "call waits for n3 to be defined")
    a.eval('cluster.reload { n3 = "127.0.0.1:%d" }' % a.port2)
    deadline = time.time() + 5
    while time.time() < deadline and a.eval1("return G.ghost") is None:
        time.sleep(0.05)
    # n3 points at n2's port, so the call lands on n2's probe
    check(a.eval1("return G.ghost") == {"1": True, "2": "late", "n": 2}, a.eval1("return G.ghost"))


def test_nowaiting_true_fails_at_once(ctx):
    a, b, _ = pair(ctx, extra="__nowaiting = true\n")
    t0 = time.time()
    err = a.eval1('return select(2, pcall(cluster.call, "ghost", "@probe", "echo", 1))')
    check("call failed" in err and "absent" in err, err)
    check(time.time() - t0 < 2, "failed at once")
    a.eval('cluster.send("ghost", "@probe", "record", 1)')  # dropped, logged
    a.wait_log(r"cluster.send to ghost dropped 1 message")


def test_node_false_fails_calls_at_once(ctx):
    a, b, _ = pair(ctx)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "up")
    a.eval('cluster.reload { n2 = false }')
    t0 = time.time()
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "echo", 1))')
    check("call failed" in err and "down" in err, err)
    check(time.time() - t0 < 2, "failed at once")
    a.wait_log(r"cluster reload: n2 down")


def write_cluster(ctx, nodes, extra=""):
    return ctx.cluster_file(nodes, extra)


def test_reload_while_traffic_flows(ctx):
    ports = {name: free_port() for name in ("n1", "old", "new", "steady", "gone", "added")}
    cf = write_cluster(ctx, {"n1": ports["n1"], "moving": ports["old"], "steady": ports["steady"],
                             "gone": ports["gone"]})
    a = ctx.ctl_node("n1", cf)
    callees = {}
    for name, port in (("old", ports["old"]), ("new", ports["new"]), ("steady", ports["steady"]),
                       ("gone", ports["gone"]), ("added", ports["added"])):
        n = ctx.ctl_node(name, cf)
        n.eval(SETUP_CALLEE)
        n.eval('G.p2 = skynet.newservice("whoami", "%s"); cluster.register("who", G.p2)' % name)
        n.eval(f'cluster.open({port})')
        callees[name] = n
    # traffic: 4 callers per target node, calling "who" in a loop, counting results per answer
    a.eval("""
        G.stats = {}
        G.running = true
        for _, node in ipairs {"moving", "steady", "gone", "added"} do
            local st = { ok = 0, err = 0, who = {} }
            G.stats[node] = st
            for _ = 1, 4 do
                skynet.fork(function()
                    while G.running do
                        local ok, r = pcall(cluster.call, node, "@who", "who")
                        if ok then
                            st.ok = st.ok + 1
                            st.who[r] = (st.who[r] or 0) + 1
                        else
                            st.err = st.err + 1
                            st.last = r
                            skynet.sleep(1)
                        end
                    end
                end)
            end
        end
    """)
    time.sleep(1.0)
    stats = a.eval1("return G.stats")
    check(stats["moving"]["ok"] > 0 and stats["steady"]["ok"] > 0, stats)
    check(stats["added"]["ok"] == 0, "added is not defined yet: its calls wait")
    # reload by table: moving -> new address, gone -> false, added -> defined
    a.eval('cluster.reload { moving = "127.0.0.1:%d", gone = false, added = "127.0.0.1:%d" }'
           % (ports["new"], ports["added"]))
    a.wait_log(r"cluster reload: .*moving moved")
    time.sleep(1.0)
    before_sighup = a.eval1("return G.stats")
    check(before_sighup["moving"]["who"].get("new", 0) > 0, f"moving now answers from new: {before_sighup}")
    check(before_sighup["added"]["ok"] > 0, "added node callable")
    gone_err = before_sighup["gone"]["err"]
    check(gone_err > 0 and "down" in before_sighup["gone"]["last"], before_sighup["gone"])
    check(before_sighup["steady"]["err"] == 0, f"steady lost nothing: {before_sighup['steady']}")
    # reload by SIGHUP: move it back, bring gone back
    write_cluster(ctx, {"n1": ports["n1"], "moving": ports["old"], "steady": ports["steady"],
                        "gone": ports["gone"], "added": ports["added"]})
    mark = len(a.text())
    a.signal(signal.SIGHUP)
    a.wait_log(r"cluster reload: .*moving moved", start=mark)
    a.wait_log(r"gone up", start=mark)
    time.sleep(1.0)
    a.eval("G.running = false")
    time.sleep(0.3)
    final = a.eval1("return G.stats")
    check(final["steady"]["err"] == 0, f"steady lost nothing: {final['steady']}")
    check(final["moving"]["who"].get("old", 0) > before_sighup["moving"]["who"].get("old", 0),
          f"moving back on old: {final['moving']}")
    check(final["gone"]["ok"] > before_sighup["gone"]["ok"], f"gone is back: {final['gone']}")
    # a reload with a bad table changes nothing and says why
    err = a.eval1('return select(2, pcall(cluster.reload, { broken = 42 }))')
    check("call failed" in err and "broken" in err, err)


def test_kill9_of_callee_fails_inflight_calls_fast_and_restart_recovers(ctx):
    a, b, _ = pair(ctx)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "up")
    a.eval("""
        G.fail_at = {}
        G.results = { ok = 0, err = 0 }
        for i = 1, 1000 do
            skynet.fork(function()
                local ok = pcall(cluster.call, "n2", "@probe", "sleep", 1000)
                if ok then G.results.ok = G.results.ok + 1
                else
                    G.results.err = G.results.err + 1
                    G.fail_at[#G.fail_at + 1] = skynet.time()
                end
            end)
        end
    """)
    # wait until all 1000 are in flight at the callee
    deadline = time.time() + 15
    while time.time() < deadline:
        pending = a.eval1('local s = cluster.status() return s.n2 and s.n2.pending or 0')
        if pending >= 1000:
            break
        time.sleep(0.05)
    check(pending >= 1000, f"only {pending} in flight")
    killed_at = time.time()
    os.kill(b.pid, signal.SIGKILL)
    b.proc.wait()
    deadline = time.time() + 5
    while time.time() < deadline:
        r = a.eval1("return G.results")
        if r["ok"] + r["err"] == 1000:
            break
        time.sleep(0.05)
    r = a.eval1("return G.results")
    check(r == {"ok": 0, "err": 1000}, f"every caller got an error: {r}")
    latest = a.eval1("local m = 0 for _, t in ipairs(G.fail_at) do m = math.max(m, t) end return m")
    check(latest - killed_at < 1.0, f"last failure {latest - killed_at:.3f}s after the kill")
    # restart the callee: new calls succeed without operator action
    b2 = ctx.restart(b)
    b2.eval(SETUP_CALLEE)
    b2.eval('cluster.open("n2")')
    check(a.eval1('return cluster.call("n2", "@probe", "echo", "back")') == "back", "recovered")


def frame(body):
    return struct.pack(">H", len(body)) + body


def test_hostile_frames_close_that_link_and_others_keep_working(ctx):
    a, b, handle = pair(ctx)
    port = a.port2
    a.eval('G.calls = 0 skynet.fork(function() while not G.stop do '
           'if cluster.call("n2", "@probe", "echo", 1) == 1 then G.calls = G.calls + 1 end end end)')
    attacks = [
        frame(b"\x05garbage"),                                   # bad type byte
        frame(b"\x00\x01\x02"),                                  # truncated request
        frame(b""),                                              # empty body
        frame(b"\x01" + struct.pack("<III", handle, 7, 1 << 30)),  # 1 GiB declared total
        frame(b"\x81\x05@echo" + struct.pack("<II", 8, 0xffffffff)),  # 4 GiB named header
        b"\xff\xff" + b"\x00" * 100,                             # frame cut short, then close
    ]
    for attack in attacks:
        mark = len(b.text())
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(attack)
        s.settimeout(5)
        try:
            data = s.recv(100)  # the node closes the link (b"" on close)
        except (ConnectionResetError, socket.timeout):
            data = b""
        s.close()
        check(data == b"", f"no reply to {attack[:12]!r}: {data!r}")
        if attack is not attacks[-1]:  # a frame cut short never reaches an agent
            b.wait_log(r"cluster agent 127\.0\.0\.1:\d+: (invalid packet|connection closed)", start=mark)
    before = a.eval1("return G.calls")
    time.sleep(0.3)
    check(a.eval1("return G.calls") > before, "the good link kept serving")
    a.eval("G.stop = true")
    check(b.proc.poll() is None, "node alive")
    b.wait_log(r"exceeds max_message")


def test_trace_tag_crosses_the_wire_and_shows_in_the_callee_log(ctx):
    a, b, _ = pair(ctx)
    tag = a.eval1('skynet.trace("across") cluster.call("n2", "@probe", "echo", 1) return skynet.tracetag()')
    check(tag and tag.startswith(":"), tag)
    m = b.wait_log(r"<TRACE (\(\S+-n2-\d+\)" + tag.replace("-", r"\-") + r")> \d+ request")
    check(m, "callee node logs the request under the caller's tag")


def test_status_disconnect_and_connect(ctx):
    a, b, _ = pair(ctx)
    a.eval('cluster.call("n2", "@probe", "echo", 1)')
    st = a.eval1("return cluster.status()")
    n2 = st["n2"]
    check(n2["connected"] is True and n2["requests"] >= 1 and n2["bytes_out"] > 0 and
          n2["bytes_in"] > 0 and n2["pending"] == 0, n2)
    check(st["n1"]["connected"] is False, "no sender to ourselves")
    a.eval('skynet.call(".clusterd", "lua", "disconnect", "n2")')
    check(a.eval1("return cluster.status().n2.connected") is False, "disconnected")
    check(a.eval1('return skynet.call(".clusterd", "lua", "connect", "n2")') is True, "connect")
    check(a.eval1("return cluster.status().n2.connected") is True, "connected again")
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 2)') == 2, "works")
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "fail", "x"))')
    check("x" in err, err)
    check("x" in a.eval1("return cluster.status().n2.last_error"), "last error kept")


def test_sigterm_lets_inflight_calls_finish_then_exits_0(ctx):
    a, b, _ = pair(ctx)
    a.eval("""
        G.done = { ok = 0, err = 0 }
        for i = 1, 50 do
            skynet.fork(function()
                local ok, r = pcall(cluster.call, "n2", "@probe", "sleep", 100)
                if ok and r == "slept" then G.done.ok = G.done.ok + 1 else G.done.err = G.done.err + 1 end
            end)
        end
    """)
    # in flight = received by n2 and being handled (the probe sleeps in 50 handlers)
    deadline = time.time() + 10
    while time.time() < deadline and b.eval1('return skynet.call(G.p, "debug", "STAT").task') < 50:
        time.sleep(0.02)
    b.signal(signal.SIGTERM)
    check(b.wait_exit(15) == 0, "exit status 0")
    check(a.eval1("return G.done") == {"ok": 50, "err": 0}, a.eval1("return G.done"))
    b.wait_log(r"inbound link\(s\) draining")
    err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "echo", 1))')
    check("call failed" in err, "the stopped node refuses new calls: " + err)


def test_second_sigterm_stops_at_once(ctx):
    a, b, _ = pair(ctx)
    b.eval('cluster.open(0)')  # keep busy: a call that sleeps 30 s
    a.eval('skynet.fork(function() G.r = table.pack(pcall(cluster.call, "n2", "@probe", "sleep", 3000)) end)')
    deadline = time.time() + 10
    # the callee holds the request once its agent has taken the link over
    while time.time() < deadline and (a.eval1("return cluster.status().n2.pending or 0") < 1 or
                                      not b.eval1('return next(skynet.call(".clusterd", "lua", "agents")) ~= nil')):
        time.sleep(0.02)
    t0 = time.time()
    b.signal(signal.SIGTERM)
    time.sleep(0.3)
    check(b.proc.poll() is None, "still draining after the first SIGTERM")
    b.signal(signal.SIGTERM)
    check(b.wait_exit(5) == 0, "exit 0")
    check(time.time() - t0 < 3, "the second SIGTERM cut the wait short")
    deadline = time.time() + 5
    while time.time() < deadline and a.eval1("return G.r") is None:
        time.sleep(0.05)
    check(a.eval1("return G.r")["1"] is False, "the cut call failed instead of hanging")
