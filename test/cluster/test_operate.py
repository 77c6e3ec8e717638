"""Operating a node, through the real binary: a start that fails ends the process with status 1
and the cause at ERROR; readiness, reload and stop reach systemd's NOTIFY_SOCKET at the right
moments; log lines are ISO-8601, uncoloured in files, multi-line entries indented; print goes to
the log."""
import os
import re
import signal
import socket
import subprocess

from lib import check, free_port, wait_for

ENTRY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) "
                   r"(DEBUG|INFO|WARN|ERROR) \[:[0-9a-f]{8}\] ")


def failed_start(ctx, name, start, **kw):
    """Run a node whose start must fail: exit status 1, returns (log text, stdout+stderr)."""
    node = ctx.node(name, start, **kw)
    rc = node.wait_exit(20)
    check(rc == 1, f"exit status {rc}, want 1\n{node.tail()}")
    return node.text(), node.output()


def error_line(text, pattern):
    m = re.search(r"^\S+ ERROR \[:[0-9a-f]{8}\] " + pattern, text, re.M)
    check(m, f"no ERROR line /{pattern}/ in\n{text[-3000:]}")
    return m


def test_start_service_that_raises_ends_the_node_with_status_1(ctx):
    text, out = failed_start(ctx, "n1", "op_start raise")
    error_line(text, r"start service 'op_start raise' failed: \S*op_start\.lua:\d+: "
                     r"op_start raised on purpose")
    error_line(text, r"node n1: start failed: start service")
    check("node n1 stopped" in text, text[-2000:])
    check("op_start raised on purpose" in out, out)


def test_missing_start_service_ends_the_node_with_status_1(ctx):
    text, _ = failed_start(ctx, "n1", "no_such_service")
    error_line(text, r"start service 'no_such_service' failed: cannot open \S*no_such_service\.lua")


def test_listener_that_cannot_bind_ends_the_node_with_status_1(ctx):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text, _ = failed_start(ctx, "n1", "op_start raise", node=f"metrics = 127.0.0.1:{port}")
        error_line(text, rf"metrics on 127\.0\.0\.1:{port} failed: .*")
        text, _ = failed_start(ctx, "n2", f"op_start cluster {port}")
        error_line(text, r"start service 'op_start cluster \d+' failed: .*")


def test_log_entries_are_iso8601_uncoloured_and_indented(ctx):
    node = ctx.node("n1", "op_start print")
    node.wait_log(r"PRINTED")
    # print output is in the file while the node still runs (nothing waits in a stdio buffer)
    text = node.text()
    check(re.search(r"INFO \[:[0-9a-f]{8}\] printed\t42\tfirst line\n  second line\n", text),
          text)
    node.stop()
    text = node.text()
    check("\x1b" not in text, "escape codes in the log file")
    for line in text.splitlines():
        check(ENTRY.match(line) or line.startswith("  "), f"unparseable log line: {line!r}")
    check(re.match(r"^\S+Z ", text), text[:200])


def test_logtime_local_writes_the_zone_offset(ctx):
    node = ctx.node("n1", "op_start print", node="logtime = local", proc_env={"TZ": "IST-5:30"})
    node.wait_log(r"PRINTED")
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+05:30 INFO ", node.text()),
          node.text()[:300])


class NotifySocket:
    """systemd's side of sd_notify: a datagram socket whose messages we collect."""

    def __init__(self, ctx):
        self.path = ctx.path("notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []

    def poll(self):
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass
        return self.messages

    def wait(self, text, start=0):
        """Wait for a message containing text at index >= start; returns the index after it."""
        def seen():
            self.poll()
            return next((i + 1 for i in range(start, len(self.messages))
                         if text in self.messages[i]), None)
        return wait_for(seen, what=f"{text} on NOTIFY_SOCKET (got {self.messages})")


def test_systemd_hears_ready_after_listeners_then_reloading_and_stopping(ctx):
    notify = NotifySocket(ctx)
    port = free_port()
    node = ctx.node("n1", f"op_start listen {port} 50", proc_env={"NOTIFY_SOCKET": notify.path})
    n = notify.wait("READY=1")
    # the start service listens half a second after it began: readiness came after that
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    check(not any("READY=1" in m for m in notify.messages[:n - 1]), notify.messages)
    node.signal(signal.SIGHUP)
    m = notify.wait("RELOADING=1", n)
    check(re.search(r"MONOTONIC_USEC=\d+", notify.messages[m - 1]), notify.messages)
    notify.wait("READY=1", m)
    node.signal(signal.SIGTERM)
    notify.wait("STOPPING=1", m)
    check(node.wait_exit() == 0, node.tail())


def test_systemd_hears_ready_after_a_reload_is_done_applied_or_refused(ctx):
    notify = NotifySocket(ctx)
    p1 = free_port()
    cf = ctx.cluster_file({"n1": p1})
    node = ctx.node("n1", f"testctl {free_port()}", cluster=f"file = {cf}",
                    proc_env={"NOTIFY_SOCKET": notify.path})
    n = notify.wait("READY=1")
    # a cluster file that takes a while to evaluate: READY=1 must wait for it (the log is
    # written synchronously, so the reload's line is there before clusterd says it is done)
    ctx.cluster_file({"n1": p1, "n2": free_port()}, "for _ = 1, 2e8 do end\n")
    node.signal(signal.SIGHUP)
    n = notify.wait("READY=1", notify.wait("RELOADING=1", n))
    check(re.search(r"cluster reload: n2 added", node.text()), node.tail())
    # a refused reload: logged at WARN, and the node is READY again with the old table
    ctx.write("clustername.lua", "for _ = 1, 2e8 do end\nn1 = = broken\n")
    node.signal(signal.SIGHUP)
    notify.wait("READY=1", notify.wait("RELOADING=1", n))
    check(re.search(r"WARN \[:[0-9a-f]{8}\] cluster reload failed, node table unchanged",
                    node.text()), node.tail())
    node.signal(signal.SIGTERM)
    check(node.wait_exit() == 0, node.tail())


def test_systemd_hears_no_ready_when_the_start_fails(ctx):
    notify = NotifySocket(ctx)
    node = ctx.node("n1", "op_start raise", proc_env={"NOTIFY_SOCKET": notify.path})
    check(node.wait_exit(20) == 1, node.tail())
    check(not any("READY=1" in m for m in notify.poll()), notify.messages)


# --- skyjet --test -------------------------------------------------------------------------------

def check_answer(ctx, ini, *patterns):
    p = ctx.run(["--test", ini])
    out = p.stdout + p.stderr
    check(p.returncode == 1, f"--test exit status {p.returncode}, want 1:\n{out}")
    for pattern in patterns:
        check(re.search(pattern, out, re.M), f"no /{pattern}/ in --test's answer:\n{out}")
    return out


def test_check_reports_every_ini_error_with_its_line(ctx):
    ini = ctx.write("bad.ini", "[node]\nname = x\nthread = 4\nthis line is broken\n"
                               "loglevel = loud\n[lua]\njit = fast\n[nodes]\nk = 1\n")
    check_answer(ctx, ini,
                 r"^skyjet: \S*bad\.ini:3: \[node\] thread: unknown key; did you mean \[node\] threads\? "
                 r"\(Skynet's name for it\)$",
                 r"^skyjet: \S*bad\.ini:4: syntax error",
                 r"^skyjet: \S*bad\.ini:5: \[node\] loglevel = 'loud': must be",
                 r"^skyjet: \S*bad\.ini:7: \[lua\] jit = 'fast': must be one of auto\|on\|off$",
                 r"^skyjet: \S*bad\.ini:9: unknown section \[nodes\] \(key k\); did you mean \[node\]\?$")


def test_check_recognises_a_skynet_lua_config(ctx):
    cfg = ctx.write("config", '-- skynet\nroot = "./"\nthread = 8\nharbor = 0\nstart = "main"\n'
                              'luaservice = root.."service/?.lua"\n')
    check_answer(ctx, cfg, r"config:2: this looks like a Skynet Lua config",
                 r"thread -> \[node\] threads", r"luaservice -> \[lua\] service_path")


def test_check_refuses_a_directory(ctx):
    check_answer(ctx, ctx.tmp, r"not a regular file")


def test_check_evaluates_the_cluster_file_and_what_the_node_needs(ctx):
    ctx.write("syntax.lua", 'n1 = "127.0.0.1:7000"\nn2 = \n')
    ctx.write("address.lua", 'n1 = "127.0.0.1:7000"\nn2 = 7001\nn3 = false\n')
    base = ("[node]\nname = n1\nstart = no_such_service\nconsole = 127.0.0.1\n"
            "metrics = 127.0.0.1:70000\nlogfile = {tmp}/no/such/dir/n1.log\n"
            "[cluster]\nfile = {file}\nsecret_file = missing.secret\n")
    ini = ctx.write("n1.ini", base.format(tmp=ctx.tmp, file="syntax.lua"))
    check_answer(ctx, ini,
                 r"\[cluster\] file \S*syntax\.lua:3: unexpected symbol",
                 r"\[node\] console = '127\.0\.0\.1': expected host:port",
                 r"\[node\] metrics = '127\.0\.0\.1:70000': expected host:port",
                 r"\[cluster\] secret_file \S*missing\.secret: cannot read",
                 r"\[node\] logfile \S*n1\.log: cannot create it in \S*/no/such/dir",
                 r"\[node\] start 'no_such_service': no no_such_service\.lua along \[lua\] service_path")
    ini = ctx.write("n2.ini", base.format(tmp=ctx.tmp, file="address.lua"))
    check_answer(ctx, ini, r"node n2 has address 7001; expected \"host:port\" or false")
    # the same node with everything in place is valid
    ctx.write("ok.lua", 'n1 = "127.0.0.1:7000"\nn3 = false\n')
    ctx.write("ok.secret", "0123456789abcdef0123")
    ini = ctx.write("ok.ini", "[node]\nname = n1\nstart = op_start print\nconsole = 127.0.0.1:7201\n"
                              f"logfile = {ctx.tmp}/n1.log\n[lua]\nservice_path = "
                              f"{ctx.root}/test/cluster/lua/?.lua\n[cluster]\nfile = ok.lua\n"
                              "secret_file = ok.secret\n")
    p = ctx.run(["--test", ini])
    check(p.returncode == 0 and "is valid" in p.stdout, p.stdout + p.stderr)
    # the operator services serve the local machine only unless console_allow_remote says otherwise
    remote = ctx.write("remote.ini", open(ini).read().replace(
        "console = 127.0.0.1:7201", "console = 0.0.0.0:7201\nmetrics = [::1]:7202"))
    out = check_answer(ctx, remote, r"\[node\] console: refusing non-loopback address 0\.0\.0\.0:7201 "
                                    r"\(set \[node\] console_allow_remote = true")
    check("metrics" not in out, out)
    allowed = ctx.write("allowed.ini", open(remote).read().replace(
        "[lua]", "console_allow_remote = true\n[lua]"))
    p = ctx.run(["--test", allowed])
    check(p.returncode == 0 and "is valid" in p.stdout, p.stdout + p.stderr)


# --- exported symbols ----------------------------------------------------------------------------

def test_lua_c_modules_load_and_our_names_stay_private(ctx):
    """Debian's lpeg binds to the Lua C API (from libluajit); none of our own functions is
    exported for a loaded module to bind to by accident."""
    p = subprocess.run(["nm", "-D", "--defined-only", ctx.binary], capture_output=True, text=True)
    check(p.returncode == 0, p.stderr)
    ours = [line.split()[-1] for line in p.stdout.splitlines()
            if re.search(r" T (log_|timer_|config_|service_|handle_|mq_|env_|host_|reactor_|seri_)",
                         line)]
    check(not ours, f"exported: {ours[:20]}")
    node = ctx.node("n1", "op_start lpeg", lua="cpath = /usr/lib/x86_64-linux-gnu/lua/5.1/?.so")
    check(node.wait_exit() == 0, node.tail())
    check("LPEG 2026" in node.text(), node.tail())


# --- runtime problems are warnings ---------------------------------------------------------------

def test_problems_found_at_run_time_are_logged_at_warn_or_error(ctx):
    p1 = free_port()
    cf = ctx.cluster_file({"n1": p1})
    node = ctx.ctl_node("n1", cf, cluster="secret_file = missing.secret")
    node.eval('cluster.open("n1")')
    node.wait_log(r"ERROR \[:[0-9a-f]{8}\] cluster: cannot read secret_file|"
                  r"WARN \[:[0-9a-f]{8}\] cluster secret_file \S+ cannot be read")
    node.eval('pcall(skynet.call, skynet.newservice("probe"), "lua", "fail", "runtime-boom")')
    node.wait_log(r"ERROR \[:[0-9a-f]{8}\] lua call \[[0-9a-f]+ to :[0-9a-f]+ .*runtime-boom")
    ctx.write("clustername.lua", "n1 = = broken\n")
    node.signal(signal.SIGHUP)
    node.wait_log(r"WARN \[:[0-9a-f]{8}\] cluster reload failed, node table unchanged: .*"
                  r"clustername\.lua:1:")
    node.eval('skynet.error("an ordinary message")')
    node.wait_log(r"INFO \[:[0-9a-f]{8}\] an ordinary message")
