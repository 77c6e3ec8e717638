#!/usr/bin/env python3
"""skyjet test runner: every test through its public interface.

Phases (each announced with "== phase NAME: N to run"; every PASS/FAIL line ends with the running
count so far):
  lint     luacheck over the Lua files; clang-format --dry-run over the C files (.clang-format);
           no function in daemon/ over 80 lines; Lua bindings named l_*
  unit     Check binaries <build>/unit/test_* (C parts, spec vectors)
  lua      test/lua/t_*.lua: each is the start service of a real node; cases report
           "TEST PASS name" / "TEST FAIL name reason" lines in the node's log
  cluster  test/cluster/test_*.py: multi-process scenarios on 127.0.0.1 (see test/cluster/lib.py)

Ends with one line: "N passed, N failed". Exit status 0 only if nothing failed.
"""
import argparse
import glob
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = {"passed": 0, "failed": 0}
FAILURES = []


def report(ok, name, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    count = f"[{RESULTS['passed']} passed, {RESULTS['failed']} failed]"
    if ok:
        print(f"PASS {name} {count}", flush=True)
    else:
        FAILURES.append(name)
        print(f"FAIL {name}: {detail}\n{count}", flush=True)


def phase(name, count, what):
    print(f"== phase {name}: {count} {what} to run", flush=True)


def run_unit(build, pattern):
    env = dict(os.environ, SKYJET_VECTORS=os.path.join(ROOT, "test", "vectors"),
               CK_DEFAULT_TIMEOUT="120")
    exes = [e for e in sorted(glob.glob(os.path.join(build, "unit", "test_*")))
            if not pattern or re.search(pattern, "unit/" + os.path.basename(e))]
    phase("unit", len(exes), "unit test binaries")
    if not exes and not pattern:
        # a unit phase that finds nothing must not pass as if it had run (make unit builds them)
        report(False, "unit", f"no unit test binaries under {build}/unit (run `make unit` first)")
    for exe in exes:
        name = "unit/" + os.path.basename(exe)
        t0 = time.time()
        p = subprocess.run([exe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        out = p.stdout + p.stderr
        m = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", out)
        if not m:
            report(False, name, f"no Check summary (exit {p.returncode})\n{out[-3000:]}")
            continue
        checks, failures, errors = map(int, m.groups())
        passed = checks - failures - errors
        RESULTS["passed"] += passed
        for line in out.splitlines():
            if re.search(r":[EF]:", line):
                RESULTS["failed"] += 1
                FAILURES.append(name + " " + line)
                print(f"FAIL {name}: {line}", flush=True)
        if p.returncode != 0 and failures + errors == 0:
            report(False, name, f"exit {p.returncode}\n{out[-3000:]}")
        print(f"     {name}: {passed}/{checks} checks passed ({time.time() - t0:.1f}s)", flush=True)


def run_lint():
    """luacheck over every Lua file of the project (catches undefined variables)."""
    import shutil
    if not shutil.which("luacheck"):
        report(False, "lint/luacheck", "luacheck is not installed (scripts/deps installs lua-check)")
        return
    dirs = ["lualib", "service", "test/lua", "test/cluster/lua", "test/bench", "config/demo"]
    p = subprocess.run(["luacheck", "--no-color", "-q"] + dirs, cwd=ROOT, capture_output=True,
                       text=True)
    report(p.returncode == 0, "lint/luacheck", p.stdout[-4000:])
    run_clang_format()
    run_function_length()
    run_binding_names()


def c_sources():
    return sorted(f for d in ("daemon", "daemon/lua", "test/unit", "test/fuzz", "test/bench",
                              "test/tools")
                  for f in glob.glob(os.path.join(ROOT, d, "*.[ch]")))


MAX_FUNCTION_LINES = 80


def run_function_length():
    """No function in daemon/ longer than MAX_FUNCTION_LINES (clang-format puts a function's
    opening and closing braces alone in column 0, which is what this counts between)."""
    long = []
    for path in glob.glob(os.path.join(ROOT, "daemon", "*.c")) + \
            glob.glob(os.path.join(ROOT, "daemon", "lua", "*.c")):
        lines = open(path).read().split("\n")
        start = None
        for i, line in enumerate(lines):
            if line == "{":
                start = i - 1
                while start > 0 and lines[start][:1] in (" ", "\t"):
                    start -= 1
            elif line == "}" and start is not None:
                if i - start + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{os.path.relpath(path, ROOT)}:{start + 1} ({i - start + 1} lines)")
                start = None
    report(not long, "lint/function-length",
           f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(long))


def run_binding_names():
    """One naming style for Lua bindings: a file's own (static) function registered in a module
    table ({"name", func}) is called l_<something>; shared ones keep their subsystem prefix."""
    bad = []
    for path in glob.glob(os.path.join(ROOT, "daemon", "lua", "*.c")):
        text = open(path).read()
        static = set(re.findall(r"^static int (\w+)\(lua_State \*L\)", text, re.M))
        for func in re.findall(r'\{"\w+",\s*(\w+)\}', text):
            if func in static and not func.startswith("l_"):
                bad.append(f"{os.path.relpath(path, ROOT)}: {func}")
    report(not bad, "lint/binding-names", "Lua bindings not named l_*: " + ", ".join(bad))


def run_clang_format():
    """Every C file as clang-format (with the checked-in .clang-format) would write it."""
    import shutil
    if not shutil.which("clang-format"):
        report(False, "lint/clang-format", "clang-format is not installed (Debian: clang-format)")
        return
    p = subprocess.run(["clang-format", "--dry-run", "--Werror"] + c_sources(), cwd=ROOT,
                       capture_output=True, text=True)
    files = sorted(set(re.findall(r"^(\S+?):\d+:\d+: (?:error|warning)", p.stderr, re.M)))
    report(p.returncode == 0, "lint/clang-format",
           "not clang-format clean (make format fixes it): " + " ".join(
               os.path.relpath(f, ROOT) for f in files) + "\n" + p.stderr[-2000:])


def write_ini(path, start, logfile, extra=""):
    lua_dir = os.path.join(ROOT, "test", "lua")
    with open(path, "w") as f:
        f.write(f"""[node]
name = test
threads = 4
start = {start}
logfile = {logfile}
[lua]
service_path = {lua_dir}/?.lua
lib_path = {lua_dir}/?.lua
{extra}
""")


def run_lua(binary, pattern, timeout):
    scripts = [s for s in sorted(glob.glob(os.path.join(ROOT, "test", "lua", "t_*.lua")))
               if not pattern or re.search(pattern, "lua/" + os.path.basename(s)[:-4])]
    phase("lua", len(scripts), "test services")
    for script in scripts:
        svc = os.path.basename(script)[:-4]
        with tempfile.TemporaryDirectory(prefix="skyjet-lua-") as tmp:
            log = os.path.join(tmp, "node.log")
            ini = os.path.join(tmp, "node.ini")
            write_ini(ini, svc, log, f"[env]\ntest_tmp = {tmp}\n")
            t0 = time.time()
            try:
                p = subprocess.run([binary, ini], cwd=tmp, capture_output=True, text=True,
                                   timeout=timeout)
                rc = p.returncode
                out = p.stdout + p.stderr
            except subprocess.TimeoutExpired as e:
                rc = "timeout"
                out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            text = open(log, errors="replace").read() if os.path.exists(log) else ""
            seen = 0
            for m in re.finditer(r"TEST (PASS|FAIL) (\S+)(.*?)(?=\n\S|\Z)", text, re.S):
                seen += 1
                report(m.group(1) == "PASS", f"lua/{svc}/{m.group(2)}", m.group(3).strip())
            done = "TEST DONE" in text
            sanitizer = re.search(r"(ERROR: (Address|Leak)Sanitizer|runtime error:)", out)
            if not done or seen == 0 or rc != 0 or sanitizer:
                tail = "\n".join(text.splitlines()[-30:])
                report(False, f"lua/{svc}",
                       f"node exit {rc}, done={done}, cases={seen}\n{tail}\n{out[-4000:]}")
            print(f"     lua/{svc}: {time.time() - t0:.1f}s", flush=True)


def run_cluster(binary, pattern, timeout):
    sys.path.insert(0, os.path.join(ROOT, "test", "cluster"))
    tests = []
    for script in sorted(glob.glob(os.path.join(ROOT, "test", "cluster", "test_*.py"))):
        modname = os.path.basename(script)[:-3]
        spec = importlib.util.spec_from_file_location(modname, script)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        tests += [(mod, fname, f"cluster/{modname}/{fname}")
                  for fname in sorted(n for n in dir(mod) if n.startswith("test_"))
                  if not pattern or re.search(pattern, f"cluster/{modname}/{fname}")]
    phase("cluster", len(tests), "tests")
    for mod, fname, name in tests:
        import lib  # test/cluster/lib.py
        t0 = time.time()
        ctx = lib.Context(binary, ROOT, name)
        try:
            getattr(mod, fname)(ctx)
            ctx.close()
            problems = ctx.sanitizer_reports()
            report(not problems, name, problems)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then we go on
            detail = "".join(traceback.format_exception(e))
            ctx.close()
            report(False, name, detail + ctx.log_tails())
        finally:
            ctx.cleanup()
        print(f"     {name}: {time.time() - t0:.1f}s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--bin", default="./skyjet")
    ap.add_argument("--only", default=None, help="regex on test names")
    ap.add_argument("--phase", action="append", choices=["lint", "unit", "lua", "cluster"])
    ap.add_argument("--timeout", type=int, default=180)
    args = ap.parse_args()
    binary = os.path.abspath(os.path.join(ROOT, args.bin))
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    phases = args.phase or ["lint", "unit", "lua", "cluster"]
    print(f"skyjet tests: {binary} ({args.build})", flush=True)
    if "lint" in phases:
        phase("lint", 4, "checks")
        run_lint()
    if "unit" in phases:
        run_unit(os.path.join(ROOT, args.build), args.only)
    if "lua" in phases:
        run_lua(binary, args.only, args.timeout)
    if "cluster" in phases:
        run_cluster(binary, args.only, args.timeout)
    if FAILURES:
        print("failed:\n  " + "\n  ".join(FAILURES))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed", flush=True)
    sys.exit(1 if RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
