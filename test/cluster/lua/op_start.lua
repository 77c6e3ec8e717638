-- op_start: a start service for the operations tests (test_operate.py). Argument: a mode.
--   raise                 raises in its start function
--   listen PORT TICKS     sleeps TICKS (1/100 s), then listens on 127.0.0.1:PORT and stays up
--   cluster PORT          cluster.open on 127.0.0.1:PORT (the test keeps that port taken)
--   print                 prints a line, logs PRINTED, then stays up until SIGTERM
--   lpeg                  matches with Debian's lpeg (a Lua C module), logs LPEG <result>
local skynet = require "skynet"
local socket = require "skynet.socket"

local mode, a1, a2 = ...

skynet.start(function()
	if mode == "raise" then
		error("op_start raised on purpose")
	elseif mode == "listen" then
		skynet.sleep(tonumber(a2))
		local id = socket.listen("127.0.0.1", tonumber(a1))
		socket.start(id, function(fd)
			socket.close(fd)
		end)
	elseif mode == "cluster" then
		require("skynet.cluster").open("127.0.0.1:" .. a1)
	elseif mode == "lpeg" then
		local lpeg = require "lpeg"
		local digits = lpeg.C(lpeg.R "09" ^ 1)
		skynet.error("LPEG " .. tostring(digits:match "2026-12"))
		skynet.abort()
	elseif mode == "print" then
		print("printed", 42, "first line\nsecond line")
		skynet.error("PRINTED")
	end
end)
