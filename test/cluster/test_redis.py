"""skynet.db.redis against a real redis-server (started per test on a free port), and against a
scripted fake server for bad input: every call either answers or raises, nothing hangs."""
import time

from lib import check, wait_for
from servers import fake_server, redis_server

PRELUDE = 'local redis = require "skynet.db.redis"\n'


def setup(ctx, password=None):
    r = redis_server(ctx.tmp, password=password).start()
    ctx.nodes.append(r)
    n = ctx.ctl_node("rdb")
    return r, n


def ev(node, code, **kw):
    return node.eval(PRELUDE + code, **kw)


def raises(node, code, pattern):
    return node.eval_raises(PRELUDE + code, pattern)


def connect(port, extra=""):
    return f'G.db = redis.connect {{ host = "127.0.0.1", port = {port}{extra} }}\n'


def test_reply_types(ctx):
    r, n = setup(ctx)
    got = ev(n, connect(r.port) + r"""
        local db = G.db
        local bin = "a\r\nb\0c$3\r\n"
        return db:set("k", "v"), db:get("k"), db:get("missing"), db:incr("n"), db:incrby("n", 41),
            db:set("bin", bin), db:get("bin") == bin, db:ping(), db:exists("k"), db:exists("nope"),
            db:sadd("s", "m"), db:sismember("s", "m"), db:sismember("s", "x"),
            db:rpush({ "l", 1, 2, 3 }), db:lrange("l", 0, -1), db:mget("k", "missing", "n"),
            db:del("k", "n", "missing")
    """)
    check(got == ["OK", "v", None, 1, 42, "OK", True, "PONG", True, False, 1, True, False, 3,
                  ["1", "2", "3"], {"1": "v", "3": "42"}, 2], got)
    # error reply: raised with Redis's message; the connection stays usable
    raises(n, 'G.db:set("str", "x"); return G.db:incr("str")', "ERR value is not an integer")
    raises(n, 'return G.db:nosuchcommand("x")', "ERR unknown command")
    # a nil multi-bulk (BLPOP timing out) and a multi-bulk holding an error (EXEC)
    got = ev(n, r"""
        local db = G.db
        local a = db:blpop("empty", 0.05)
        db:multi(); db:set("t", "x"); db:incr("t")
        local ok, err = pcall(db.exec, db)
        return a == nil, ok, type(err), err[1], err[2]
    """)
    check(got[:4] == [True, False, "table", "OK"] and "not an integer" in got[4], got)
    ev(n, "G.db:disconnect()")
    raises(n, 'return G.db:get("k")', "")  # a disconnected object has no methods left


def test_pipeline(ctx):
    r, n = setup(ctx)
    got = ev(n, connect(r.port) + """
        local db = G.db
        local resp = {}
        local same = db:pipeline({
            { "set", "p1", "one" }, { "incr", "p1" }, { "get", "p1" }, { "lrange", "none", 0, -1 },
        }, resp) == resp
        local last = db:pipeline { { "set", "p2", 10 }, { "incrby", "p2", 5 } }
        return same, resp, last
    """)
    check(got[0] is True and got[2] == 15, got)
    resp = got[1]
    check(resp[0] == {"ok": True, "out": "OK"} and resp[1]["ok"] is False
          and "not an integer" in resp[1]["out"] and resp[2] == {"ok": True, "out": "one"}
          and resp[3] == {"ok": True, "out": []}, resp)
    # without resp the last reply decides: an error is raised
    raises(n, 'return G.db:pipeline { { "get", "p1" }, { "incr", "p1" } }', "not an integer")
    raises(n, "return G.db:pipeline {}", "pipeline is null")


def test_watch_subscribe_psubscribe_unsubscribe(ctx):
    r, n = setup(ctx)
    ev(n, f"""
        G.w = redis.watch {{ host = "127.0.0.1", port = {r.port} }}
        G.db = redis.connect {{ host = "127.0.0.1", port = {r.port} }}
        G.w:subscribe("news", "sport")
        G.w:psubscribe("log.*")
        G.got = {{}}
        skynet.fork(function()
            while true do
                local ok, a, b, c = pcall(G.w.message, G.w)
                if not ok then G.got[#G.got + 1] = {{ "error", tostring(a) }} break end
                G.got[#G.got + 1] = {{ a, b, c }}
            end
        end)
    """)

    def publish_until_heard(channel, data, count):
        # subscriptions are confirmed asynchronously: publish until the subscriber counts
        def heard():
            ev(n, f'G.db:publish("{channel}", "{data}")')
            time.sleep(0.05)
            return ev(n, "return #G.got")[0] >= count
        wait_for(heard, 10, f"message on {channel}")

    publish_until_heard("news", "n1", 1)
    ev(n, 'G.db:publish("sport", "s1"); G.db:publish("log.x", "l1")')
    last = ["l1", "log.x", "log.*"]
    got = wait_for(lambda: (lambda g: g if g[-1] == last else None)(ev(n, "return G.got")[0]))
    check(got[0] == ["n1", "news"], got)
    check(got[-2] == ["s1", "sport"], got)
    # unsubscribe: "news" is no longer delivered, "sport" still is
    ev(n, 'G.w:unsubscribe("news"); G.w:punsubscribe("log.*")')
    wait_for(lambda: ev(n, 'return G.db:publish("news", "gone")')[0] == 0, 10, "news unsubscribed")
    base = ev(n, "return #G.got")[0]
    ev(n, 'G.db:publish("log.y", "gone"); G.db:publish("sport", "s2")')
    got = wait_for(lambda: (lambda g: g if len(g) > base else None)(ev(n, "return G.got")[0]))
    check(got[base:] == [["s2", "sport"]], got)
    # the watch follows a server restart: its subscriptions are replayed on reconnect
    r.restart()
    got = wait_for(lambda: (lambda g: g if g and g[-1][0] == "error" else None)(
        ev(n, "return G.got")[0]), 10, "message() fails when the server goes")
    ev(n, """
        skynet.fork(function()
            local ok, a, b = pcall(G.w.message, G.w)
            G.after = { ok, a, b }
        end)
    """)
    wait_for(lambda: ev(n, 'local ok, v = pcall(G.db.publish, G.db, "sport", "s3") '
                           'return ok and v > 0')[0], 15, "subscription replayed")
    after = wait_for(lambda: ev(n, "return G.after")[0], 10, "message after restart")
    check(after == [True, "s3", "sport"], after)
    ev(n, "G.w:disconnect()")


def test_auth_db_select_and_wrong_password(ctx):
    r, n = setup(ctx, password="s3cret")
    got = ev(n, connect(r.port, ', auth = "s3cret", db = 3') + """
        G.db:set("where", "db3")
        return G.db:get("where")
    """)
    check(got == ["db3"], got)
    check(r.cli("-n", "3", "get", "where").strip() == "db3", "the value is in db 3")
    check(r.cli("-n", "0", "get", "where").strip() == "", "and not in db 0")
    # Redis 6 ACL users: AUTH <username> <password>
    r.cli("ACL", "SETUSER", "alice", "on", ">apw", "~*", "+@all")
    got = ev(n, connect(r.port, ', username = "alice", auth = "apw"') + "return G.db:acl('whoami')")
    check(got == ["alice"], got)
    # wrong password: connect raises, the log says why, the node carries on
    raises(n, connect(r.port, ', auth = "wrong"'), "Error: socket")
    n.wait_log(r"auth failed.*(WRONGPASS|invalid)")
    # no auth at all: the connection opens, commands get Redis's NOAUTH error
    got = ev(n, connect(r.port) + 'local ok, e = pcall(G.db.get, G.db, "where") return ok, e')
    check(got[0] is False and "NOAUTH" in got[1], got)


def test_reconnect_after_server_restart(ctx):
    r, n = setup(ctx)
    ev(n, connect(r.port) + """
        G.db:set("before", "1")
        G.inflight = nil
        skynet.fork(function()
            local ok, err = pcall(G.db.blpop, G.db, "never", 0)
            G.inflight = { ok, tostring(err) }
        end)
    """)
    time.sleep(0.2)
    r.restart()
    got = wait_for(lambda: ev(n, "return G.inflight")[0], 10, "the in-flight call to fail")
    check(got[0] is False and "socket" in got[1], got)
    got = ev(n, 'return G.db:set("after", "2"), G.db:get("after"), G.db:get("before")')
    check(got == ["OK", "2", None], got)  # a fresh server (no persistence): "before" is gone
    # server down: calls fail fast with an error; once it is back they work again
    r.stop()
    raises(n, 'return G.db:get("after")', "socket")
    r.start()
    check(ev(n, 'return G.db:ping()') == ["PONG"], "works again")


def test_bad_server_input(ctx):
    n = ctx.ctl_node("rdb")

    def truncated(conn):
        conn.recv(4096)
        conn.sendall(b"$10\r\nabc")  # 10 bytes announced, 3 sent, then close

    def garbage(conn):
        conn.recv(4096)
        conn.sendall(b"?what is this\r\n")
        conn.recv(4096)

    def bad_number(conn):
        conn.recv(4096)
        conn.sendall(b":12x\r\n")
        conn.recv(4096)

    def mid_array(conn):
        conn.recv(4096)
        conn.sendall(b"*3\r\n$1\r\na\r\n")  # one element of three, then close

    def bad_bulk_end(conn):
        conn.recv(4096)
        conn.sendall(b"$2\r\nabXY")
        conn.recv(4096)

    cases = [(truncated, "socket"), (garbage, "bad reply (type)"),
             (bad_number, "bad reply (integer)"), (mid_array, "socket"),
             (bad_bulk_end, "bad reply (bulk end)")]
    for handler, message in cases:
        with fake_server(handler) as fake:
            err = raises(n, connect(fake.port) + 'return G.db:get("k")', message)
            check("bad reply" not in message or "redis: bad reply" in err, err)
    # the node is fine and a call that never gets an answer fails when the peer goes away
    silent_done = []

    def silent(conn):
        conn.recv(4096)
        wait_for(lambda: silent_done, 10, "test to release the server")

    with fake_server(silent) as fake:
        ev(n, connect(fake.port) + """
            skynet.fork(function()
                local ok, err = pcall(G.db.get, G.db, "k")
                G.silent = { ok, tostring(err) }
            end)
        """)
        time.sleep(0.2)
        check(ev(n, "return G.silent") == [None], "still waiting")
        silent_done.append(True)
        got = wait_for(lambda: ev(n, "return G.silent")[0], 10, "the waiting call to fail")
        check(got[0] is False and "socket" in got[1], got)
