"""The socket layer against careless and hostile clients (issue 16): half-close answered, unread
output bounded, listeners that cannot starve each other. Real nodes, real sockets on 127.0.0.1,
small limits in each test's config."""
import os
import socket
import subprocess
import time

from lib import check, free_port, recv_until_eof, wait_for


def ask_then_eof(port, request, timeout=10):
    """Send the request, shut our write side (as `printf ... | socat` does), read to EOF."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c.sendall(request)
    c.shutdown(socket.SHUT_WR)
    try:
        return recv_until_eof(c, timeout)
    finally:
        c.close()


def echo_port(n):
    return n.eval1('G.echo = skynet.newservice("echo_server") '
                   'return skynet.call(G.echo, "lua", "port")')


# --- half-close ---------------------------------------------------------------------------------

def test_echo_returns_every_byte_after_the_client_half_closes(ctx):
    n = ctx.ctl_node("h1")
    port = echo_port(n)
    data = bytes(i * 7 % 251 for i in range(3 * 1024 * 1024 + 17))
    got = ask_then_eof(port, data)
    check(len(got) == len(data), f"echo answered {len(got)} of {len(data)} bytes")
    check(got == data, "echo returned the same bytes")


def test_console_and_metrics_answer_a_request_followed_by_eof(ctx):
    cport, mport = free_port(), free_port()
    n = ctx.node("h2", "idle", node=f"console = 127.0.0.1:{cport}\nmetrics = 127.0.0.1:{mport}")
    n.wait_log(r"metrics listening")
    n.wait_log(r"debug console listening")
    out = ask_then_eof(cport, b"list\n").decode()
    check("<CMD OK>" in out and "debug_console" in out, f"console answered {out!r}")
    out = ask_then_eof(mport, b"GET /metrics HTTP/1.0\r\n\r\n").decode()
    check(out.startswith("HTTP/1.0 200") and "skyjet_" in out, f"metrics answered {out[:200]!r}")
    # the shell pattern from the issue: printf 'list\n' | socat - TCP:...
    r = subprocess.run(["socat", "-", f"TCP:127.0.0.1:{cport}"], input=b"list\nlist\n",
                       capture_output=True, timeout=20)
    check(r.returncode == 0 and r.stdout.count(b"<CMD OK>") == 2, f"socat got {r.stdout!r} {r.stderr!r}")


# --- unread output ------------------------------------------------------------------------------

def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def flood_without_reading(port, limit):
    """Send up to `limit` bytes to an echo service, never reading; returns the bytes the node
    took before it closed the connection (or `limit` if it never did)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    chunk, sent = b"x" * (1 << 20), 0
    try:
        while sent < limit:
            sent += c.send(chunk)
    except OSError:  # reset or broken pipe: the node closed it
        pass
    finally:
        c.close()
    return sent


def test_unread_output_is_bounded_by_socket_output_limit(ctx):
    n = ctx.ctl_node("o1", node="socket_output_limit = 4M")
    port = echo_port(n)
    before = vm_kib(n.pid, "VmRSS")
    sent = flood_without_reading(port, 512 << 20)
    n.wait_log(r"socket \d+ \(127\.0\.0\.1:\d+\): \d+ bytes of unsent output exceed "
               r"socket_output_limit \(4194304\); closing it")
    check(sent < 64 << 20, f"the node took {sent} bytes from a client that never reads")
    grew = vm_kib(n.pid, "VmHWM") - before
    print(f"    sent {sent >> 20} MiB before the close; peak RSS grew {grew >> 10} MiB")
    # the node goes on serving: a well-behaved client is echoed in full
    got = ask_then_eof(port, b"still here")
    check(got == b"still here", f"echo after the flood answered {got!r}")


# --- listeners that cannot starve each other ------------------------------------------------------

def console_list(port):
    try:
        return "<CMD OK>" in ask_then_eof(port, b"list\n").decode()
    except OSError:  # refused while the console is at its cap
        return False


def test_console_connection_cap_and_idle_timeout(ctx):
    cport = free_port()
    n = ctx.node("l1", "idle", node=f"console = 127.0.0.1:{cport}\nconsole_maxconn = 3\n"
                 "console_idle_timeout = 1")
    n.wait_log(r"debug console listening")
    held = [socket.create_connection(("127.0.0.1", cport)) for _ in range(3)]
    for c in held:  # the greeting: each one is accepted and served
        check(c.makefile("rb").readline() == b"Welcome to skynet console\n", "greeting")
    extra = [socket.create_connection(("127.0.0.1", cport)) for _ in range(5)]
    for c in extra:  # over the cap: closed at once, never served
        check(recv_until_eof(c, 5) == b"", "a connection over the cap is closed")
        c.close()
    n.wait_log(r"listener \d+ \(127\.0\.0\.1:%d\) refused 5 connection\(s\) in 1 s: 5 over its "
               r"cap of 3" % cport)
    # the held ones say nothing: the idle timeout closes them, and the cap frees up
    for c in held:
        check(recv_until_eof(c, 10) == b"", "an idle console connection is closed")
        c.close()
    n.wait_log(r"idle for 1 s; closing it")
    wait_for(lambda: console_list(cport), 10, "a new console client is served")


def limited_binary(ctx, nofile):
    """A wrapper that starts skyjet with RLIMIT_NOFILE = nofile."""
    path = ctx.path("skyjet-nofile")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nulimit -n {nofile} || exit 99\nexec "{ctx.binary}" "$@"\n')
    os.chmod(path, 0o755)
    return path


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_cluster_and_metrics_keep_working_while_the_console_floods_the_fd_limit(ctx):
    p1, p2, cport, mport = free_port(), free_port(), free_port(), free_port()
    cf = ctx.cluster_file({"n1": p1, "n2": p2})
    a = ctx.ctl_node("n1", cf)
    real = ctx.binary
    ctx.binary = limited_binary(ctx, 256)
    try:  # the console has no cap here: only the fd reserve protects the other listeners
        b = ctx.ctl_node("n2", cf, node=f"console = 127.0.0.1:{cport}\nconsole_maxconn = 0\n"
                         f"metrics = 127.0.0.1:{mport}")
    finally:
        ctx.binary = real
    b.eval('G.e = skynet.newservice("echo_server") cluster.register("echo", G.e) '
           'cluster.open("n2")')
    flood = []
    try:
        for _ in range(400):  # far past the node's 256 fds
            c = socket.create_connection(("127.0.0.1", cport), timeout=5)
            flood.append(c)
        time.sleep(0.5)
        fds = open_fds(b.pid)
        check(fds <= 256, f"the node holds {fds} fds")
        b.wait_log(r"listener \d+ \(127\.0\.0\.1:%d\) refused \d+ connection\(s\) in 1 s: 0 over "
                   r"its cap of 0, \d+ at the fd limit" % cport)
        r = a.eval1('return cluster.call("n2", "@echo", "stats").accepted')
        check(r == 0, f"a cluster call into the flooded node answered {r!r}")
        out = ask_then_eof(mport, b"GET /metrics HTTP/1.0\r\n\r\n").decode()
        check(out.startswith("HTTP/1.0 200"), f"metrics answered {out[:100]!r}")
        print(f"    flooded console: node at {fds} fds of 256; cluster call and /metrics answered")
    finally:
        for c in flood:
            c.close()
    lines = [x for x in b.text().splitlines() if "refused" in x or "accept error" in x]
    check(len(lines) <= 20, f"{len(lines)} log lines about refused connections:\n" +
          "\n".join(lines[:30]))
    wait_for(lambda: console_list(cport), 10, "the console serves again once the flood is gone")


def test_fds_stay_bounded_under_console_churn(ctx):
    """Connect-and-close in a loop (at most 4 at a time) against the console with its default cap:
    the node's fds stay near its cap instead of piling up."""
    cport = free_port()
    n = ctx.node("c1", "idle", node=f"console = 127.0.0.1:{cport}")
    n.wait_log(r"debug console listening")
    base, peak = open_fds(n.pid), 0
    for i in range(3000):
        c = socket.create_connection(("127.0.0.1", cport))
        c.close()
        if i % 50 == 0:
            peak = max(peak, open_fds(n.pid))
    peak = max(peak, open_fds(n.pid))
    print(f"    3000 connect/close: node fds {base} at rest, peak {peak}")
    check(peak <= base + 16 + 8, f"fds went from {base} to {peak} (console_maxconn default 16)")
    wait_for(lambda: console_list(cport), 10, "the console still serves")
