-- skynet.socketchannel in session mode and order mode, including drops and reconnects.
local skynet = require "skynet"
local socket = require "skynet.socket"
local sc = require "skynet.socketchannel"
local T = require "testlib"

local function request_frame(session, cmd)
	local body = string.char(math.floor(session / 2 ^ 24) % 256, math.floor(session / 2 ^ 16) % 256,
		math.floor(session / 256) % 256, session % 256) .. cmd
	return string.char(math.floor(#body / 256), #body % 256) .. body
end

local function response(sock)
	local len = socket.header(sock:read(2))
	local body = sock:read(len)
	local flag = body:byte(5)
	return socket.header(body:sub(1, 4)), flag ~= 0, body:sub(6), flag == 2
end

local next_session = 0
local function req(channel, cmd)
	next_session = next_session + 1
	return channel:request(request_frame(next_session, cmd), next_session)
end

local server, port
local function session_channel(extra)
	local desc = { host = "127.0.0.1", port = port, response = response, nodelay = true }
	for k, v in pairs(extra or {}) do
		desc[k] = v
	end
	return sc.channel(desc)
end

T.case("session_mode_matches_out_of_order_replies", function()
	local c = session_channel()
	local results = {}
	skynet.fork(function()
		results.first = req(c, "later:first")
	end)
	skynet.sleep(1)
	results.second = req(c, "echo:second") -- answered before "first"
	T.wait_until(function()
		return results.first
	end, 5)
	T.eq(results.first, "first")
	T.eq(results.second, "second")
	c:close()
end)

T.case("session_mode_assembles_multipart_replies", function()
	local c = session_channel()
	local parts = req(c, "parts:3")
	T.same(parts, { "p1", "p2", "p3" })
	c:close()
end)

T.case("session_mode_error_reply_raises_its_data", function()
	local c = session_channel()
	T.raises(req, "request failed on purpose", c, "fail")
	T.eq(req(c, "echo:still up"), "still up", "the connection stays up")
	c:close()
end)

T.case("session_mode_drops_unknown_sessions", function()
	local c = session_channel()
	T.eq(req(c, "stray"), "after stray")
	c:close()
end)

T.case("drop_while_hundred_requests_wait_fails_all_then_reconnects", function()
	local c = session_channel()
	T.eq(req(c, "echo:warm"), "warm")
	local before = skynet.call(server, "lua", "accepted")
	local failures, n = 0, 100
	local finished = 0
	for _ = 1, n do
		skynet.fork(function()
			local ok, err = pcall(req, c, "hold")
			if not ok and err == sc.error then
				failures = failures + 1
			end
			finished = finished + 1
		end)
	end
	skynet.sleep(5)
	T.eq(c:pending(), n, "all waiting")
	skynet.call(server, "lua", "drop")
	T.wait_until(function()
		return finished == n
	end, 5, "every waiting request to fail")
	T.eq(failures, n)
	T.eq(req(c, "echo:again"), "again", "the next request reconnects")
	T.eq(skynet.call(server, "lua", "accepted"), before + 1)
	c:close()
end)

T.case("closed_channel_refuses_requests_until_connect", function()
	local c = session_channel()
	T.eq(req(c, "echo:a"), "a")
	c:close()
	T.raises(req, "assertion failed", c, "echo:b")
	c:connect(true)
	T.eq(req(c, "echo:c"), "c")
	c:close()
end)

T.case("connect_failure_raises_socket_error_and_backup_is_used", function()
	local l, _, dead = socket.listen("127.0.0.1", 0)
	socket.close(l)
	skynet.sleep(1)
	local c = sc.channel { host = "127.0.0.1", port = dead, response = response }
	local ok, err = pcall(req, c, "echo:x")
	T.eq(ok, false)
	T.eq(err, sc.error)
	T.eq(tostring(sc.error), "[Error: socket]")
	local b = sc.channel {
		host = "127.0.0.1",
		port = dead,
		backup = { { host = "127.0.0.1", port = port } },
		response = response,
	}
	T.eq(req(b, "echo:via backup"), "via backup")
	b:close()
end)

T.case("auth_runs_on_every_connect", function()
	local auths = 0
	local c = session_channel {
		auth = function(channel)
			auths = auths + 1
			T.eq(req(channel, "echo:auth"), "auth")
		end,
	}
	T.eq(req(c, "echo:1"), "1")
	skynet.call(server, "lua", "drop")
	skynet.sleep(2)
	T.eq(req(c, "echo:2"), "2")
	T.eq(auths, 2)
	c:close()
end)

T.case("order_mode_reads_replies_in_request_order", function()
	local echo = skynet.newservice("echo_server")
	local c = sc.channel { host = "127.0.0.1", port = skynet.call(echo, "lua", "port") }
	local function readline(sock)
		return true, sock:readline()
	end
	local got = {}
	local done = 0
	for i = 1, 20 do
		skynet.fork(function()
			got[i] = c:request("line " .. i .. "\n", readline)
			done = done + 1
		end)
	end
	T.wait_until(function()
		return done == 20
	end, 5)
	for i = 1, 20 do
		T.eq(got[i], "line " .. i)
	end
	-- a reader that wants several parts
	local parts = c:request("a\nb\n", function(sock)
		local line = sock:readline()
		return true, line, line == "a"
	end)
	T.same(parts, { "a", "b" })
	c:close()
	skynet.kill(echo)
end)

T.case("order_mode_drop_fails_waiters", function()
	local c = session_channel()
	c:close()
	local holder = skynet.newservice("chan_server")
	local hport = skynet.call(holder, "lua", "port")
	local o = sc.channel { host = "127.0.0.1", port = hport }
	local errors = 0
	local finished = 0
	for i = 1, 10 do
		skynet.fork(function()
			local ok = pcall(o.request, o, request_frame(i, "hold"), function(sock)
				return true, sock:read(2)
			end)
			if not ok then
				errors = errors + 1
			end
			finished = finished + 1
		end)
	end
	skynet.sleep(5)
	skynet.call(holder, "lua", "drop")
	T.wait_until(function()
		return finished == 10
	end, 5)
	T.eq(errors, 10)
	o:close()
	skynet.kill(holder)
end)

skynet.start(function()
	server = skynet.newservice("chan_server")
	port = skynet.call(server, "lua", "port")
	T.run()
end)
