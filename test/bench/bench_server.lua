-- bench_server: the start service of the server node of the cluster workloads. Starts one
-- bench_echo, registers it as "@echo", opens this node's cluster port (its address in the
-- cluster file) and logs "BENCH SERVER ready"; then serves until the node is stopped.
local skynet = require "skynet"
local cluster = require "skynet.cluster"

skynet.start(function()
	cluster.register("echo", skynet.newservice "bench_echo")
	cluster.open(skynet.getenv "nodename")
	skynet.error "BENCH SERVER ready"
end)
