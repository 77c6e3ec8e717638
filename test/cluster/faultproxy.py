"""A TCP relay that injects faults between two nodes on 127.0.0.1, for test_faults.py.

    proxy = FaultProxy(target_port)     # listens on 127.0.0.1:proxy.port, forwards to the target
    ... point the caller's cluster file at proxy.port ...
    proxy.delay(20)        # sleep 20 ms before forwarding each chunk (chunk = at most proxy.chunk bytes)
    proxy.pause()          # stop reading both ways: the senders' kernel buffers and queues fill
    proxy.resume()
    proxy.blackhole()      # a dead host: connections stay open, everything is read and dropped,
                           # no FIN, no RST; connections accepted meanwhile are dead from the start
    proxy.heal()           # back to pass-through; the connections that saw the blackhole are reset
                           # (as a rebooted host answers stale segments), new ones work
    proxy.reset()          # RST every current connection (SO_LINGER 0, both sides)
    proxy.cut(n)           # the next chunk client->target: forward its first n bytes, then close
    proxy.up, proxy.down   # bytes forwarded client->target and target->client
    proxy.close()          # stops every thread, closes every socket

One thread accepts; each connection has two pump threads (one per direction) that wait on
select() with a short timeout, so every thread notices close() within ~0.1 s. Controls apply to
all connections, current and future, at once.
"""
import select
import socket
import struct
import threading
import time

POLL = 0.1  # seconds a thread blocks before it looks at the controls again


class _Conn:
    def __init__(self, client, upstream):
        self.client, self.upstream = client, upstream
        self.closed = False
        self.dead = False  # saw a blackhole: never forwards again
        self.threads = []

    def close(self, rst=False):
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.upstream):
            try:
                if rst:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class FaultProxy:
    def __init__(self, target_port, target_host="127.0.0.1", chunk=65536):
        self.target = (target_host, target_port)
        self.chunk = chunk
        self.up = self.down = 0
        self.accepted = 0
        self._delay = 0.0
        self._paused = False
        self._blackhole = False
        self._cut = None
        self._stopped = False
        self._lock = threading.Lock()
        self._conns = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy-accept",
                                          daemon=True)
        self._acceptor.start()

    # ---- controls ----

    def pass_through(self):
        """No delay, not paused, nothing armed. Does not revive blackholed connections."""
        with self._lock:
            self._delay, self._paused, self._blackhole, self._cut = 0.0, False, False, None

    def delay(self, ms):
        self._delay = ms / 1000.0

    def pause(self):
        self._paused = True

    def resume(self):
        self._paused = False

    def blackhole(self):
        with self._lock:
            self._blackhole = True
            for c in self._conns:
                c.dead = True

    def heal(self):
        """End a blackhole: the connections that saw it are reset, new ones forward again."""
        with self._lock:
            self._blackhole = False
            dead = [c for c in self._conns if c.dead]
        for c in dead:
            c.close(rst=True)

    def reset(self):
        """RST every current connection, both towards the client and towards the target."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close(rst=True)

    def cut(self, n):
        """The next chunk from a client: forward only its first n bytes, then close that
        connection (both sides, FIN)."""
        self._cut = n

    def connections(self):
        with self._lock:
            return sum(1 for c in self._conns if not c.closed)

    def close(self):
        self._stopped = True
        try:
            self._listener.close()
        except OSError:
            pass
        self._acceptor.join(5)
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        threads = [self._acceptor] + [t for c in conns for t in c.threads]
        for t in threads:
            t.join(5)
        leaked = [t.name for t in threads if t.is_alive()]
        assert not leaked, f"faultproxy threads still running: {leaked}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- threads ----

    def _accept_loop(self):
        while not self._stopped:
            try:
                r, _, _ = select.select([self._listener], [], [], POLL)
                if not r:
                    continue
                client, _ = self._listener.accept()
            except (OSError, ValueError):
                break  # the listener was closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # the target is down: the client sees a reset
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.setblocking(False)  # pumps wait in select(), never in a blocking call
            conn = _Conn(client, upstream)
            with self._lock:
                if self._stopped:
                    conn.close()
                    break
                conn.dead = self._blackhole
                self._conns = [c for c in self._conns  # forget connections that are over
                               if not c.closed or any(t.is_alive() for t in c.threads)] + [conn]
                self.accepted += 1
            for src, dst, name in ((client, upstream, "up"), (upstream, client, "down")):
                t = threading.Thread(target=self._pump, args=(conn, src, dst, name),
                                     name=f"faultproxy-{name}", daemon=True)
                conn.threads.append(t)
                t.start()

    def _pump(self, conn, src, dst, direction):
        try:
            while not conn.closed and not self._stopped:
                if self._paused and not conn.dead:
                    time.sleep(POLL / 10)
                    continue
                r, _, _ = select.select([src], [], [], POLL)
                if not r or (self._paused and not conn.dead):
                    continue
                data = src.recv(self.chunk)
                if not data:
                    break  # one side closed: close the other
                if conn.dead:
                    continue  # a dead host: the bytes vanish
                if self._delay:
                    time.sleep(self._delay)
                cut = None
                if direction == "up" and self._cut is not None:
                    with self._lock:
                        cut, self._cut = self._cut, None
                if cut is not None:
                    data = data[:cut]
                self._send_all(conn, dst, data)
                with self._lock:
                    if direction == "up":
                        self.up += len(data)
                    else:
                        self.down += len(data)
                if cut is not None:
                    break
        except (OSError, ValueError):
            pass  # a socket was closed under us (reset, close): this connection is over
        finally:
            conn.close()

    def _send_all(self, conn, dst, data):
        view = memoryview(data)
        while view:
            if conn.closed or self._stopped:
                raise OSError("connection closed")
            _, w, _ = select.select([], [dst], [], POLL)
            if w:
                try:
                    view = view[dst.send(view):]
                except BlockingIOError:
                    pass
