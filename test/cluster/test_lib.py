"""Skynet libraries across two skyjet processes: cluster.snax (a snax service on another node,
by address and by name) with the [lua] snax search path."""
import os

from lib import check, free_port


def snax_pair(ctx, callee_cluster=""):
    p1, p2 = free_port(), free_port()
    cf = ctx.cluster_file({"n1": p1, "n2": p2})
    a = ctx.ctl_node("n1", cf)
    snax_path = os.path.join(ctx.root, "test", "lua", "?.lua")
    b = ctx.ctl_node("n2", cf, cluster=callee_cluster, lua=f"snax = {snax_path}")
    handle, path = b.eval("""
        local snax = require "skynet.snax"
        local c = snax.uniqueservice("snax_counter", "remote")
        cluster.open("n2")
        return c.handle, skynet.getenv "snax"
    """)
    check(path == snax_path, f"getenv snax: {path}")
    return a, b, handle


def test_cluster_snax_by_address_with_the_default_exposure(ctx):
    a, b, handle = snax_pair(ctx)
    r = a.eval("""
        local c = cluster.snax("n2", "snax_counter", %d)
        c.post.add(4)
        c.post.add(5)
        local n, label = c.req.get()
        local ok, err = pcall(c.req.fail)
        return n, label, tostring(c):match("^%%[snax_counter:"), ok, err
    """ % handle)
    check(r[:4] == [9, "remote", "[snax_counter:", False], r)
    check("call failed" in r[4], r[4])


def test_cluster_snax_by_name_through_the_remote_service_manager(ctx):
    a, b, handle = snax_pair(ctx, callee_cluster="expose = all")
    r = a.eval("""
        local c = cluster.snax("n2", "snax_counter")
        c.post.add(2)
        return c.req.get(), c.req.slow(1)
    """)
    check(r == [2, "slow 1"], r)
    check(b.eval1("""
        local snax = require "skynet.snax"
        return snax.queryservice("snax_counter").handle
    """) == handle, "the same unique service")
