"""The cluster fast path (skynet.cluster.link, issue 14) between real nodes on 127.0.0.1: calls
and pushes the caller writes itself and replies the reactor hands straight back, the fallbacks
through the sender (before the link is up, large requests, traced callers, large and error
replies), deadlines racing replies, the server killed with calls pending, reconnect after a
restart, the heartbeat of an idle link, and the statistics. Which path a message took shows in
cluster.status(): fast_requests / fast_pushes count what callers wrote themselves."""
import os
import signal
import time

from lib import check, free_port, slow, wait_for

SETUP_CALLEE = """
G.p = skynet.newservice("probe")
cluster.register("probe", G.p)
return G.p
"""

# Calls until the link is up (the first ones go through the sender, which puts it up).
WARM = """
local function fast() return (cluster.status().n2 or {}).fast_requests or 0 end
local before = fast()
for i = 1, 20 do
    assert(cluster.call("n2", "@probe", "echo", i) == i)
    if fast() > before then return i end
end
return false
"""


def pair(ctx, caller_cluster=""):
    p1, p2 = free_port(), free_port()
    cf = ctx.cluster_file({"n1": p1, "n2": p2})
    a = ctx.ctl_node("n1", cf, cluster=caller_cluster)
    b = ctx.ctl_node("n2", cf)
    b.eval(SETUP_CALLEE)
    b.eval('cluster.open("n2")')
    return a, b


def status(a):
    return a.eval1("return cluster.status().n2")


def test_calls_take_the_fast_path_and_fall_back_where_they_must(ctx):
    a, b = pair(ctx)
    first = status(a)
    check(first is None or first.get("requests", 0) == 0, first)
    check(a.eval1(WARM) is not False, "the link comes up after the first calls")
    s0 = status(a)
    r = a.eval("""
        for i = 1, 200 do assert(cluster.call("n2", "@probe", "echo", i, "x") == i) end
        return cluster.status().n2
    """)[0]
    check(r["fast_requests"] - s0["fast_requests"] == 200, (s0, r))
    check(r["requests"] - s0["requests"] == 200 and r["latency"]["count"] == r["requests"],
          "fast calls are counted in requests and latency: %r" % r)
    check(r["bytes_in"] > s0["bytes_in"] and r["bytes_out"] > s0["bytes_out"], r)
    # a large request goes through the sender
    big = a.eval1('local s = string.rep("q", 40000) return #cluster.call("n2", "@probe", "echo", s)')
    check(big == 40000, big)
    s1 = status(a)
    check(s1["fast_requests"] == r["fast_requests"] and s1["requests"] == r["requests"] + 1, s1)
    # a small request whose reply is large: written by the caller, finished by the sender
    a.eval('cluster.send("n2", "@probe", "record", string.rep("r", 100000))')
    wait_for(lambda: a.eval1('return cluster.call("n2", "@probe", "count")') == 1, what="push")
    s2 = status(a)
    got = a.eval1('return #cluster.call("n2", "@probe", "records")[1]')
    check(got == 100000, got)
    check(status(a)["fast_requests"] == s2["fast_requests"] + 1, "large reply on the fast path")
    # an error reply: the same text on both paths (a traced caller goes through the sender)
    fast_err = a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "fail", "boom"))')
    s3 = status(a)
    slow_err = a.eval1('skynet.trace("t") return select(2, pcall(cluster.call, "n2", "@probe", "fail", "boom"))',
                       conn="traced")  # a connection's evals share a coroutine, and its trace tag
    check("call failed" in fast_err and "cluster n2 @probe" in fast_err and "boom" in fast_err,
          fast_err)
    check(fast_err == slow_err, (fast_err, slow_err))
    s4 = status(a)
    check(s4["fast_requests"] == s3["fast_requests"] and s4["requests"] == s3["requests"] + 1,
          "a traced call goes through the sender: %r" % s4)
    check(s4["errors"].get("remote", 0) >= 2 and s4["pending"] == 0, s4)
    # and everything after still takes the fast path
    check(a.eval1('return cluster.call("n2", "@probe", "echo", "after")') == "after", "after")
    check(status(a)["fast_requests"] == s4["fast_requests"] + 1, "fast again")


def test_pushes_take_the_fast_path_and_keep_their_order(ctx):
    a, b = pair(ctx)
    # pushes sent before the link is up go through the sender; the later ones, written by the
    # caller itself, must not overtake them
    r = a.eval("""
        for i = 1, 300 do
            cluster.send("n2", "@probe", "record", i)
            if i % 50 == 0 then cluster.call("n2", "@probe", "count") end
        end
        local got = cluster.call("n2", "@probe", "records")
        for i = 1, 300 do
            if got[i] ~= i then return false, i, got[i] end
        end
        local s = cluster.status().n2
        return #got, s.pushes, s.fast_pushes
    """, timeout=60)
    check(r[0] == 300 and r[1] == 300, r)
    check(r[2] > 0, "some pushes were written by the caller: %r" % r)


def test_deadlines_racing_replies_answer_each_call_once(ctx):
    a, b = pair(ctx)
    check(a.eval1(WARM) is not False, "link up")
    r = a.eval("""
        local st = { ok = 0, timeout = 0, other = 0, done = 0 }
        local n = 400
        for i = 1, n do
            skynet.fork(function()
                -- answered after 2..6 ticks, deadline 20..60 ms: replies and deadlines race
                local ok, v = pcall(cluster.call_timeout, 20 + (i % 5) * 10, "n2", "@probe",
                    "later", 2 + (i % 5), i)
                if ok and v == i then st.ok = st.ok + 1
                elseif not ok and tostring(v):find("timeout after", 1, true) then
                    st.timeout = st.timeout + 1
                else st.other = st.other + 1; st.last = tostring(v) end
                st.done = st.done + 1
            end)
        end
        local t0 = skynet.now()
        while st.done < n and skynet.now() - t0 < 3000 do skynet.sleep(5) end
        skynet.sleep(20) -- late replies arrive and are dropped
        local s = cluster.status().n2
        return st, s.pending, s.fast_requests
    """, timeout=60)
    st, pending, fast = r
    check(st["done"] == 400 and st["ok"] + st["timeout"] == 400 and st["other"] == 0, st)
    check(pending == 0, f"{pending} calls left in the link")
    check(fast >= 400, fast)
    # a timeout's text names node, address and deadline, as through the sender
    err = a.eval1('return select(2, pcall(cluster.call_timeout, 30, "n2", "@probe", "sleep", 100))')
    check("call failed" in err and "cluster n2 @probe" in err and "timeout after 30 ms" in err, err)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", "still")') == "still", "still up")
    check("unknown session" not in a.text(), "late replies are dropped quietly")


def start_sleeping_calls(a, n):
    """n coroutines on node a each call n2's probe to sleep 3 s; G.res counts ok/err (last error
    text in G.res.last). Returns once all n are pending in the sender's link."""
    a.eval("""
        G.res = { ok = 0, err = 0 }
        for i = 1, %d do
            skynet.fork(function()
                local ok, e = pcall(cluster.call, "n2", "@probe", "sleep", 3000)
                if ok then G.res.ok = G.res.ok + 1
                else G.res.err = G.res.err + 1; G.res.last = tostring(e) end
            end)
        end
    """ % n)
    wait_for(lambda: status(a)["pending"] >= n, what=f"{n} calls in flight")


def test_server_killed_with_calls_pending_then_restarted(ctx):
    a, b = pair(ctx)
    check(a.eval1(WARM) is not False, "link up")
    start_sleeping_calls(a, 200)
    check(status(a)["fast_requests"] >= 200, "they were written by the caller")
    os.kill(b.pid, signal.SIGKILL)
    b.proc.wait()
    wait_for(lambda: a.eval1("return G.res.err") == 200, timeout=5 * slow(ctx),
             what="every pending call fails promptly")
    res = a.eval1("return G.res")
    check(res["ok"] == 0 and "connection" in res["last"] and "cluster n2 @probe" in res["last"],
          res)
    check(status(a)["pending"] == 0, "nothing left in the link")
    b2 = ctx.restart(b)
    b2.eval(SETUP_CALLEE)
    b2.eval('cluster.open("n2")')
    before = status(a)["fast_requests"]
    wait_for(lambda: a.eval1('return select(2, pcall(cluster.call, "n2", "@probe", "echo", 7))') == 7,
             what="calls work again")
    check(a.eval1(WARM) is not False, "the link comes up again")
    check(status(a)["fast_requests"] > before, "fast again after the restart")
    check(status(a)["pending"] == 0, "nothing left")


def test_idle_link_keeps_its_heartbeat_and_stats(ctx):
    a, b = pair(ctx, caller_cluster="heartbeat = 200\nheartbeat_timeout = 1000")
    check(a.eval1(WARM) is not False, "link up")
    a.eval('for i = 1, 50 do cluster.call("n2", "@probe", "echo", i) end')
    s0 = status(a)
    time.sleep(1.0)  # idle: the heartbeat probes the link through the sender
    s1 = status(a)
    check(s1["state"] == "up" and s1["connected"] is True, s1)
    check(s1["rtt_us"] is not None and s1["bytes_in"] > s0["bytes_in"], "heartbeat answered: %r" % s1)
    check("is down" not in a.text(), "never declared down")
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "works after idling")
    s2 = status(a)
    check(s2["fast_requests"] == s1["fast_requests"] + 1, "still on the fast path")
    bounds = s2["latency"]["bounds"]
    check(sum(s2["latency"]["buckets"]) == s2["latency"]["count"] and
          len(s2["latency"]["buckets"]) == len(bounds) + 1, s2["latency"])


def test_sender_killed_with_calls_pending_answers_each_caller(ctx):
    a, b = pair(ctx)
    check(a.eval1(WARM) is not False, "link up")
    start_sleeping_calls(a, 50)
    a.eval('require "skynet.manager" skynet.kill(cluster.get_sender("n2"))')
    wait_for(lambda: a.eval1("return G.res.err") == 50, timeout=5 * slow(ctx),
             what="every pending call fails")
    res = a.eval1("return G.res")
    check(res["ok"] == 0 and "cluster n2" in res["last"] and "sender exited" in res["last"], res)
    check("Unknown session" not in a.text() and "unknown session" not in a.text(),
          "no caller was answered twice")


def test_proxy_calls_and_sends_take_the_fast_path(ctx):
    a, b = pair(ctx)
    r = a.eval("""
        local p = cluster.proxy("n2", "@probe")
        for i = 1, 5 do assert(skynet.call(p, "lua", "echo", i) == i) end -- the link comes up
        local before = cluster.status().n2.fast_requests
        for i = 1, 100 do assert(skynet.call(p, "lua", "echo", i, "y") == i) end
        for i = 1, 100 do skynet.send(p, "lua", "record", i) end
        local got = skynet.call(p, "lua", "records")
        local s = cluster.status().n2
        for i = 1, 100 do
            if got[i] ~= i then return false, i end
        end
        local err = select(2, pcall(skynet.call, p, "lua", "fail", "pboom"))
        return s.fast_requests - before, s.fast_pushes, #got, err, cluster.status().n2.pending
    """)
    check(r[0] >= 100 and r[1] >= 90 and r[2] == 100, r)
    check("call failed" in r[3] and "cluster n2 @probe" in r[3] and "pboom" in r[3], r[3])
    check(r[4] == 0, r)
