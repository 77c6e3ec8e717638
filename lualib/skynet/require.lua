-- skynet.require: a require written in Lua so that a module body may yield (call, sleep) when
-- required from a coroutine; LuaJIT cannot yield across its C `require`. A second coroutine
-- requiring a module that is still loading waits for it; a cycle in one coroutine is an error.
-- skynet.init hooks registered while a module loads inside a coroutine run right after its body.
local M = {}

local loaded = package.loaded
local loading = {} -- name -> { co = loader coroutine, waiters... }
local init_hooks -- set while a coroutine load runs

local function find_loader(name)
	local msgs = {}
	for _, searcher in ipairs(package.loaders) do
		local f, extra = searcher(name)
		if type(f) == "function" then
			return f, extra
		elseif type(f) == "string" then
			msgs[#msgs + 1] = f
		end
	end
	error(string.format("module '%s' not found:%s", name, table.concat(msgs)), 3)
end

local function load_module(name)
	local loader, extra = find_loader(name)
	local r = loader(name, extra)
	if r ~= nil then
		loaded[name] = r
	elseif loaded[name] == nil then
		loaded[name] = true
	end
	return loaded[name]
end

-- Used by skynet.init: while a module is being loaded in a coroutine, hooks are collected here.
function M.init_hook(f)
	if init_hooks then
		init_hooks[#init_hooks + 1] = f
		return true
	end
	return false
end

function M.require(name)
	local m = loaded[name]
	if m ~= nil then
		return m
	end
	local co = coroutine.running()
	if co == nil then -- main chunk: plain require semantics
		return load_module(name)
	end
	local q = loading[name]
	if q then
		if q.co == co then
			error(string.format("circular dependency when require '%s'", name), 2)
		end
		local skynet = loaded.skynet
		q[#q + 1] = co
		skynet.wait(co)
		m = loaded[name]
		if m == nil then
			error(string.format("require %s failed", name), 2)
		end
		return m
	end
	q = { co = co }
	loading[name] = q
	local saved = init_hooks
	init_hooks = {}
	local ok, result = pcall(load_module, name)
	local hooks = init_hooks
	init_hooks = saved
	if ok then
		for _, f in ipairs(hooks) do
			f()
		end
	end
	loading[name] = nil
	local skynet = loaded.skynet
	for _, waiter in ipairs(q) do
		skynet.wakeup(waiter)
	end
	if not ok then
		error(result, 0)
	end
	return result
end

return M
