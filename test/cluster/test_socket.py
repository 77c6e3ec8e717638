"""Sockets seen from outside the node: a peer's half-close and reset are reported as close."""
import socket
import struct

from lib import check, free_port


def start(ctx):
    port = free_port()
    n = ctx.node("sock", "svc_sockwatch", env=f"watch_port = {port}")
    n.wait_log(r"SOCK listening")
    return n, port


def test_half_close_is_reported_as_close(ctx):
    n, port = start(ctx)
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"hello")
    n.wait_log(r"SOCK data \[hello\]")
    check(c.recv(5) == b"hello", "echo")
    c.shutdown(socket.SHUT_WR)
    n.wait_log(r"SOCK closed \[\]")
    c.close()


def test_peer_reset_is_reported_as_close(ctx):
    n, port = start(ctx)
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"x")
    n.wait_log(r"SOCK data \[x\]")
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # RST
    n.wait_log(r"SOCK closed")
    check(n.proc.poll() is None, "node still running")
