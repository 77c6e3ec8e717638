"""Hostile and careless clients on a node's cluster port (no secret_file): bounded memory for
multi-part requests per link and per node, the first-frame deadline, idle connections that
cannot lock a new node out, clusterd's agent table under churn, and one log line per second
for refused connections. Small limits in the test configs keep each test short."""
import resource
import select
import signal
import socket
import struct
import time

from lib import check, wait_for
from test_security import LIVE, frame, header, pair, part, read_replies

AGENTS = 'local n = 0 for _ in pairs(skynet.call(".clusterd", "lua", "agents")) do n = n + 1 end return n'


def closed_by_node(s, timeout=5):
    """True when the node closes s (EOF or reset) within timeout, reading whatever comes."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def packed(node, code):
    """The bytes of skynet.packstring(<code>) on node (the payload of a request)."""
    hexed = node.eval1('return (skynet.packstring(%s):gsub(".", function(c) '
                       'return string.format("%%02x", c:byte()) end))' % code)
    return bytes.fromhex(hexed)


def test_part_without_its_header_closes_the_link_and_names_the_peer(ctx):
    a, b, _ = pair(ctx)
    s = socket.create_connection(("127.0.0.1", a.port2))
    port = s.getsockname()[1]
    try:
        for i in range(64):
            s.sendall(part(5, struct.pack("<I", i) + b"x" * 30000, True))
    except OSError:
        pass  # the node closed the link under the flood
    check(closed_by_node(s), "the link is closed")
    s.close()
    b.wait_log(r"cluster agent 127\.0\.0\.1:%d: part of request 5 without its header" % port)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "other links serve")


def test_cap_max_assembly_bytes_per_link(ctx):
    a, b, handle = pair(ctx, callee="max_assembly_bytes = 64K")
    s = socket.create_connection(("127.0.0.1", a.port2))
    port = s.getsockname()[1]
    s.sendall(header(handle, 3, 1 << 20))
    try:
        for i in range(4):
            s.sendall(part(3, struct.pack("<I", i) + b"x" * 30000, False))
    except OSError:
        pass
    check(closed_by_node(s), "the link is closed")
    b.wait_log(r"cluster agent 127\.0\.0\.1:%d: cap max_assembly_bytes \(65536\) reached" % port)
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "other links serve")


def test_cap_max_assembly_total_is_node_wide_and_given_back(ctx):
    a, b, handle = pair(ctx, callee="max_assembly_bytes = 100K\nmax_assembly_total = 150K")
    payload = packed(b, '"echo", string.rep("y", 90000)')
    held = []
    for session in (1, 2):  # two links, each holding 60,000 bytes of an unfinished request
        s = socket.create_connection(("127.0.0.1", a.port2))
        s.sendall(header(handle, session, len(payload)) + part(session, payload[:60000], False))
        held.append(s)
    check(not closed_by_node(held[0], 0.5) and not closed_by_node(held[1], 0.5), "both within caps")
    third = socket.create_connection(("127.0.0.1", a.port2))
    port = third.getsockname()[1]
    third.sendall(header(handle, 3, len(payload)) + part(3, payload[:60000], False))
    check(closed_by_node(third), "the third link passes the node-wide cap and is closed")
    b.wait_log(r"cluster agent 127\.0\.0\.1:%d: cap max_assembly_total \(153600\) reached" % port)
    for s in held:  # their bytes come back when their links close
        s.close()
    wait_for(lambda: b.eval1(LIVE) == 0, what="the held links gone")
    s = socket.create_connection(("127.0.0.1", a.port2))
    s.sendall(header(handle, 4, len(payload)) + part(4, payload[:60000], False) +
              part(4, payload[60000:], True))
    replies = read_replies(s, 1)
    # the echo comes back: an ok reply, large enough to be split (01 single, 02 first part)
    check(replies and replies[0][:4] == struct.pack("<I", 4) and replies[0][4] in (1, 2),
          [r[:16] for r in replies])
    s.close()


def test_assembly_timeout_is_the_age_of_an_assembly(ctx):
    a, b, handle = pair(ctx, callee="assembly_timeout = 400")
    s = socket.create_connection(("127.0.0.1", a.port2))
    s.sendall(header(handle, 9, 1 << 20))
    replies = []
    for i in range(40):  # a part every 100 ms keeps coming; the age still runs out
        s.sendall(part(9, struct.pack("<I", i) + b"x" * 100, False))
        if select.select([s], [], [], 0.1)[0]:
            replies = read_replies(s, 1)
            break
    check(replies and replies[0][:4] == struct.pack("<I", 9) and b"assembly_timeout" in replies[0],
          replies)
    b.wait_log(r"cap assembly_timeout \(400 ms\)")
    s.close()


def test_idle_connections_cannot_lock_out_a_new_node(ctx):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    a, b, _ = pair(ctx, callee="maxclient = 16\nfirst_frame_timeout = 1000")
    mark = len(b.text())
    idle = []
    try:
        for _ in range(1100):  # held open, sending nothing
            idle.append(socket.create_connection(("127.0.0.1", a.port2)))
        check(a.eval1('return cluster.call("n2", "@probe", "echo", "in")') == "in",
              "a new node gets in while 1,100 idle connections are held")
        # idle ones are closed after first_frame_timeout; only the node's link stays
        wait_for(lambda: b.eval1(LIVE) == 1, what="idle connections closed by their deadline")
        check(closed_by_node(idle[-1], 5), "the newest idle connection was closed too")
        log = b.text()[mark:]
        check(len(log.splitlines()) < 40, "no line per connection:\n" + log[-3000:])
        check("evicted for new ones" in log, log[-3000:])
    finally:
        for s in idle:
            s.close()


def test_agent_table_and_slots_stay_exact_under_churn(ctx):
    a, b, _ = pair(ctx, callee="maxclient = 64")
    check(a.eval1('return cluster.call("n2", "@probe", "echo", 1)') == 1, "the node's link")
    query = frame(b"\x00" + struct.pack("<II", 0, 1) + b"junk")
    mark = len(b.text())
    for i in range(600):  # connect, send a frame (an agent starts), close at once
        try:
            s = socket.create_connection(("127.0.0.1", a.port2))
            if i % 2:
                s.sendall(query)
            s.close()
        except OSError:
            pass
    wait_for(lambda: b.eval1(AGENTS) == 1 and b.eval1(LIVE) == 1, what="one agent, one slot left")
    # the cluster layer writes no line per connection at info level (the runtime's LAUNCH and
    # KILL self lines for each agent service aside, as Skynet writes them)
    lines = [ln for ln in b.text()[mark:].splitlines() if "LAUNCH" not in ln and "KILL self" not in ln]
    check(len(lines) < 20, "\n".join(lines[-20:]))
    b.signal(signal.SIGTERM)
    b.wait_log(r"node stopping: listeners closed, 1 inbound link\(s\) draining")
    check(b.wait_exit(10) == 0, "exit 0")
