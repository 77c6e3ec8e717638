"""Helpers for process-level tests: real skyjet nodes as separate processes on 127.0.0.1.

A test function receives a Context. ctx.node(...) writes an INI file, starts the binary and
returns a Node; nodes log to their own file, which tests read (wait_log) to observe behaviour.
Every node is stopped by PID when the test ends, and sanitizer reports in any node's output fail
the test.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SANITIZER = re.compile(r"(ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer)")


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_for(fn, timeout=20, what="condition"):
    """Poll fn() every 50 ms until it returns something true (returned), or fail after timeout."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise TestFailure(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(0.05)


_slow = {}


def slow(ctx):
    """Slack multiplier for deadlines in tests: 3 under AddressSanitizer, else 1."""
    if ctx.binary not in _slow:
        with open(ctx.binary, "rb") as f:
            _slow[ctx.binary] = 3 if b"__asan_init" in f.read() else 1
    return _slow[ctx.binary]


def terminate(proc, grace=20):
    """End a child we started: SIGTERM, then SIGKILL if it is still there after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_text(path):
    """A log file's text so far ("" before the process has created it)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def recv_until_eof(sock, timeout=None):
    """Everything the peer sends on sock until it closes its side."""
    if timeout is not None:
        sock.settimeout(timeout)
    parts = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EvalError(AssertionError):
    pass


class Node:
    def __init__(self, ctx, name, ini_path, log_path, err_path, ctl_port=None, env=None):
        self.ctx, self.name = ctx, name
        self.ini, self.log, self.err = ini_path, log_path, err_path
        self.ctl_port = ctl_port
        self.conns = {}
        self.errf = open(err_path, "w")
        self.proc = subprocess.Popen([ctx.binary, ini_path], cwd=ctx.tmp, stdout=self.errf,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **env) if env else None)
        self.pid = self.proc.pid

    def text(self):
        return read_text(self.log)

    def output(self):
        if not self.errf.closed:
            self.errf.flush()
        with open(self.err, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout=10, start=0):
        """Wait until the log matches the regex; returns the match."""
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.text(), start)
            if m:
                return m
            if self.proc.poll() is not None and not rx.search(self.text(), start):
                raise TestFailure(f"node {self.name} exited ({self.proc.returncode}) before "
                                  f"logging /{pattern}/\n{self.tail()}")
            if time.time() > deadline:
                raise TestFailure(f"node {self.name}: no /{pattern}/ in {timeout}s\n{self.tail()}")
            time.sleep(0.05)

    def eval(self, code, timeout=30, conn="main"):
        """Run Lua code in the node's testctl service; returns the list of results."""
        s = self.conns.get(conn)
        if s is None:
            s = socket.create_connection(("127.0.0.1", self.ctl_port), timeout=10)
            self.conns[conn] = s
        s.settimeout(timeout)
        data = code.encode()
        s.sendall(len(data).to_bytes(4, "big") + data)
        hdr = self._recv(s, 4)
        body = self._recv(s, int.from_bytes(hdr, "big")).decode(errors="replace")
        if body.startswith("OK "):
            return json.loads(body[3:])
        raise EvalError(f"node {self.name}: {body[4:]}")

    def eval1(self, code, **kw):
        r = self.eval(code, **kw)
        return r[0] if r else None

    def eval_raises(self, code, pattern):
        """Run Lua code that must raise an error mentioning `pattern`; returns the error text."""
        try:
            r = self.eval(code)
        except EvalError as e:
            check(pattern in str(e), f"error {e!s} should mention {pattern!r}")
            return str(e)
        raise TestFailure(f"expected an error with {pattern!r}, got {r}")

    def close_conns(self):
        for s in self.conns.values():
            try:
                s.close()
            except OSError:
                pass
        self.conns = {}

    @staticmethod
    def _recv(s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EvalError("testctl connection closed")
            buf += chunk
        return buf

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def wait_exit(self, timeout=15):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"node {self.name} did not exit in {timeout}s\n{self.tail()}")

    def stop(self):
        self.close_conns()
        terminate(self.proc)
        self.errf.close()

    def tail(self, n=40):
        lines = self.text().splitlines()[-n:]
        out = self.output().splitlines()[-20:]
        return "\n".join(lines + (["--- stdout/stderr:"] + out if out else []))


class Context:
    def __init__(self, binary, root, name):
        self.binary, self.root, self.name = binary, root, name
        self.tmp = tempfile.mkdtemp(prefix="skyjet-proc-")
        self.nodes = []

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def ini(self, name, start, node="", lua="", cluster="", env="", threads=4):
        lua_dirs = ";".join(os.path.join(self.root, d, "?.lua")
                            for d in ("test/cluster/lua", "test/lua"))
        text = (f"[node]\nname = {name}\nthreads = {threads}\nstart = {start}\n"
                f"logfile = {self.path(name + '.log')}\n{node}\n"
                f"[lua]\nservice_path = {lua_dirs}\nlib_path = {lua_dirs}\n{lua}\n")
        if cluster:
            text += f"[cluster]\n{cluster}\n"
        text += f"[env]\ntest_tmp = {self.tmp}\n{env}\n"
        return self.write(name + ".ini", text)

    def node(self, name, start, proc_env=None, **kw):
        """A node running `start`; proc_env adds environment variables to its process (env= is
        the INI's [env] section, as for ini())."""
        ini = self.ini(name, start, **kw)
        n = Node(self, name, ini, self.path(name + ".log"), self.path(name + ".out"),
                 env=proc_env)
        self.nodes.append(n)
        return n

    def cluster_file(self, nodes, extra=""):
        """Write clustername.lua: nodes maps name -> port (int) or False."""
        lines = []
        for name, port in nodes.items():
            lines.append(f'{name} = {"false" if port is False else repr("127.0.0.1:%d" % port)}')
        return self.write("clustername.lua", "\n".join(lines) + "\n" + extra)

    def ctl_node(self, name, cluster_file=None, cluster="", **kw):
        """A node whose start service is testctl; drive it with node.eval(code)."""
        port = free_port()
        if cluster_file:
            cluster = f"file = {cluster_file}\n{cluster}"
        ini = self.ini(name, f"testctl {port}", cluster=cluster, **kw)
        n = Node(self, name, ini, self.path(name + ".log"), self.path(name + ".out"), port)
        self.nodes.append(n)
        n.wait_log(r"TESTCTL ready")
        return n

    def restart(self, node):
        """Start a stopped node again with the same config (same testctl port)."""
        node.close_conns()
        fresh = Node(self, node.name, node.ini, node.log, node.err + ".2", node.ctl_port)
        self.nodes.append(fresh)
        start = len(fresh.text())
        fresh.wait_log(r"TESTCTL ready", start=start)
        return fresh

    def run(self, args, timeout=30, **kw):
        return subprocess.run([self.binary] + args, cwd=self.tmp, capture_output=True, text=True,
                              timeout=timeout, **kw)

    def close(self):
        for n in self.nodes:
            n.stop()

    def sanitizer_reports(self):
        found = []
        for n in self.nodes:
            out = n.output() + n.text()
            if SANITIZER.search(out):
                found.append(f"{n.name}:\n{out[-6000:]}")
        return "\n".join(found)

    def log_tails(self):
        return "".join(f"\n--- {n.name} ---\n{n.tail()}" for n in self.nodes)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
