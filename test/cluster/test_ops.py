"""Operating a node through the real binary: daemon mode and pidfiles, SIGTERM, the debug
console (every command over TCP), /metrics (parsed, values moving), scripts/cluster, make install
and the example configs. (SIGUSR1 log reopening is in test_node.py.)"""
import glob
import os
import re
import signal
import socket
import subprocess
import time

from lib import SANITIZER, TestFailure, check, free_port, recv_until_eof, wait_for

SCRIPT_TIMEOUT = 120




def alive(pid):
    """A live process; a zombie (exited, waiting to be reaped) counts as gone."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def detached_env(ctx):
    """A daemon's stderr is /dev/null: sanitizer reports go to files checked by no_reports."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return dict(os.environ, ASAN_OPTIONS=f"{opts}:log_path={ctx.path('asan')}")


def no_reports(ctx):
    for path in glob.glob(ctx.path("asan*")):
        with open(path, errors="replace") as f:
            text = f.read()
        check(not SANITIZER.search(text), f"sanitizer report from a daemon:\n{text[-6000:]}")


def kill_leftovers(*pids):
    for pid in pids:
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- daemon mode and pidfile -------------------------------------------------------------------

def start_daemon(ctx, name):
    pidfile = ctx.path(name + ".pid")
    ini = ctx.ini(name, "idle", node=f"daemon = {pidfile}")
    p = subprocess.Popen([ctx.binary, ini], cwd=ctx.tmp, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=detached_env(ctx))
    out, err = p.communicate(timeout=30)
    return p, pidfile, out + err


def test_daemon_detaches_writes_its_pidfile_and_removes_it_on_exit(ctx):
    p, pidfile, out = start_daemon(ctx, "d1")
    check(p.returncode == 0, f"the launching process exits 0: {p.returncode} {out}")
    pid = wait_for(lambda: read_pid(pidfile), what="the pidfile")
    try:
        check(pid != p.pid and alive(pid), f"pidfile names a live process other than ours: {pid}")
        check(os.getsid(pid) != os.getsid(0), "the daemon left our session")
        check(os.readlink(f"/proc/{pid}/fd/0") == "/dev/null", "stdin is /dev/null")
        wait_for(lambda: "LAUNCH snlua idle" in open(ctx.path("d1.log")).read(), what="start")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), what="the daemon to exit")
        check(not os.path.exists(pidfile), "pidfile removed on exit")
        check("node d1 stopped" in open(ctx.path("d1.log")).read(), "clean stop logged")
    finally:
        kill_leftovers(pid)
    no_reports(ctx)


def test_daemon_refuses_to_start_when_the_pidfile_names_a_live_process(ctx):
    pidfile = ctx.write("d2.pid", f"{os.getpid()}\n")
    ini = ctx.ini("d2", "idle", node=f"daemon = {pidfile}")
    p = ctx.run([ini])
    check(p.returncode == 1, f"exit 1: {p.returncode}")
    check("names a running process" in p.stderr and str(os.getpid()) in p.stderr, p.stderr)
    check(read_pid(pidfile) == os.getpid(), "the pidfile is left alone")
    check(not os.path.exists(ctx.path("d2.log")), "no node started")


def test_daemon_takes_over_a_stale_pidfile(ctx):
    gone = subprocess.Popen(["true"])
    gone.wait()
    pidfile = ctx.write("d3.pid", f"{gone.pid}\n")
    ini = ctx.ini("d3", "idle", node=f"daemon = {pidfile}")
    p = subprocess.run([ctx.binary, ini], cwd=ctx.tmp, capture_output=True, text=True, timeout=30,
                       env=detached_env(ctx))
    check(p.returncode == 0, p.stderr)
    pid = wait_for(lambda: read_pid(pidfile) not in (None, gone.pid) and read_pid(pidfile),
                   what="a new pid in the pidfile")
    try:
        check(alive(pid), "the new daemon runs")
        # wait until it runs: the pidfile is written before the daemon takes over its signals,
        # and a SIGTERM in that moment ends it without cleanup
        wait_for(lambda: "LAUNCH snlua idle" in open(ctx.path("d3.log")).read(), what="start")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), what="the daemon to exit")
        check(not os.path.exists(pidfile), "pidfile removed on exit")
    finally:
        kill_leftovers(pid)
    no_reports(ctx)


def test_sigterm_with_console_and_metrics_clients_connected_exits_0(ctx):
    cport, mport = free_port(), free_port()
    n = ctx.node("s1", "idle", node=f"console = 127.0.0.1:{cport}\nmetrics = 127.0.0.1:{mport}")
    n.wait_log(r"metrics listening")
    n.wait_log(r"debug console listening")
    con = Console(cport)
    con.cmd("help")
    half = socket.create_connection(("127.0.0.1", mport))
    half.sendall(b"GET /metrics HTTP/1.0\r\n")  # a request still arriving
    n.signal(signal.SIGTERM)
    check(n.wait_exit() == 0, "exit status 0")
    n.wait_log(r"node s1 stopped")
    half.close()
    con.close()


# --- the debug console -------------------------------------------------------------------------

class ConsoleError(Exception):
    pass


class Console:
    """A TCP client of the console: cmd() returns the answer's lines before <CMD OK>; an answer
    ending with <CMD Error> raises ConsoleError with the lines before it."""

    GREETING = b"Welcome to skynet console\n"

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.f = self.sock.makefile("rb")
        greeting = self.f.readline()
        if greeting != self.GREETING:
            raise TestFailure(f"console greeting {greeting!r}")

    def send(self, data):
        self.sock.sendall(data.encode())

    def answer(self, what):
        lines = []
        while True:
            raw = self.f.readline()
            if not raw:
                raise TestFailure(f"console closed the connection during {what!r}")
            text = raw.decode().rstrip("\r\n")
            if text == "<CMD OK>":
                return lines
            if text == "<CMD Error>":
                raise ConsoleError("\n".join(lines))
            lines.append(text)

    def cmd(self, line):
        self.send(line + "\n")
        return self.answer(line)

    def error(self, line):
        try:
            lines = self.cmd(line)
        except ConsoleError as e:
            return str(e)
        raise TestFailure(f"{line!r} should fail, got {lines}")

    def close(self):
        self.sock.close()


def gone(con, addr):
    try:
        con.cmd("stat " + addr)
        return False
    except ConsoleError as e:
        check(f"no service {addr}" in str(e), str(e))
        return True


def console_node(ctx, name="c1", **kw):
    port = free_port()
    node = f"console = 127.0.0.1:{port}"
    n = ctx.ctl_node(name, node=node, **kw)
    n.wait_log(r"debug console listening on 127\.0\.0\.1:%d" % port)
    return n, Console(port)


def test_console_help_lists_every_command(ctx):
    _, con = console_node(ctx)
    text = "\n".join(con.cmd("help"))
    for word in ("list", "stat [ADDR]", "mem", "gc", "kill ADDR", "cluster", "reload", "ping ADDR",
                 "log"):
        check(word in text, f"help mentions {word}: {text}")


def test_console_list_stat_mem_gc_ping_and_kill(ctx):
    n, con = console_node(ctx)
    h = n.eval1('G.v = skynet.newservice("idle") skynet.name(".victim", G.v) return G.v')
    addr = f":{h:08x}"
    rows = [line.split(None, 4) for line in con.cmd("list")[1:]]
    mine = [r for r in rows if r[0] == addr]
    check(mine and mine[0][4].startswith("snlua idle") and ".victim" in mine[0][4], rows)
    float(mine[0][1])  # Lua memory in KB
    check(int(mine[0][2]) >= 1 and int(mine[0][3]) == 0, mine)
    check(any("debug_console" in r[4] for r in rows) and any(".launcher" in r[4] for r in rows), rows)
    forms = [addr, f"0x{h:x}", str(h), ".victim"] + ([f"{h:x}"] if re.search("[a-f]", f"{h:x}") else [])
    for form in forms:
        stat = dict(line.split(None, 1) for line in con.cmd("stat " + form))
        check(stat["address"] == addr and "messages" in stat and stat["mqlen"] == "0" and
              float(stat["mem_kb"]) > 0, stat)
    mem = con.cmd("mem")
    check(any(re.match(re.escape(addr) + r"\t\d+\.\d\d Kb \(snlua idle\)$", line) for line in mem)
          and "total" in mem[-1], mem)
    gc = con.cmd("gc")
    check(any(line.startswith(addr) for line in gc) and "total" in gc[-1], gc)
    for form in (addr, str(h), ".launcher"):
        pong = con.cmd("ping " + form)
        check(len(pong) == 1 and re.match(r"pong :[0-9a-f]{8} \d+\.\d+ ms$", pong[0]), pong)
    check(con.cmd("kill .victim") == [f"killed {addr} snlua idle (.victim)"], "kill by name")
    wait_for(lambda: gone(con, addr), what="the killed service to go")
    wait_for(lambda: not n.eval1("return skynet.localname('.victim')"), what="its name to go")


def test_console_errors_for_unknown_commands_and_bad_arguments(ctx):
    _, con = console_node(ctx)
    check(con.error("frobnicate") == "Invalid command, type help for command list", "unknown command")
    check("missing address" in con.error("task"), "missing argument")
    check("bad address 'x!'" in con.error("stat x!"), "bad argument")
    check("no service :000f4240" in con.error("ping 1000000"), "no such service")
    check("no service named .nosuch" in con.error("kill .nosuch"), "no such name")
    check("not a Lua service" in con.error("ping :00000001"), "the C logger has no debug protocol")
    check("unknown log level" in con.error("log loud"), "bad level")
    me = [line.split()[0] for line in con.cmd("list") if "debug_console" in line][0]
    check("node-internal; refusing to kill it" in con.error("kill " + me), "the console does not kill itself")
    check(con.cmd("help"), "the connection still works after errors")


def test_console_log_level_changes_what_is_logged(ctx):
    n, con = console_node(ctx)
    check(con.cmd("log") == ["log level INFO"], "current level")
    check(con.cmd("log debug") == ["log level DEBUG"], "set debug")
    n.eval('skynet.log("debug", "probe-debug-line")')
    n.wait_log(r"DEBUG \[:[0-9a-f]{8}\] probe-debug-line")
    check(con.cmd("log warn") == ["log level WARN"], "set warn")
    n.eval('skynet.error("probe-info-line") skynet.log("warn", "probe-warn-line")')
    n.wait_log(r"WARN \[:[0-9a-f]{8}\] probe-warn-line")
    check("probe-info-line" not in n.text(), "info lines are dropped at level warn")


def test_console_cluster_and_reload(ctx):
    p1, p2 = free_port(), free_port()
    cf = ctx.cluster_file({"n1": p1, "n2": p2})
    a, con = console_node(ctx, "n1", cluster_file=cf)
    b = ctx.ctl_node("n2", cf)
    b.eval('cluster.register("probe", skynet.newservice("probe")) cluster.open("n2")')
    a.eval('cluster.call("n2", "@probe", "echo", 1)')
    lines = {line.split()[0]: line for line in con.cmd("cluster")}
    check(set(lines) == {"n1", "n2"}, lines)
    check(f"address=127.0.0.1:{p2}" in lines["n2"] and "connected=true" in lines["n2"] and
          "requests=1" in lines["n2"], lines["n2"])
    a.eval('pcall(cluster.call, "n2", "@probe", "fail", "boom")')
    n2 = [line for line in con.cmd("cluster") if line.startswith("n2 ")][0]
    check("errors=remote:1" in n2 and "last_error=" in n2 and "boom" in n2, n2)
    check(con.cmd("reload") == ["cluster reload: no change"], "nothing changed")
    p3 = free_port()
    ctx.cluster_file({"n1": p1, "n2": p2, "n3": p3})
    changes = con.cmd("reload")
    check(len(changes) == 1 and changes[0].startswith("n3 added") and str(p3) in changes[0], changes)
    check(any(line.startswith("n3 ") for line in con.cmd("cluster")), "n3 in the table")
    ctx.write("clustername.lua", 'n1 = "127.0.0.1:1"\nn2 = 42\n')
    check("n2" in con.error("reload"), "a broken file is an error and changes nothing")


def test_console_without_a_cluster_says_so(ctx):
    port = free_port()
    n = ctx.node("c2", "idle", node=f"console = 127.0.0.1:{port}")
    n.wait_log(r"debug console listening")
    con = Console(port)
    check(con.cmd("cluster") == ["no cluster"], "no clusterd")
    check("no cluster service" in con.error("reload"), "reload needs clusterd")
    check(not re.search(r"LAUNCH snlua clusterd", n.text()), "the console did not start clusterd")


def test_console_serves_several_clients_at_once(ctx):
    _, first = console_node(ctx)
    port = first.sock.getpeername()[1]
    others = [Console(port) for _ in range(3)]
    first.send("li")  # half a command: the others must not wait for it
    for con in others:
        check(con.cmd("ping .launcher"), "served while another client is mid-line")
    for con in others:
        con.send("list\n")
    for con in others:
        check(len(con.answer("list")) > 3, "concurrent lists")
    first.send("st\n")
    check(first.answer("list")[0].startswith("address"), "the split line is one command")
    first.send("quit\n")
    check(first.f.readline() == b"", "quit closes the connection")


def test_console_and_metrics_refuse_non_loopback_addresses(ctx):
    cport, mport = free_port(), free_port()
    for name, key, what, port in (("r1", "console", "debug console", cport),
                                  ("r3", "metrics", "metrics", mport)):
        n = ctx.node(name, "idle", node=f"{key} = 0.0.0.0:{port}")
        check(n.wait_exit() == 1, "a refused listener is a start failure: exit status 1")
        n.wait_log(r"ERROR \[:[0-9a-f]+\] %s on 0\.0\.0\.0:%d failed: %s: refusing non-loopback "
                   r"address 0\.0\.0\.0:%d" % (key if key == "metrics" else "debug_console", port,
                                                 what, port))
        check("LAUNCH snlua idle" not in n.text(), "the start service never ran")
    port = free_port()
    m = ctx.node("r2", "idle", node=f"console = 0.0.0.0:{port}\nconsole_allow_remote = true")
    m.wait_log(r"debug console listening on 0\.0\.0\.0:%d" % port)
    check(Console(port).cmd("ping .launcher"), "allowed with console_allow_remote = true")


# --- metrics -------------------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*)?\})? '
                    r'(-?[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|[+-]Inf)$')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_exposition(text):
    """Check every line of a Prometheus text exposition; returns {(name, labels): value}."""
    check(text.endswith("\n"), "the exposition ends with a newline")
    typed, helped, values = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            check(name not in helped, f"one HELP per family: {line}")
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            check(kind in TYPES and name not in typed, f"bad TYPE line: {line}")
            typed[name] = kind
        else:
            m = SAMPLE.match(line)
            check(m, f"not a valid sample line: {line!r}")
            name, labels = m.group(1), m.group(2) or ""
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
            check(family in typed and family in helped, f"sample before its HELP/TYPE: {line}")
            check(name.startswith(("skyjet_", "process_")), f"prefix: {line}")
            key = (name, labels)
            check(key not in values, f"duplicate sample: {line}")
            values[key] = float(m.group(3))
    return values, typed


def http(port, chunks, pause=0.05):
    """Send a request in pieces; returns (status, head, body) once the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    for i, c in enumerate(chunks):
        if i:
            time.sleep(pause)
        s.sendall(c.encode())
    data = recv_until_eof(s)
    s.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    status = int(head.split()[1])
    m = re.search(r"Content-Length: (\d+)", head)
    check(m and int(m.group(1)) == len(body.encode()), f"Content-Length matches: {head}")
    return status, head, body


def promtool(body):
    """`promtool check metrics`: Prometheus' own parser and naming/type lint."""
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True,
                       timeout=SCRIPT_TIMEOUT)
    check(p.returncode == 0, f"promtool check metrics: {p.stdout}{p.stderr}")


def scrape(port):
    status, head, body = http(port, ["GET /metrics HTTP/1.0\r\n\r\n"])
    check(status == 200 and "text/plain; version=0.0.4" in head, head)
    promtool(body)
    return parse_exposition(body)


NODE_METRICS = {
    "skyjet_uptime_seconds": "gauge", "skyjet_services": "gauge",
    "skyjet_services_launched_total": "counter", "skyjet_services_released_total": "counter",
    "skyjet_messages_total": "counter", "skyjet_mq_length_max": "gauge",
    "skyjet_mq_messages_waiting": "gauge", "skyjet_timers_pending": "gauge",
    "skyjet_worker_messages_total": "counter", "skyjet_worker_busy_seconds_total": "counter",
    "skyjet_log_lines_total": "counter", "skyjet_sockets": "gauge",
    "skyjet_socket_bytes_in_total": "counter", "skyjet_socket_bytes_out_total": "counter",
    "skyjet_socket_reads_total": "counter", "skyjet_socket_writes_total": "counter",
    "skyjet_build_info": "gauge", "skyjet_lua_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge", "process_open_fds": "gauge",
    "process_max_fds": "gauge", "process_start_time_seconds": "gauge",
}
PEER_METRICS = {
    "skyjet_cluster_link_up": "gauge", "skyjet_cluster_requests_total": "counter",
    "skyjet_cluster_pushes_total": "counter", "skyjet_cluster_bytes_out_total": "counter",
    "skyjet_cluster_bytes_in_total": "counter", "skyjet_cluster_pending_calls": "gauge",
    "skyjet_cluster_failures_total": "counter", "skyjet_cluster_rtt_seconds": "gauge",
    "skyjet_cluster_errors_total": "counter", "skyjet_cluster_call_latency_seconds": "histogram",
}


def total(values, name):
    return sum(v for (n, _), v in values.items() if n == name)


def test_metrics_exposition_is_valid_and_values_move_with_traffic(ctx):
    p1, p2, mport = free_port(), free_port(), free_port()
    cf = ctx.cluster_file({"n1": p1, "n2": p2})
    a = ctx.ctl_node("n1", cf, node=f"metrics = 127.0.0.1:{mport}")
    b = ctx.ctl_node("n2", cf)
    b.eval('cluster.register("probe", skynet.newservice("probe")) cluster.open("n2")')
    a.eval('cluster.call("n2", "@probe", "echo", 1)')
    before, typed = scrape(mport)
    for name, kind in {**NODE_METRICS, **PEER_METRICS}.items():
        check(typed.get(name) == kind, f"{name} is a {kind}: {typed.get(name)}")
    peer = '{node="n2"}'
    check(before[("skyjet_cluster_link_up", peer)] == 1, "link to n2 up")
    check(("skyjet_cluster_link_up", '{node="n1"}') not in before, "no link to ourselves")
    check(before[("skyjet_services", "")] >= 5, "services alive")
    check(before[("skyjet_build_info", '{version="%s"}' % ctx.run(["--version"]).stdout.split()[1])]
          == 1, "build info names the version")
    check(before[("process_open_fds", "")] >= 5 and before[("process_resident_memory_bytes", "")]
          > 1 << 20 and before[("skyjet_lua_memory_bytes", "")] > 100000, "process and Lua memory")
    check(abs(before[("process_start_time_seconds", "")] - time.time()) < 600, "start time")
    a.eval("""
        for i = 1, 20 do cluster.call("n2", "@probe", "echo", string.rep("x", 1000)) end
        cluster.send("n2", "@probe", "record", "pushed")
        pcall(cluster.call, "n2", "@probe", "fail", "boom")
        for i = 1, 50 do skynet.call(".launcher", "lua", "LIST") end
    """)
    after, _ = scrape(mport)
    grew = lambda key, by=1: after[key] >= before[key] + by  # noqa: E731
    check(grew(("skyjet_messages_total", ""), 50), "messages processed")
    check(grew(("skyjet_socket_bytes_out_total", ""), 20000), "socket bytes out")
    check(grew(("skyjet_socket_bytes_in_total", ""), 1), "socket bytes in")
    check(grew(("skyjet_cluster_requests_total", peer), 21), "cluster requests")
    check(grew(("skyjet_cluster_pushes_total", peer)), "cluster pushes")
    check(grew(("skyjet_cluster_bytes_out_total", peer), 20000), "cluster bytes out")
    check(grew(("skyjet_cluster_bytes_in_total", peer), 20000), "cluster bytes in")
    check(grew(("skyjet_cluster_failures_total", peer)), "cluster failures")
    check(after[("skyjet_cluster_errors_total", '{node="n2",kind="remote"}')] == 1, "errors by kind")
    check(after[("skyjet_cluster_pending_calls", peer)] == 0, "nothing pending")
    check(total(after, "skyjet_worker_busy_seconds_total") >
          total(before, "skyjet_worker_busy_seconds_total"), "workers were busy")
    check(after[("process_cpu_seconds_total", "")] >= before[("process_cpu_seconds_total", "")],
          "CPU seconds")
    check(total(after, "skyjet_worker_messages_total") == after[("skyjet_messages_total", "")],
          "per-worker messages add up")
    hist = "skyjet_cluster_call_latency_seconds"
    buckets = sorted((float(re.search(r'le="([^"]+)"', k[1]).group(1)), v)
                     for k, v in after.items() if k[0] == hist + "_bucket")
    counts = [v for _, v in buckets]
    check(counts == sorted(counts) and buckets[-1][0] == float("inf"), buckets)
    check(counts[-1] == after[(hist + "_count", peer)] and counts[-1] >= before[(hist + "_count", peer)] + 20,
          "every call is in the histogram")


def test_metrics_counters_never_go_back_between_scrapes(ctx):
    """Busy time is summed while workers sleep and wake: scraped often, across idle and busy
    stretches, no counter may ever be lower than in the scrape before."""
    port = free_port()
    n = ctx.ctl_node("m1", node=f"metrics = 127.0.0.1:{port}", threads=2)
    last, _ = scrape(port)
    for i in range(12):
        if i % 3 == 0:  # a busy stretch, then idle ones
            n.eval("local t = skynet.now() while skynet.now() - t < 5 do end")
        values, typed = scrape(port)
        for key, v in values.items():
            if typed.get(key[0]) == "counter" and key in last:
                check(v >= last[key], f"{key} went back: {last[key]} -> {v}")
        last = values


def test_metrics_head_answers_the_headers_only(ctx):
    port = free_port()
    n = ctx.node("m3", "idle", node=f"metrics = 127.0.0.1:{port}")
    n.wait_log(r"metrics listening")
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"HEAD /metrics HTTP/1.0\r\n\r\n")
    data = recv_until_eof(s)
    s.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    check(head.startswith("HTTP/1.0 200") and int(re.search(r"Content-Length: (\d+)", head).group(1))
          > 100 and body == "", repr(data[:300]))


def test_metrics_http_partial_requests_several_clients_404_and_405(ctx):
    port = free_port()
    n = ctx.node("m2", "idle", node=f"metrics = 127.0.0.1:{port}")
    n.wait_log(r"metrics listening")
    status, _, body = http(port, ["GE", "T /metr", "ics?x=1 HTTP/1.1\r\nHost: x\r\n", "\r\n"])
    check(status == 200 and "skyjet_services " in body, "a request in pieces")
    slow = socket.create_connection(("127.0.0.1", port), timeout=60)
    slow.sendall(b"GET /metrics HTTP/1.0\r\n")
    check(http(port, ["GET /nope HTTP/1.0\r\n\r\n"])[0] == 404, "other paths: 404, while "
          "another client is mid-request")
    status, head, _ = http(port, ["POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n"])
    check(status == 405 and "Allow: GET, HEAD" in head, head)
    slow.sendall(b"\r\n")
    data = b""
    while True:
        chunk = slow.recv(65536)
        if not chunk:
            break
        data += chunk
    check(data.startswith(b"HTTP/1.0 200 OK"), data[:100])
    parse_exposition(data.decode().partition("\r\n\r\n")[2])


# --- scripts/cluster -----------------------------------------------------------------------------

def cluster_script(ctx, *args):
    p = subprocess.run([os.path.join(ctx.root, "scripts", "cluster"), *args, "--bin", ctx.binary,
                        "--run", ctx.path("run")], capture_output=True, text=True,
                       timeout=SCRIPT_TIMEOUT, env=detached_env(ctx))
    return p.returncode, p.stdout + p.stderr


def test_scripts_cluster_up_three_nodes_call_across_them_then_down(ctx):
    ports = {name: free_port() for name in "abc"}
    os.makedirs(ctx.path("three"))
    cf = ctx.write("three/three.lua", "-- three local nodes\n" + "".join(
        f'{n} = "127.0.0.1:{p}"\n' for n, p in ports.items()) + "gone = false\n__nowaiting = true\n")
    # c has its own INI next to the cluster file (no daemon key: the script backgrounds it)
    ctx.write("three/c.ini", "[node]\nname = c\nthreads = 2\nstart = cluster_node c\n"
              "[cluster]\nfile = three.lua\n")
    lua = os.path.join(ctx.root, "test", "lua", "?.lua")
    pidfiles = [ctx.path("run", n + ".pid") for n in "abc"]
    try:
        rc, out = cluster_script(ctx, "up", cf, "--start", "b=idle", "--service-path", lua)
        check(rc == 0 and all(f"{n}: started" in out for n in "abc"), out)
        pids = [read_pid(p) for p in pidfiles]
        check(all(pid and alive(pid) for pid in pids), pids)
        rc, out = cluster_script(ctx, "status", cf)
        check(rc == 0 and len(re.findall(r"running\s+127\.0\.0\.1:\d+\s+yes", out)) == 3, out)
        ctl = ctx.ctl_node("ctl", cf)
        for n in "abc":
            check(ctl.eval1(f'return cluster.call("{n}", "@cluster_node", "ping")') == n, n)
        check(ctl.eval1('return cluster.call("a", "@cluster_node", "ping", "b")') == "b", "a -> b")
        check(ctl.eval1('return cluster.call("c", "@cluster_node", "ping", "a")') == "a", "c -> a")
        check("LAUNCH snlua idle" in open(ctx.path("run", "logs", "b.log")).read(), "--start b=idle")
        check(os.path.exists(ctx.path("run", "logs", "c.log")), "c's output in the log folder")
        rc, out = cluster_script(ctx, "up", cf)
        check(rc == 0 and out.count("already running") == 3, out)
        rc, out = cluster_script(ctx, "down", cf)
        check(rc == 0 and all(f"{n}: stopped" in out for n in "abc"), out)
        check(not any(alive(pid) for pid in pids), "every node stopped")
        check(not any(os.path.exists(p) for p in pidfiles), "pidfiles gone")
        rc, out = cluster_script(ctx, "status", cf)
        check(rc == 3 and out.count("stopped") == 3, out)
    finally:
        kill_leftovers(*(read_pid(p) for p in pidfiles))
    no_reports(ctx)


def test_scripts_cluster_evaluates_the_file_reports_failed_starts_and_silent_nodes(ctx):
    base = free_port()
    # Lua, not a list of lines: a local, arithmetic and concatenation, as the node evaluates it
    cf = ctx.write("lua.lua", f'local host = "127.0.0.1"\nok = host .. ":" .. ({base} + 0)\n'
                              f'bad = host .. ":{free_port()}"\nquiet = host .. ":{free_port()}"\n')
    # quiet has its own INI: it runs (spawned in the background) but never opens its port
    ctx.write("quiet.ini", "[node]\nname = quiet\nthreads = 1\nstart = idle\n[lua]\n"
              f"service_path = {os.path.join(ctx.root, 'test', 'lua', '?.lua')}\n")
    pidfiles = [ctx.path("run", n + ".pid") for n in ("ok", "bad", "quiet")]
    try:
        rc, out = cluster_script(ctx, "up", cf, "--start", "bad=no_such_service", "--timeout", "3")
        check(rc == 1 and "ok: started" in out, out)
        check(re.search(r"bad: cannot start: .*status 1.*start service .*no_such_service.* failed",
                        out), out)
        check("quiet: pid" in out and "is not listening on 127.0.0.1:" in out, out)
        rc, out = cluster_script(ctx, "status", cf)
        check(rc == 3 and re.search(r"quiet\s+\d+\s+running\s+\S+\s+no", out) and
              re.search(r"ok\s+\d+\s+running\s+\S+\s+yes", out), out)
    finally:
        cluster_script(ctx, "down", cf)
        kill_leftovers(*(read_pid(p) for p in pidfiles))
    ctx.write("broken.lua", 'a = "127.0.0.1:7000"\nb = = 1\n')
    rc, out = cluster_script(ctx, "status", ctx.path("broken.lua"))
    check(rc == 1 and re.search(r"broken\.lua:2: unexpected symbol", out), out)
    no_reports(ctx)


def test_scripts_cluster_refuses_nodes_that_are_not_local(ctx):
    cf = ctx.write("far.lua", f'near = "127.0.0.1:{free_port()}"\nfar = "10.0.0.2:7001"\n')
    rc, out = cluster_script(ctx, "up", cf)
    check(rc == 1 and "127.0.0.1" in out and "far = 10.0.0.2:7001" in out, out)
    check(not os.path.exists(ctx.path("run", "near.pid")), "nothing started")


def test_readme_and_docs_link_only_files_in_the_repository(ctx):
    """A clone has everything the README and docs/ point to (no ../shared/...)."""
    for doc in ["README.md"] + glob.glob(os.path.join(ctx.root, "docs", "*.md")):
        path = os.path.join(ctx.root, doc)
        text = open(path).read()
        check("../shared" not in text, f"{doc} points outside the repository")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            check(os.path.exists(os.path.join(os.path.dirname(path), target)),
                  f"{os.path.relpath(path, ctx.root)} links {target}, which is not there")


# --- make install and the example configs ------------------------------------------------------

HELLO = """local skynet = require "skynet"
skynet.start(function()
	skynet.error("HELLO root=" .. skynet.getenv "root" .. " motd=" .. skynet.getenv "motd")
end)
"""


def test_make_install_then_a_node_runs_from_the_installed_tree(ctx):
    dest, prefix = ctx.path("dest"), "/opt/skyjet"
    p = subprocess.run(["make", "-s", "-C", ctx.root, "install", f"DESTDIR={dest}",
                        f"PREFIX={prefix}", f"SKYJET_BIN={ctx.binary}"],
                       capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    check(p.returncode == 0, p.stdout + p.stderr)
    tree = dest + prefix
    binary = os.path.join(tree, "bin", "skyjet")
    with open(binary, "rb") as a, open(ctx.binary, "rb") as b:
        check(a.read() == b.read() and os.access(binary, os.X_OK), "the given binary, installed")
    share = os.path.join(tree, "share", "skyjet")
    for f in ("lualib/skynet.lua", "lualib/skynet/socket.lua", "service/bootstrap.lua",
              "service/debug_console.lua", "service/metrics.lua", "service/cluster_node.lua",
              "config/game1.ini", "config/game.lua", "config/node.ini", "config/skyjet.logrotate"):
        check(os.path.isfile(os.path.join(share, f)), f"installed {f}")
    unit = open(os.path.join(share, "config", "skyjet@.service")).read()
    check(f"ExecStart={prefix}/bin/skyjet /etc/skyjet/%i.ini" in unit and "/usr/local" not in unit,
          "the unit names the installed binary")
    for line in ("Type=notify", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "LimitNOFILE=65536"):
        check(re.search(rf"^{line}$", unit, re.M), f"the unit lacks {line}")
    rotate = open(os.path.join(share, "config", "skyjet.logrotate")).read()
    check("kill -s USR1" in rotate, "logrotate signals the nodes to reopen their logs")
    man = os.path.join(tree, "share", "man", "man1", "skyjet.1")
    p = subprocess.run(["man", "-l", man], capture_output=True, text=True, env=dict(os.environ, MANWIDTH="80"))
    check(p.returncode == 0 and "--test" in p.stdout and "EXIT STATUS" in p.stdout, p.stdout + p.stderr)
    # a node configured outside the repository, started from another folder
    os.makedirs(ctx.path("etc", "svc"))
    ctx.write("etc/svc/hello.lua", HELLO)
    port = free_port()
    ini = ctx.write("etc/game1.ini", f"[node]\nname = game1\nstart = hello\nlogfile = game1.log\n"
                    f"console = 127.0.0.1:{port}\n[lua]\nservice_path = svc/?.lua\n"
                    f"[env]\nmotd = installed\n")
    log = ctx.path("etc", "game1.log")
    with open(ctx.path("installed.out"), "w") as out:
        proc = subprocess.Popen([binary, ini], cwd="/", stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: os.path.exists(log) and "HELLO" in open(log).read(), what="the node")
        text = open(log).read()
        check(f"HELLO root={share} motd=installed" in text, text)
        services = "\n".join(Console(port).cmd("list"))
        check("snlua hello" in services and "snlua debug_console" in services, services)
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(30) == 0, "clean exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = open(ctx.path("installed.out")).read()
    check(not SANITIZER.search(output), output[-6000:])


def help_keys(ctx):
    """(section, key) for every key `skyjet --help` lists."""
    keys, section = set(), None
    for line in ctx.run(["--help"]).stdout.split("config keys:", 1)[1].splitlines():
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            section = m.group(1)
        elif section != "env" and re.match(r"^  \w", line):
            keys.add((section, line.split()[0]))
    return keys


def test_example_configs_are_valid_and_game1_shows_every_key(ctx):
    for name in ("node.ini", "node2.ini", "game1.ini"):
        p = ctx.run(["--test", os.path.join(ctx.root, "config", name)])
        check(p.returncode == 0 and "is valid" in p.stdout, f"{name}: {p.stdout}{p.stderr}")
    shown, section = set(), None
    for line in open(os.path.join(ctx.root, "config", "game1.ini")):
        m = re.match(r"^\[(\w+)\]", line)
        if m:
            section = m.group(1)
        m = re.match(r"^;? ?(\w+) = ", line)
        if m:
            shown.add((section, m.group(1)))
    keys = help_keys(ctx)
    check(len(keys) > 20, keys)
    missing = sorted(f"[{s}] {k}" for s, k in keys - shown)
    check(not missing, "config/game1.ini lacks " + ", ".join(missing))
