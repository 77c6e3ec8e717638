"""The skyjet process: command line, config errors, bootstrap, start-service failure, stop."""
import signal

from lib import check


def test_help_and_version(ctx):
    p = ctx.run(["--help"])
    check(p.returncode == 0 and "usage: skyjet" in p.stdout and "threads" in p.stdout, p.stdout)
    p = ctx.run(["--version"])
    check(p.returncode == 0 and p.stdout.startswith("skyjet "), p.stdout)
    p = ctx.run(["--bogus"])
    check(p.returncode == 2 and "unknown option" in p.stderr, p.stderr)
    p = ctx.run([])
    check(p.returncode == 2 and "no config file" in p.stderr, p.stderr)


def test_missing_config_file_names_it(ctx):
    p = ctx.run([ctx.path("nope.ini")])
    check(p.returncode == 1 and "nope.ini" in p.stderr and "cannot open" in p.stderr, p.stderr)


def test_broken_config_names_file_line_and_key(ctx):
    ini = ctx.write("bad.ini", "[node]\nname = x\nthreads = many\n")
    p = ctx.run([ini])
    check(p.returncode == 1, p.stderr)
    check("bad.ini:3:" in p.stderr and "threads" in p.stderr, p.stderr)
    ini = ctx.write("bad2.ini", "[node]\nstart = main\n[lua]\nsrvice_path = x\n")
    p = ctx.run([ini])
    check(p.returncode == 1 and "bad2.ini:4:" in p.stderr and "srvice_path" in p.stderr, p.stderr)
    p = ctx.run(["--test", ctx.write("good.ini", "[node]\nname = ok\nstart = service_mgr\n")])
    check(p.returncode == 0 and "is valid" in p.stdout, p.stdout + p.stderr)


def test_bootstrap_error_exits_1(ctx):
    n = ctx.node("n2", "main", node="bootstrap = nosuchmodule x")
    check(n.wait_exit() == 1, "exit status 1")
    n.wait_log(r"Bootstrap error : nosuchmodule x")


def test_abort_exits_0(ctx):
    n = ctx.node("n3", "svc_abort")
    check(n.wait_exit() == 0, "abort exits 0")
    n.wait_log(r"aborting now")


def test_sigusr1_reopens_a_moved_log(ctx):
    import os
    n = ctx.node("n4", "idle")
    n.wait_log(r"LAUNCH snlua idle")
    os.rename(n.log, n.log + ".1")
    n.signal(signal.SIGUSR1)
    n.wait_log(r"log file reopened")
    check(os.path.exists(n.log + ".1"), "old log kept")


def test_daemon_start_failure_is_reported_by_the_launching_process(ctx):
    ini = ctx.write("d.ini", f"[node]\nname = d\ndaemon = {ctx.path('d.pid')}\n"
                             f"logfile = {ctx.path('no/such/dir/d.log')}\n")
    p = ctx.run([ini], timeout=20)
    check(p.returncode == 1 and "cannot open log file" in p.stderr, p.stderr)
    import os
    check(not os.path.exists(ctx.path("d.pid")), "no pidfile left behind")


def test_calls_to_the_logger_fail_instead_of_hanging(ctx):
    n = ctx.ctl_node("lg")
    err = n.eval1('return select(2, pcall(skynet.call, ".logger", "debug", "PING"))')
    check("call failed" in err and "logger" in err, err)


def test_lua_preload_runs_before_every_service_with_its_arguments(ctx):
    pre = ctx.write("pre.lua", "PRELOAD_ARGS = table.concat({...}, ' ')\n")
    n = ctx.ctl_node("pl", lua=f"preload = {pre}")
    check(n.eval1("return PRELOAD_ARGS") == f"testctl {n.ctl_port}", n.eval1("return PRELOAD_ARGS"))


def test_lua_jit_on_and_off(ctx):
    on = ctx.ctl_node("jon", lua="jit = on")
    check(on.eval1("return (jit.status())") is True, "jit = on: compiler running")
    off = ctx.ctl_node("joff", lua="jit = off")
    check(off.eval1("return (jit.status())") is False, "jit = off: compiler off even after require")
    bad = ctx.run([ctx.write("j.ini", "[lua]\njit = sometimes\n")])
    check(bad.returncode == 1 and "jit" in bad.stderr, bad.stderr)


def test_node_profile_accounts_cpu_per_service(ctx):
    code = ('local p = skynet.newservice("probe") skynet.call(p, "lua", "busy", 0.05) '
            'return skynet.call(p, "lua", "stat", "cpu")')
    check(ctx.ctl_node("prof", node="profile = true").eval1(code) >= 0.04, "profile on: cpu counted")
    check(ctx.ctl_node("noprof").eval1(code) == 0, "profile off (default): not counted")


def test_socket_high_water_sets_the_warning_threshold(ctx):
    n = ctx.ctl_node("hw", node="socket_high_water = 64K")
    first = n.eval1("""
        local lid, _, port = socket.listen("127.0.0.1", 0)
        socket.start(lid, function() end) -- accepted, never read
        local id = assert(socket.open("127.0.0.1", port))
        local got
        socket.warning(id, function(_, kb) got = got or kb end)
        local chunk = string.rep("w", 64 * 1024)
        for _ = 1, 512 do -- 32 MiB: far more than the kernel's socket buffers hold
            socket.write(id, chunk)
            if got then break end
            skynet.sleep(1) -- let the reactor see each chunk (a loaded machine batches yields)
        end
        for _ = 1, 200 do if got then break end skynet.sleep(1) end
        return got
    """)
    check(first is not None and 64 <= first < 1024, f"first warning at {first} KiB (64K threshold)")
