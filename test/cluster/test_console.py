"""service/console: lines on the node's stdin launch services (Skynet's console), including
`debug_console PORT` in Skynet's argument form; service/debug_console: Skynet's debug console
over TCP (every command, framing, HTTP form, internal services protected, fairness)."""
import re
import socket
import threading

import lib
from lib import check, free_port, recv_until_eof, wait_for
from test_ops import Console, console_node


def test_console_launches_services_from_stdin(ctx):
    port = lib.free_port()
    ini = ctx.ini("con", "console_start")
    p = ctx.run([ini], timeout=30,
                input=f"\n  debug_console {port}\nno_such_service\nconsole_probe a  b\n")
    log = open(ctx.path("con.log")).read()
    lib.check(p.returncode == 0, f"node exit {p.returncode}: {p.stderr[-2000:]}")
    lib.check(f"debug console listening on 127.0.0.1:{port}" in log, "debug_console PORT form")
    lib.check("console: no_such_service:" in log, "a failed launch is logged")
    lib.check("CONSOLE PROBE a b" in log, "console_probe launched with its arguments")


def test_console_stops_at_end_of_input(ctx):
    ini = ctx.ini("con", "console_start")
    p = ctx.run([ini], timeout=30, input="console_probe last line without newline")
    log = open(ctx.path("con.log")).read()
    lib.check(p.returncode == 0, f"node exit {p.returncode}")
    lib.check("CONSOLE PROBE last line without newline" in log, "the last line counts")


# --- the debug console (service/debug_console.lua), through real TCP clients ------------------

def target(n, con, name=".target"):
    h = n.eval1(f'local h = skynet.newservice("console_target") skynet.name("{name}", h) return h')
    return f":{h:08x}"


def kv(lines):
    return dict(line.split("\t", 1) for line in lines)


def test_debug_console_skynet_commands(ctx):
    n, con = console_node(ctx)
    addr = target(n, con)
    help_text = kv(con.cmd("help"))
    for name in ("help list stat info exit kill mem gc start snax service task killtask inject call "
                 "trace netstat logon logoff signal cmem jmem ping getenv setenv shrtbl cluster "
                 "reload log").split():
        check(name in help_text, f"help lists {name}: {sorted(help_text)}")
    # stat with no address: every Lua service, Skynet's "k:v<TAB>k:v" form
    stat = kv(con.cmd("stat"))
    check(addr in stat and re.match(r"cpu:\S+\tmessage:\d+\tmqlen:\d+\ttask:1$", stat[addr]), stat)
    check(kv(con.cmd(f"info {addr} disk")) == {"asked": "disk", "service": "console_target"}, "info")
    tasks = [k for k in kv(con.cmd("task .target")) if k.startswith("thread: ")]
    check(len(tasks) == 1 and "session: " in tasks[0], tasks)
    co = re.search(r"0x[0-9a-f]+", tasks[0]).group(0)
    check(con.cmd(f"killtask .target {co}") == [f"thread: {co}"], "killtask names the coroutine")
    check(not [k for k in kv(con.cmd("task .target")) if k.startswith("thread: ")], "killed")
    check("missing task name" in con.error("killtask .target"), "killtask needs a name")
    # call: arguments are a Lua expression list; answers are Skynet's table.pack dump
    check(kv(con.cmd(f'call {addr} "echo", 1, "two words", {{x = 3}}')) ==
          {"1": "1", "2": "two words", "3": "x:3", "n": "3"}, "call")
    # trailing nils count, both ways (Skynet's table.pack): "echo", nil sends one nil and gets it back
    check(kv(con.cmd(f'call {addr} "echo", 1, nil')) == {"1": "1", "n": "2"}, "call keeps trailing nils")
    check("invalid arguments" in con.error(f"call {addr} )("), "bad expression")
    check("need arguments" in con.error(f"call {addr}"), "call without arguments")
    check("unknown command nope" in con.error(f'call {addr} "nope"'), "the callee's error")
    # start and snax launch; service lists unique services
    started = con.cmd("start console_target")
    check(len(started) == 1 and re.match(r":[0-9a-f]{8}\tconsole_target$", started[0]), started)
    check("Failed" in con.error("start no_such_service_here"), "a failed start is an error")
    snax = con.cmd("snax snax_counter from_console")
    check(re.match(r":[0-9a-f]{8}\tsnax_counter from_console$", snax[0]), snax)
    u = n.eval1('return skynet.uniqueservice("console_target")')
    check(f":{u:08x}" in "\n".join(con.cmd("service")), "service lists unique services")
    # getenv / setenv, signal, cmem
    port = con.sock.getpeername()[1]
    check(con.cmd("getenv console") == [f"console\t127.0.0.1:{port}"], "getenv")
    check(con.cmd("getenv console_test_key") == [], "unset key: empty answer")
    check(con.cmd("setenv console_test_key v1") == [], "setenv")
    check(con.cmd("getenv console_test_key") == ["console_test_key\tv1"], "getenv after setenv")
    check("exist key" in con.error("setenv console_test_key v2"), "setenv of a set key fails")
    check(n.eval1('return skynet.getenv "console_test_key"') == "v1", "the node sees it")
    check(con.cmd(f"signal {addr} 1") == [], "signal 1")
    n.wait_log(r"\[%s\] Current Memory" % addr)
    # signal 0 breaks whatever the service runs next: aim it at a service of its own
    check(con.cmd(f"signal {started[0].split()[0]}") == [], "signal 0")
    check("bad signal" in con.error(f"signal {addr} x"), "bad signal")
    cmem = kv(con.cmd("cmem"))
    check(float(cmem["lua"]) > 0 and float(cmem["rss"]) > 0, cmem)
    # inject runs a file inside the service and prints what it printed
    script = ctx.path("inject.lua")
    with open(script, "w") as f:
        f.write('local arg = ...\nprint("injected", arg, type(require "skynet"))\n')
    check(con.cmd(f"inject {addr} {script} hello") == ["injected\thello\ttable"], "inject")
    with open(script, "w") as f:
        f.write('error("inject boom")\n')
    check("inject boom" in con.error(f"inject {addr} {script}"), "inject's error")
    check("Can't open" in con.error(f"inject {addr} {ctx.path('none.lua')}"), "no such file")
    # exit: the service exits by itself
    check(con.cmd(f"exit {addr}") == [], "exit")
    wait_for(lambda: not n.eval1('return skynet.localname ".target"'), what="the exited service")
    # what skyjet does not have: a clear error each
    for line in ("trace :1", "netstat", "logon :1", "logoff :1", "jmem", "shrtbl", "clearcache",
                 "debug :1"):
        check("not on skyjet" in con.error(line), line)


def test_debug_console_framing_errors_and_http(ctx):
    n, con = console_node(ctx)
    check(con.error("frobnicate") == "Invalid command, type help for command list", "unknown")
    check("no service named .nosuch" in con.error("task .nosuch"), "error text before <CMD Error>")
    check(con.cmd("mem")[-1].startswith("total"), "the connection goes on after errors")
    port = con.sock.getpeername()[1]
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    c.sendall(b"GET /getenv/console HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
    out = recv_until_eof(c)
    check(out == b"Welcome to skynet console\nconsole\t127.0.0.1:%d\n<CMD OK>\n" % port, out)
    # Skynet's argument forms: (PORT) is 127.0.0.1, (IP, PORT)
    p1, p2 = free_port(), free_port()
    n.eval(f'skynet.newservice("debug_console", {p1}) skynet.newservice("debug_console", "127.0.0.1", {p2})')
    for p in (p1, p2):
        check(Console(p).cmd("getenv console") == [f"console\t127.0.0.1:{port}"], f"console on {p}")
    check("debug console: connected" not in n.text(), "connections are not logged at info")


def test_debug_console_protects_internal_services(ctx):
    n, con = console_node(ctx)
    me = [line.split()[0] for line in con.cmd("list") if "debug_console" in line][0]
    for what in (".launcher", ".service", ".clusterd", ":00000001", me):
        for verb in ("kill", "exit"):
            err = con.error(f"{verb} {what}")
            check("node-internal; refusing to " + verb in err, f"{verb} {what}: {err}")
    check(n.eval1('return skynet.localname ".launcher"'), "the launcher lives")
    check(con.cmd("ping .launcher"), "and answers")


def test_debug_console_serves_others_while_one_client_pipelines(ctx):
    """One client pipelines many short commands; another client's list and setenv are served while
    that pipeline is still being answered: some of the first client's getenv answers come before
    the second client's setenv, some after."""
    n, con = console_node(ctx)
    port = con.sock.getpeername()[1]
    count = 40000
    flood = Console(port)
    answers = []

    def reader():
        f, value = flood.f, None
        while len(answers) < count:
            line = f.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line == "<CMD OK>":
                answers.append(value)
                value = None
            else:
                value = line
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    flood.send("getenv fairness_probe\n" * count)
    check(len(con.cmd("list")) > 3, "list answered during the pipeline")
    con.cmd("setenv fairness_probe served")
    t.join(120)
    check(len(answers) == count, f"{len(answers)} of {count} answers")
    before = answers.index("fairness_probe\tserved") if "fairness_probe\tserved" in answers else count
    print(f"    {before} of {count} pipelined answers came before the other client's setenv")
    check(0 < before < count, "the other client was served in the middle of the pipeline")
    check(all(a == "fairness_probe\tserved" for a in answers[before:]), "answers stay in order")
