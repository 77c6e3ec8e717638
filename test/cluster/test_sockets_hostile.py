"""The socket layer against careless and hostile clients (issue 16): half-close answered, unread
output bounded, listeners that cannot starve each other. Real nodes, real sockets on 127.0.0.1,
small limits in each test's config."""
import socket
import subprocess

from lib import check, free_port, wait_for


def recv_all(c, timeout=10):
    c.settimeout(timeout)
    out = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            return out
        out += chunk


def ask_then_eof(port, request, timeout=10):
    """Send the request, shut our write side (as `printf ... | socat` does), read to EOF."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c.sendall(request)
    c.shutdown(socket.SHUT_WR)
    try:
        return recv_all(c, timeout)
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
    check("<ok>" in out and "debug_console" in out, f"console answered {out!r}")
    out = ask_then_eof(mport, b"GET /metrics HTTP/1.0\r\n\r\n").decode()
    check(out.startswith("HTTP/1.0 200") and "skyjet_" in out, f"metrics answered {out[:200]!r}")
    # the shell pattern from the issue: printf 'list\n' | socat - TCP:...
    r = subprocess.run(["socat", "-", f"TCP:127.0.0.1:{cport}"], input=b"list\nlist\n",
                       capture_output=True, timeout=20)
    check(r.returncode == 0 and r.stdout.count(b"<ok>") == 2, f"socat got {r.stdout!r} {r.stderr!r}")


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
