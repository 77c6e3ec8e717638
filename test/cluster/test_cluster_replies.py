"""Answers to remote calls written from C (skynet.cluster.reply): the callee's RESPONSE or ERROR
goes to the wire from the thread that sends it, without waking the link's clusteragent. Traced
requests still take the agent's Lua path, so the two are compared byte for byte on a raw
connection; then the agent's sleep, callees that exit or are killed with calls pending, a link
that closes with calls in flight, and half-close."""
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
    s.close()
    for i, (target, args) in enumerate(cases):
        lua, c = got[2 * i + 1], got[2 * i + 2]
        check(lua == c, f"{args}: C wrote {c[0][:80]!r}... ({len(c)} frames), "
                        f"Lua {lua[0][:80]!r}... ({len(lua)} frames)")
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
    # each call is at least one socket message to the agent; an answer through the agent was one more
    check(handled < 300, f"the agent handled {handled} messages for 200 calls")
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
