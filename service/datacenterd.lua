-- datacenterd (unique, node-internal): the tree behind skynet.datacenter. Waiters sit in a
-- second tree keyed by the same paths; setting a value where there was none answers the
-- waiters of exactly that path, and fails those waiting on a prefix of it (they waited for a
-- value where a branch now grows). Single-threaded like every service: no locks.
local skynet = require "skynet"

local select = select
local values = {}
local waiters = {} -- node = { list = {response...} | nil, sub = { key -> node } }

local function lookup(t, ...)
	for i = 1, select("#", ...) do
		if type(t) ~= "table" then
			return nil
		end
		t = t[(select(i, ...))]
	end
	return t
end

local CMD = {}

function CMD.QUERY(...)
	assert(select("#", ...) > 0, "datacenter: a key expected")
	return lookup(values, ...)
end

local function answer(list, ok, ...)
	for _, resp in ipairs(list) do
		resp(ok, ...)
	end
end

-- walk the waiters tree along keys k1..kn: fail the waiters of each proper prefix, answer those
-- of the whole path with value
local function wake(n, value, ...)
	local node = waiters
	for i = 1, n do
		local key = select(i, ...)
		node = node.sub and node.sub[key]
		if node == nil then
			return
		end
		local list = node.list
		if list then
			node.list = nil
			if i == n then
				answer(list, true, value)
			else
				local path = table.concat({ ... }, ".", 1, i)
				answer(list, false, "datacenter: " .. path .. " is a branch, not a value")
			end
		end
	end
end

-- UPDATE(k1, ..., kn, value): returns the old value
function CMD.UPDATE(...)
	local n = select("#", ...) - 1
	assert(n > 0, "datacenter: a key and a value expected")
	local t = values
	for i = 1, n - 1 do
		local key = select(i, ...)
		if type(t[key]) ~= "table" then
			t[key] = {}
		end
		t = t[key]
	end
	local key, value = select(n, ...)
	local old = t[key]
	t[key] = value
	if old == nil and value ~= nil then
		wake(n, value, ...)
	end
	return old
end

local function park(...)
	local node = waiters
	for i = 1, select("#", ...) do
		local key = select(i, ...)
		node.sub = node.sub or {}
		local child = node.sub[key]
		if not child then
			child = {}
			node.sub[key] = child
		end
		node = child
	end
	node.list = node.list or {}
	node.list[#node.list + 1] = skynet.response()
end

skynet.start(function()
	require("skyjet").internal()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd == "WAIT" then
			local v = CMD.QUERY(...)
			if v == nil then
				return park(...)
			end
			return skynet.retpack(v)
		end
		local f = CMD[cmd]
		if not f then
			error("datacenterd: unknown command " .. tostring(cmd))
		end
		skynet.retpack(f(...))
	end)
end)
