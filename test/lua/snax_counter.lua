-- snax_counter: a snax service for the skynet.snax tests (t_snax, cluster/test_lib).
local skynet = require "skynet"
local snax = require "skynet.snax"

local count = 0
local label

function init(name)
	label = name
	snax.enablecluster()
end

function exit(reason)
	skynet.error("snax_counter exit", label, reason)
end

function accept.add(n)
	count = count + n
end

function response.get()
	return count, label
end

function response.slow(ti)
	skynet.sleep(ti)
	return "slow " .. ti
end

function response.fail()
	error "counter failure"
end

function response.whoami()
	local me = snax.self()
	return me.type, me.handle == skynet.self(), SERVICE_NAME
end

function accept.quit(reason)
	snax.exit(reason)
end
