-- skynet.cluster.nodetable: what a cluster file is and which node tables are valid, in one place.
-- clusterd reads and checks the file with these functions, and `skyjet --test` runs the same ones
-- in its own Lua state (daemon/preflight.c), so the two cannot disagree. Pure Lua: no skynet API.
local nodetable = {}

-- Run a cluster file in an empty environment; returns the table of the names it set.
function nodetable.read(path)
	local f, err = io.open(path)
	if not f then
		error("cannot read cluster file: " .. tostring(err), 0)
	end
	local source = f:read "*a"
	f:close()
	local chunk, cerr = loadstring(source, "@" .. path)
	if not chunk then
		error(cerr, 0) -- "path:line: why"
	end
	local env = {}
	setfenv(chunk, env)
	chunk()
	return env
end

-- The problems of a node table, one string each (empty when it is valid). Keys starting "__"
-- are options, not nodes; a node's address is "host:port", or false for a node that is down.
function nodetable.problems(tbl)
	if type(tbl) ~= "table" then
		return { "cluster table expected, got " .. type(tbl) }
	end
	local bad = {}
	for name, address in pairs(tbl) do
		if type(name) ~= "string" then
			bad[#bad + 1] = "cluster table: node names must be strings, got " .. tostring(name)
		elseif name:sub(1, 2) ~= "__" then
			if address ~= false and (type(address) ~= "string" or not address:match "^.+:%d+$") then
				bad[#bad + 1] = string.format("cluster table: node %s has address %s; expected "
					.. "\"host:port\" or false", name, tostring(address))
			end
			if name:find "[.@]" then
				bad[#bad + 1] = "cluster table: node name " .. name .. " may not contain '.' or '@'"
			end
		end
	end
	table.sort(bad)
	return bad
end

return nodetable
