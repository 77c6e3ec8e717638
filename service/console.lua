-- console: Skynet's stdin console. Each line read from the node's standard input launches a
-- service: "name arg..." -> skynet.newservice(name, arg...), "snax name arg..." -> a snax service.
-- stdin is watched with poll(2) through the FFI every 50 ms, so no worker thread ever blocks on
-- it; at end of input (or when stdin is /dev/null or closed) the console stops reading.
local skynet = require "skynet"
local ffi = require "ffi"

ffi.cdef [[
struct skyjet_pollfd { int fd; short events; short revents; };
int poll(struct skyjet_pollfd *fds, unsigned long nfds, int timeout);
long read(int fd, void *buf, unsigned long count);
]]

local POLLIN, POLL_IDLE = 1, 5 -- poll(2)'s POLLIN; centiseconds between polls
local STDIN = 0

local function launch(line)
	local words = {}
	for w in string.gmatch(line, "%S+") do
		words[#words + 1] = w
	end
	if #words == 0 then
		return
	end
	local ok, err
	if words[1] == "snax" then
		local found, snax = pcall(require, "skynet.snax")
		if not found then
			skynet.error("console: snax is not available: " .. tostring(snax))
			return
		end
		ok, err = pcall(snax.newservice, unpack(words, 2))
	else
		ok, err = pcall(skynet.newservice, unpack(words))
	end
	if not ok then
		skynet.error("console: " .. line .. ": " .. tostring(err))
	end
end

-- Read what stdin has; returns the bytes, "" when nothing is waiting, nil at end of input.
local pfd = ffi.new("struct skyjet_pollfd[1]")
local chunk = ffi.new("char[4096]")
local function read_ready()
	pfd[0].fd, pfd[0].events, pfd[0].revents = STDIN, POLLIN, 0
	if ffi.C.poll(pfd, 1, 0) <= 0 then
		return ""
	end
	local n = tonumber(ffi.C.read(STDIN, chunk, 4096))
	if n <= 0 then
		return nil
	end
	return ffi.string(chunk, n)
end

local function main_loop()
	local pending = ""
	while true do
		local data = read_ready()
		if not data then
			if pending ~= "" then
				launch(pending)
			end
			return
		end
		pending = pending .. data
		for line in string.gmatch(pending, "([^\n]*)\n") do
			launch((string.gsub(line, "\r$", "")))
		end
		pending = string.match(pending, "[^\n]*$")
		skynet.sleep(POLL_IDLE)
	end
end

skynet.start(function()
	require("skyjet").internal() -- never callable from other nodes
	skynet.fork(main_loop)
end)
