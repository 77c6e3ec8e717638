"""Real database servers for the driver tests and benchmarks: redis-server and MariaDB on free
127.0.0.1 ports, each with a throw-away data folder, stopped by PID.

    with redis_server(tmpdir, password="pw") as r: ...       # r.port, r.restart(), r.stop()
    r = redis_server(...).start(); ctx.nodes.append(r)       # dies with a test's Context
    m = shared_mariadb()                                     # one MariaDB for a whole test module

A server registered in ctx.nodes is stopped by Context.close() with the nodes (it answers the
same stop/output/text/tail calls), so it dies with the test also when the test fails. Every
child gets PR_SET_PDEATHSIG, so it dies with the Python process even on SIGKILL; shared_mariadb
is also stopped at interpreter exit.
"""
import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from lib import TestFailure, free_port, read_text, terminate, wait_for

MARIADB_PASSWORD = "skyjet-root-pw"


def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Server:
    """A child process with a log file; stop() ends it by PID (SIGTERM, then SIGKILL)."""

    name = "server"

    def __init__(self, tmpdir):
        self.dir = tmpdir
        self.proc = None
        self.log = os.path.join(tmpdir, f"{self.name}.log")

    def spawn(self, argv):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid

    def wait_ready(self, ready, what, timeout=60):
        def check():
            if self.proc.poll() is not None:
                raise TestFailure(f"{self.name} exited ({self.proc.returncode})\n{self.tail()}")
            return ready()
        wait_for(check, timeout, what)

    def stop(self):
        if self.proc:
            terminate(self.proc)
            self.logf.close()

    # the Context's node interface (log tails on failure, sanitizer scan)
    def text(self):
        return read_text(self.log)

    def output(self):
        return ""

    def tail(self, n=20):
        return "\n".join(self.text().splitlines()[-n:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class redis_server(Server):
    name = "redis"

    def __init__(self, tmpdir, password=None, port=None):
        super().__init__(tmpdir)
        self.password = password
        self.port = port or free_port()

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.spawn(argv)
        self.wait_ready(lambda: _port_open(self.port), f"redis on {self.port}")
        return self

    def restart(self):
        self.stop()
        return self.start()

    def cli(self, *args):
        argv = ["redis-cli", "-p", str(self.port)]
        if self.password:
            argv += ["--no-auth-warning", "-a", self.password]
        return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=10).stdout


class mariadb_server(Server):
    name = "mariadb"

    def __init__(self, tmpdir, password=MARIADB_PASSWORD):
        super().__init__(tmpdir)
        self.password = password
        self.port = free_port()
        self.datadir = os.path.join(tmpdir, "data")
        self.socket = os.path.join(tmpdir, "mysqld.sock")
        self.root_args = ["--user=root"] if os.getuid() == 0 else []

    def start(self):
        if not os.path.isdir(os.path.join(self.datadir, "mysql")):
            subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + self.datadir,
                            "--auth-root-authentication-method=normal", "--skip-test-db",
                            "--skip-name-resolve"] + self.root_args,
                           capture_output=True, check=True, timeout=120)
            fresh = True
        else:
            fresh = False
        self.spawn(["mariadbd", "--no-defaults", "--datadir=" + self.datadir,
                    "--socket=" + self.socket, "--port=" + str(self.port),
                    "--bind-address=127.0.0.1", "--skip-networking=0", "--skip-name-resolve",
                    "--pid-file=" + os.path.join(self.dir, "mysqld.pid"),
                    "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
                    "--skip-log-bin", "--max-connections=200", "--max-allowed-packet=64M",
                    # MySQL 8's defaults, which Skynet's tests assume (binary strings survive
                    # prepared statements unconverted)
                    "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"]
                   + self.root_args)
        self.wait_ready(lambda: _port_open(self.port) and os.path.exists(self.socket),
                        f"mariadb on {self.port}", timeout=90)
        if fresh:
            self.sql(f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{self.password}';"
                     f"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';"
                     f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{self.password}';"
                     "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
                     "CREATE DATABASE skynet;", password=None)
        return self

    def restart(self):
        self.stop()
        return self.start()

    def sql(self, text, password=MARIADB_PASSWORD, database=None):
        """Run SQL with the mariadb client over the socket; returns its tab-separated output."""
        argv = ["mariadb", "--no-defaults", "-uroot", "--socket=" + self.socket, "-N", "-B"]
        if password:
            argv.append("-p" + password)
        if database:
            argv.append(database)
        r = subprocess.run(argv + ["-e", text], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise TestFailure(f"mariadb client: {r.stderr.strip()}")
        return r.stdout


def mariadb_tempdir():
    """A fresh folder for a MariaDB datadir, on tmpfs when there is one: InnoDB's fsyncs make
    bootstrap several times slower on a busy disk. The caller removes it."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="skyjet-mariadb-", dir=shm)


_shared = {}


def shared_mariadb():
    """One MariaDB for every test of the process (bootstrap takes seconds); stopped at exit."""
    m = _shared.get("mariadb")
    if m is None or m.proc.poll() is not None:
        tmp = mariadb_tempdir()
        m = mariadb_server(tmp)

        def cleanup():
            m.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        atexit.register(cleanup)
        m.start()
        _shared["mariadb"] = m
    return m


def wait_gone(port, timeout=10):
    deadline = time.time() + timeout
    while _port_open(port):
        if time.time() > deadline:
            raise TestFailure(f"port {port} still open")
        time.sleep(0.05)


class fake_server:
    """A scripted TCP server on a free 127.0.0.1 port for bad-input tests: each accepted
    connection gets handler(conn) in a thread (read what it needs, send what it wants, return
    to close). Used as a context manager; closing stops accepting."""

    def __init__(self, handler):
        import threading
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        import threading
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(10)
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

