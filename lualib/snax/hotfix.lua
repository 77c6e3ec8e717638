-- snax.hotfix: replaces methods of a running snax service with those of a patch source. A
-- local the patch declares without a value (`local i`) is joined to the running code's local
-- of the same name, so the patch shares the service's state; `hotfix(...)` in the patch runs
-- once after the swap and its results are returned. Returns pcall-style (ok, results | error).
local interface = require "snax.interface"

-- visit(index, name, value) for each upvalue of f; a function already in `seen` is skipped, so
-- the walks below visit each function of a closure graph once
local function each_upvalue(f, seen, visit)
	if seen[f] then
		return
	end
	seen[f] = true
	local index = 1
	local name, value = debug.getupvalue(f, index)
	while name ~= nil do
		visit(index, name, value)
		index = index + 1
		name, value = debug.getupvalue(f, index)
	end
end

-- name -> { f, index, id } for every upvalue reachable from the service's methods (through
-- functions of the service file only: those share its environment `env`)
local function collect(f, env, seen, locals)
	each_upvalue(f, seen, function(i, name, value)
		local id = debug.upvalueid(f, i)
		local known = locals[name]
		if known and known.id ~= id then
			error(string.format("ambiguity local value %s", name))
		elseif not known then
			locals[name] = { f = f, index = i, id = id }
			if type(value) == "function" and getfenv(value) == env then
				collect(value, env, seen, locals)
			end
		end
	end)
end

-- a patch's upvalue without a value is joined to the running code's local of the same name
local function join(f, locals, seen)
	each_upvalue(f, seen, function(i, name, value)
		if value == nil then
			local old = locals[name]
			if old then
				debug.upvaluejoin(f, i, old.f, old.index)
			end
		elseif type(value) == "function" then
			join(value, locals, seen)
		end
	end)
end

local function find(methods, group, name)
	for _, m in ipairs(methods) do
		if m[2] == group and m[3] == name then
			return m
		end
	end
end

local function inject(methods, env, source, ...)
	local patch = interface("patch", env, function()
		return loadstring(source, "=patch")
	end)
	local locals, seen = {}, {}
	for _, m in ipairs(methods) do
		if m[4] then
			collect(m[4], env, seen, locals)
		end
	end
	local joined = {}
	for _, p in ipairs(patch) do
		local f = p[4]
		if f then
			local m = find(methods, p[2], p[3])
			if not m then
				error(string.format("Patch mismatch %s.%s", p[2], p[3]))
			end
			join(f, locals, joined)
			m[4] = f
		end
	end
	local hotfix = find(patch, "system", "hotfix")[4]
	if hotfix then
		return hotfix(...)
	end
end

return function(methods, env, source, ...)
	return pcall(inject, methods, env, source, ...)
end
