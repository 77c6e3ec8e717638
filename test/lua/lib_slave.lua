-- lib_slave: answers "ping"(ticks, text) after sleeping, raises on "fail", exits on "exit"
-- (skynet.request/select and skynet.queue tests).
local skynet = require "skynet"
local T = require "testlib"

local CMD = {}

function CMD.ping(ti, text)
	skynet.sleep(ti)
	return text
end

function CMD.fail()
	error "slave failure"
end

function CMD.exit()
	skynet.exit()
end

T.serve(CMD)
