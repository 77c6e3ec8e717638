"""service/console: lines on the node's stdin launch services (Skynet's console), including
`debug_console PORT` in Skynet's argument form."""
import lib


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
