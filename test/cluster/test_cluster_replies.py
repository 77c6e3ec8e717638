"""Remote calls served from C (skynet.cluster.reply): the callee's RESPONSE or ERROR goes to
the wire from the thread that sends it, and plain calls to an @name the agent resolved before are
sent to the callee from the reactor thread, so the link's clusteragent wakes for neither. Traced
requests still take the agent's Lua path, so the two are compared byte for byte on a raw
connection; then the agent's sleep, frame order across the C and Lua paths, @names that change
or die, callees that exit or are killed with calls pending, a link that closes with calls in
flight, and half-close."""
import socket
import struct
import time

from lib import check, wait_for
from test_security import LIVE, frame, pair, read_replies

# the link's agent on the callee node and how many messages it has handled
AGENT_MESSAGES = """
local addr = next(skynet.call(".clusterd", "lua", "agents"))
return require("skyjet").serviceinfo(tonumber(addr:sub(2), 16)).messages
"""


def packed(node, code):
    """skynet.packstring(<code>) on node: the payload of a request."""
    hexed = node.eval1('return (skynet.packstring(%s):gsub(".", function(c) '
                       'return string.format("%%02x", c:byte()) end))' % code)
    return bytes.fromhex(hexed)


def request(handle, session, payload):
    return frame(b"\x00" + struct.pack("<II", handle, session) + payload)


def named(name, session, payload):
    """A request to a name (kind 80); a push when session is 0."""
    return frame(b"\x80" + bytes([len(name)]) + name + struct.pack("<I", session) + payload)


def trace(tag):
    return frame(b"\x04" + tag)


def answers(s, sessions, timeout=10):
    """Read frames until every session in `sessions` has its whole answer: session -> list of
    frame bodies without their session (a split reply is its 02 header and its parts)."""
    s.settimeout(timeout)
    got, done, buf = {}, set(), b""
    while len(done) < len(sessions):
        chunk = s.recv(65536)
        check(chunk, f"the link stays open until every answer is in ({sorted(done)})")
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            n = struct.unpack(">H", buf[:2])[0]
            body, buf = buf[2:2 + n], buf[2 + n:]
            session = struct.unpack("<I", body[:4])[0]
            got.setdefault(session, []).append(body[4:])
            if body[4] in (0x00, 0x01, 0x04):  # error, whole reply, last part
                done.add(session)
    return got


def test_answers_from_c_match_the_lua_path_byte_for_byte(ctx):
    a, b, handle = pair(ctx)
    gone = b.eval1('local p = skynet.newservice("probe") skynet.send(p, "lua", "exit") return p')
    wait_for(lambda: b.eval1(f'return require("skyjet").serviceinfo({gone}) == nil'),
             what="the exited probe is gone")
    cases = [  # (target, request arguments)
        (handle, '"echo", "small", 42'),
        (handle, '"big", 32755'),  # the packed reply is 32 768 bytes: one frame
        (handle, '"big", 32756'),  # 32 769 bytes: split
        (handle, '"big", 200000'),
        (handle, '"fail", "boom"'),  # the callee raises: "call failed: <its error>"
        (handle, '"noreply"'),
        (handle, '"later_fail", 1'),  # response(false): "call failed" without a reason
        (handle, '"later", 1, "late"'),
    ]
    s = socket.create_connection(("127.0.0.1", a.port2))
    sessions = []
    for i, (target, args) in enumerate(cases):
        payload = packed(b, args)
        # the traced one is served by the agent's Lua path, the other one from C
        s.sendall(trace(b"bytes-%d" % i) + request(target, 2 * i + 1, payload) +
                  request(target, 2 * i + 2, payload))
        sessions += [2 * i + 1, 2 * i + 2]
    got = answers(s, sessions)
    # the same requests to @probe, sent from the reactor thread by C's filter once the agent has
    # resolved the name (the agent handles none of them)
    s.sendall(named(b"@probe", 99, packed(b, '"echo", 0')))
    answers(s, [99])
    before = b.eval1(AGENT_MESSAGES)
    s.sendall(b"".join(named(b"@probe", 101 + i, packed(b, args)) for i, (_, args) in enumerate(cases)))
    got.update(answers(s, [101 + i for i in range(len(cases))]))
    handled = b.eval1(AGENT_MESSAGES) - before
    # (a read that ends inside a frame hands the rest of that read to the agent)
    check(handled < len(cases), f"the agent handled {handled} messages for {len(cases)} requests")
    s.close()
    for i, (target, args) in enumerate(cases):
        lua, c, f = got[2 * i + 1], got[2 * i + 2], got[101 + i]
        check(lua == c == f, f"{args}: C wrote {c[0][:80]!r}... ({len(c)} frames), "
                             f"Lua {lua[0][:80]!r}... ({len(lua)} frames), "
                             f"the filter's {f[0][:80]!r}... ({len(f)} frames)")
    check(len(got[8]) == 1 + 7 and got[8][0][0] == 0x02, "a 200 000-byte reply is split")
    check(got[6][0][0] == 0x01 and len(got[6]) == 1, "a 32 768-byte reply is one frame")
    check(b"call failed: " in got[10][0] and b"boom" in got[10][0], got[10])
    # no such service: what skynet.rawcall raises (the traced path's tracecall says the same from
    # another line)
    t = socket.create_connection(("127.0.0.1", a.port2))
    t.sendall(request(gone, 1, packed(b, '"echo", 1')))
    invalid = b.eval1(f'return select(2, pcall(skynet.rawcall, {gone}, "lua"))')
    check(answers(t, [1])[1] == [b"\x00" + invalid.encode()], invalid)
    t.close()


def test_the_agent_does_not_wake_for_answers(ctx):
    a, b, _ = pair(ctx)
    a.eval('cluster.call("n2", "@probe", "echo", 0)')  # the link and the @name cache are up
    before = b.eval1(AGENT_MESSAGES)
    n = a.eval1("""
        local n = 0
        for i = 1, 200 do
            if cluster.call("n2", "@probe", "echo", i) == i then n = n + 1 end
        end
        return n
    """)
    check(n == 200, f"{n} of 200 answers right")
    handled = b.eval1(AGENT_MESSAGES) - before
    # through the agent, each call was a socket message and an answer; now C serves both (a
    # request split over two reads still goes to the agent)
    check(handled < 100, f"the agent handled {handled} messages for 200 calls")
    # many at once, small and split answers mixed, over the one link
    r = a.eval("""
        local ok, bad, done = 0, 0, 0
        for c = 1, 32 do
            skynet.fork(function()
                for i = 1, 20 do
                    local size = (c * 7919 + i * 104729) % 70000
                    local s = cluster.call("n2", "@probe", "big", size)
                    if #s == size then ok = ok + 1 else bad = bad + 1 end
                end
                done = done + 1
            end)
        end
        while done < 32 do skynet.sleep(1) end
        return ok, bad
    """)
    check(r == [640, 0], r)


def test_callees_that_exit_or_are_killed_fail_the_calls_they_owe(ctx):
    a, b, _ = pair(ctx)
    s = socket.create_connection(("127.0.0.1", a.port2))
    session = 0
    for how, word in (("skynet.send(G.q, 'lua', 'exit')", b"exited"), ("skynet.kill(G.q)", b"killed")):
        q = b.eval1('G.q = skynet.newservice("probe") return G.q')
        sessions = list(range(session + 1, session + 6))
        session += 5
        s.sendall(b"".join(request(q, i, packed(b, '"sleep", 1000')) for i in sessions))
        wait_for(lambda: b.eval1('return skynet.call(G.q, "debug", "STAT").task') == 5,
                 what="five calls in the callee")
        b.eval(how)
        got = answers(s, sessions)
        for i in sessions:
            check(len(got[i]) == 1 and got[i][0][0] == 0x00 and b"call failed" in got[i][0] and
                  word in got[i][0], got[i])
    s.close()
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 7)') == 7, "the node still serves")


def test_link_closed_with_calls_in_flight_drops_their_answers(ctx):
    a, b, handle = pair(ctx)
    s = socket.create_connection(("127.0.0.1", a.port2))
    s.sendall(request(handle, 1, packed(b, '"hold"')) +
              b"".join(request(handle, 2 + i, packed(b, '"sleep", 30')) for i in range(3)))
    wait_for(lambda: b.eval1('return skynet.call(G.p, "debug", "STAT").task') == 3,
             what="the calls in the callee")
    s.close()
    wait_for(lambda: b.eval1(LIVE) == 0, what="the link closed")
    # the callee was told its caller is gone (as skynet.exit tells callees): the held answer is
    # no longer owed; the sleeps answer after the link closed and are dropped
    check(b.eval1('return skynet.call(G.p, "lua", "test_held")') is False, "held answer dropped")
    time.sleep(0.5)
    check("Unknown session" not in b.text() and "Response message" not in b.text(),
          "late answers never reach the agent's Lua")
    t = socket.create_connection(("127.0.0.1", a.port2))
    t.sendall(request(handle, 9, packed(b, '"echo", "fresh"')))
    got = answers(t, [9])
    t.close()
    check(list(got) == [9] and b"fresh" in got[9][0], got)


def test_half_close_answers_what_c_owes_then_closes(ctx):
    a, b, handle = pair(ctx)
    s = socket.create_connection(("127.0.0.1", a.port2))
    s.sendall(b"".join(request(handle, 1 + i, packed(b, '"sleep", %d' % (10 + 10 * i)))
                       for i in range(3)))
    s.shutdown(socket.SHUT_WR)
    replies = read_replies(s, 3)
    check(sorted(r[:5] for r in replies) == [struct.pack("<I", i) + b"\x01" for i in (1, 2, 3)],
          replies)
    s.settimeout(5)
    check(s.recv(1) == b"", "the node closes the link once the answers are out")
    s.close()
    wait_for(lambda: b.eval1(LIVE) == 0, what="the slot freed")


def test_frames_keep_their_order_across_the_c_and_lua_paths(ctx):
    a, b, _ = pair(ctx)
    s = socket.create_connection(("127.0.0.1", a.port2))
    echo = packed(b, '"echo", "x"')
    s.sendall(named(b"@probe", 1, echo))  # resolved by the agent: C serves the next ones
    answers(s, [1])
    # one write: a call C serves, a push (the agent's), a call behind it (the agent's too), a
    # traced call, then calls C may serve again once the agent has caught up
    s.sendall(named(b"@probe", 2, echo) + named(b"@probe", 0, packed(b, '"record", "a"')) +
              named(b"@probe", 3, packed(b, '"records"')) + trace(b"order") +
              named(b"@probe", 4, echo) + named(b"@probe", 5, packed(b, '"records"')))
    got = answers(s, [2, 3, 4, 5])
    check(b"x" in got[2][0] and b"x" in got[4][0], got)
    check(b"a" in got[3][0] and b"a" in got[5][0], "the push reached the callee before the calls "
          f"behind it: {got[3]} {got[5]}")
    b.wait_log(r"<TRACE [^>]*order> \d+ request")
    # a trace tag alone in its write: the call after it, in the next write, is the traced one
    s.sendall(trace(b"alone"))
    time.sleep(0.1)
    s.sendall(named(b"@probe", 9, echo))
    check(b"x" in answers(s, [9])[9][0], "traced call answered")
    b.wait_log(r"<TRACE [^>]*alone> \d+ request")
    # a frame split over two writes, then a push and a call in the next write
    body = named(b"@probe", 6, echo)
    s.sendall(body[:7])
    time.sleep(0.1)
    s.sendall(body[7:] + named(b"@probe", 0, packed(b, '"record", "b"')) +
              named(b"@probe", 7, packed(b, '"records"')))
    got = answers(s, [6, 7])
    check(b"x" in got[6][0] and b"b" in got[7][0], got)
    s.sendall(named(b"@probe", 8, packed(b, '"records"')))
    check(b"b" in answers(s, [8])[8][0], "in order after the split frame")
    s.close()


def test_a_changed_or_dead_name_is_resolved_again(ctx):
    a, b, _ = pair(ctx)
    b.eval('G.w1 = skynet.newservice("probe", "one") cluster.register("who", G.w1)')
    s = socket.create_connection(("127.0.0.1", a.port2))
    who = packed(b, '"name"')
    for i in (1, 2):  # the second one C serves
        s.sendall(named(b"@who", i, who))
        check(b"one" in answers(s, [i])[i][0], "the first service")
    b.eval('cluster.unregister("who") G.w2 = skynet.newservice("probe", "two") '
           'cluster.register("who", G.w2)')
    wait_for(lambda: (s.sendall(named(b"@who", 3, who)) or b"two" in answers(s, [3])[3][0]),
             what="calls to @who reach the new service")
    b.eval('skynet.send(G.w2, "lua", "exit")')
    wait_for(lambda: b.eval1('return require("skyjet").serviceinfo(G.w2) == nil'), what="gone")
    s.sendall(named(b"@who", 4, who))
    err = answers(s, [4])[4][0]
    check(err[0] == 0x00 and err.endswith(b"call to invalid address"), err)
    s.sendall(named(b"@probe", 5, packed(b, '"echo", "on"')))
    check(b"on" in answers(s, [5])[5][0], "the link serves on")
    s.close()
