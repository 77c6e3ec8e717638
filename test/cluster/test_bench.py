"""The benchmark suite (scripts/bench, test/bench/) in a smoke run: every workload runs once with
tiny counts on real nodes of the binary under test and reports a positive value. Speed is never
asserted: this only proves that the suite works, so that a real run on a quiet machine will."""
import glob
import json
import os
import re
import subprocess
import sys
import time

from lib import check

# Every result the suite reports, one per workload variant (test/bench/README.md).
NAMES = ["loopback_pingpong", "loopback_pingpong_64", "loopback_bulk", "socket_echo_1",
         "socket_echo_64", "socket_bulk", "local_call_1x1", "local_call_1x64", "local_call_2x1",
         "local_call_4x16", "local_send", "cluster_call_1", "cluster_call_16", "cluster_call_256",
         "cluster_proxy_16", "cluster_send", "cluster_large", "cluster_auth_1", "cluster_auth_16",
         "rss_per_service", "spawn_1", "spawn_16", "redis_get_1", "redis_get_64",
         "redis_get_64_shared", "redis_pipeline",
         "redis_benchmark_get_1", "redis_benchmark_get_64", "redis_benchmark_pipeline",
         "mysql_select_1", "mysql_select_16", "mysqlslap_select_1", "mysqlslap_select_16",
         "share_table_kib", "share_rss_copy"]


def test_smoke_run_reports_a_positive_value_for_every_workload(ctx):
    p = subprocess.run([sys.executable, os.path.join(ctx.root, "scripts", "bench"), "--smoke",
                        "--runs", "1", "--bin", ctx.binary, "--out", ctx.tmp],
                       cwd=ctx.tmp, capture_output=True, text=True, timeout=240)
    output = p.stdout + p.stderr
    check(p.returncode == 0, f"scripts/bench --smoke exited with {p.returncode}\n{output[-6000:]}")
    files = glob.glob(os.path.join(ctx.tmp, "bench-*.json"))
    check(len(files) == 1, f"one JSON result expected in {ctx.tmp}, found {files}\n{output[-3000:]}")
    with open(files[0]) as f:
        result = json.load(f)
    check(result["failures"] == [], f"failed runs: {result['failures']}")
    for name in NAMES:
        row = result["results"].get(name)
        check(row is not None, f"no result for {name}\n{output[-3000:]}")
        check(row["median"] > 0, f"{name}: value {row['median']} is not positive")
        check(name in p.stdout, f"{name} missing from the printed table\n{p.stdout}")
    for name in ("cluster_call_1", "cluster_call_256", "cluster_large", "loopback_pingpong"):
        row = result["results"][name]
        check(0 < row["p50_us_median"] <= row["p90_us_median"] <= row["p99_us_median"]
              <= row["p999_us_median"], f"{name}: p50/p90/p99/p99.9 {row}")


def test_each_run_draws_a_chart_beside_the_previous_run(ctx):
    def bench():
        p = subprocess.run([sys.executable, os.path.join(ctx.root, "scripts", "bench"), "--smoke",
                            "--runs", "1", "--bin", ctx.binary, "--out", ctx.tmp, "local_send"],
                           cwd=ctx.tmp, capture_output=True, text=True, timeout=240)
        check(p.returncode == 0, p.stdout + p.stderr)
        m = re.search(r"^chart: (\S+\.svg)", p.stdout, re.M)
        check(m, p.stdout + p.stderr)
        with open(m.group(1)) as f:
            return f.read(), p.stdout
    svg, _ = bench()
    check("<svg" in svg and "local_send (msgs/s)" in svg and "previous: none" in svg, svg[:2000])
    time.sleep(1.1)  # result files are named by the second
    svg, out = bench()
    check("beside" in out and "previous: 20" in svg and "current: 20" in svg, out + svg[:2000])
