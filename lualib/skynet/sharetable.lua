-- skynet.sharetable: named read-only tables built once per node (from a table, Lua source or a
-- file) and shared by every service through skynet.sharetree. A table from query() is pinned to
-- the version it was made from; sharetable.update(name) moves this service's tables of that name
-- to the newest version, in place, so every reference to them sees the new data.
local core = require "skynet.sharetree"

local SPACE = "sharetable"
local sharetable = {}
local roots = {} -- name -> weak set of the root tables this service got from query

local function publish(name, f, ...)
	local t = f(...)
	if type(t) ~= "table" then
		error(string.format("sharetable %s: the source returned %s, not a table", name, type(t)), 3)
	end
	core.publish(SPACE, name, t, "replace")
end

local function compile(f, err)
	if not f then
		error(err, 3)
	end
	return f
end

local function env()
	return setmetatable({}, { __index = _G })
end

function sharetable.loadfile(filename, ...)
	publish(filename, compile(loadfile(filename, "t", env())), ...)
end

function sharetable.loadstring(name, source, ...)
	publish(name, compile(load(source, "=" .. name, "t", env())), ...)
end

function sharetable.loadtable(name, tbl)
	assert(type(tbl) == "table", "sharetable.loadtable needs a table")
	core.publish(SPACE, name, tbl, "replace")
end

function sharetable.query(name)
	local t = core.query(SPACE, name, false)
	if t then
		local set = roots[name]
		if not set then
			set = setmetatable({}, { __mode = "k" })
			roots[name] = set
		end
		set[t] = true
	end
	return t
end

-- names: a list of names, or nil for every table loaded on this node.
function sharetable.queryall(names)
	local result = {}
	for _, name in ipairs(names or core.names(SPACE)) do
		result[name] = sharetable.query(name)
	end
	return result
end

function sharetable.update(...)
	for i = 1, select("#", ...) do
		local set = roots[select(i, ...)]
		if set then
			for t in pairs(set) do
				core.refresh(t)
			end
		end
	end
end

return sharetable
