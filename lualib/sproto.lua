-- sproto: Skynet's sproto library over the C core `sproto.core` (daemon/lua/sproto.c).
--   sproto.new(bin) / sproto.sharenew(cobj) / sproto.parse(text): a schema object;
--   sp:encode/decode/pencode/pdecode(typename, ...), sp:default(name [, "REQUEST"|"RESPONSE"]),
--   sp:exist_type, sp:exist_proto, sp:queryproto, sp:request_encode/decode, response_encode/decode;
--   sproto.pack / sproto.unpack (0-packing);
--   sp:host([package]) -> host; host:dispatch(msg [, sz]) and host:attach(sp) for the RPC layer
--   (a message is a `package` header { type, session, ... } followed by the request/response).
-- LuaJIT runs no __gc on tables, so a schema from sproto.new is freed through a userdata proxy.
local core = require "sproto.core"

local sproto = {}
local host = {}

local weak = { __mode = "kv" }
local sproto_mt = { __index = sproto }
local host_mt = { __index = host }

local function wrap(cobj)
	return setmetatable({
		__cobj = cobj,
		__tcache = setmetatable({}, weak),
		__pcache = setmetatable({}, weak),
	}, sproto_mt)
end

-- A schema this object owns: released when the object is collected.
function sproto.new(bin)
	local cobj = assert(core.newproto(bin))
	local self = wrap(cobj)
	local proxy = newproxy(true)
	getmetatable(proxy).__gc = function()
		core.deleteproto(cobj)
	end
	self.__gcproxy = proxy
	return self
end

-- A schema shared through sprotoloader: never released.
function sproto.sharenew(cobj)
	return wrap(cobj)
end

function sproto.parse(text)
	local parser = require "sprotoparser"
	return sproto.new(parser.parse(text))
end

local function querytype(self, typename)
	local t = self.__tcache[typename]
	if not t then
		t = assert(core.querytype(self.__cobj, typename), "type not found")
		self.__tcache[typename] = t
	end
	return t
end

local function queryproto(self, name)
	local p = self.__pcache[name]
	if not p then
		local tag, req, resp = core.protocol(self.__cobj, name)
		assert(tag, name .. " not found")
		if tonumber(name) then
			name, tag = tag, name
		end
		p = { request = req, response = resp, name = name, tag = tag }
		self.__pcache[name] = p
		self.__pcache[tag] = p
	end
	return p
end

function sproto:host(packagename)
	return setmetatable({
		__proto = self,
		__package = assert(core.querytype(self.__cobj, packagename or "package"), "type package not found"),
		__session = {},
	}, host_mt)
end

function sproto:exist_type(typename)
	return self.__tcache[typename] ~= nil or core.querytype(self.__cobj, typename) ~= nil
end

function sproto:exist_proto(name)
	return self.__pcache[name] ~= nil or core.protocol(self.__cobj, name) ~= nil
end

function sproto:queryproto(name)
	return queryproto(self, name)
end

function sproto:encode(typename, tbl)
	return core.encode(querytype(self, typename), tbl)
end

function sproto:decode(typename, ...)
	return core.decode(querytype(self, typename), ...)
end

function sproto:pencode(typename, tbl)
	return core.pack(core.encode(querytype(self, typename), tbl))
end

function sproto:pdecode(typename, ...)
	return core.decode(querytype(self, typename), core.unpack(...))
end

function sproto:request_encode(name, tbl)
	local p = queryproto(self, name)
	if p.request then
		return core.encode(p.request, tbl), p.tag
	end
	return "", p.tag
end

function sproto:response_encode(name, tbl)
	local p = queryproto(self, name)
	if p.response then
		return core.encode(p.response, tbl)
	end
	return ""
end

function sproto:request_decode(name, ...)
	local p = queryproto(self, name)
	if p.request then
		return core.decode(p.request, ...), p.name
	end
	return nil, p.name
end

function sproto:response_decode(name, ...)
	local p = queryproto(self, name)
	if p.response then
		return core.decode(p.response, ...)
	end
end

sproto.pack = core.pack
sproto.unpack = core.unpack

-- default(typename): a table of zero values; default(protoname, "REQUEST"|"RESPONSE") for the
-- protocol's message (nil when it has none).
function sproto:default(name, kind)
	if kind == nil then
		return core.default(querytype(self, name))
	end
	local p = queryproto(self, name)
	if kind == "REQUEST" then
		return p.request and core.default(p.request) or nil
	elseif kind == "RESPONSE" then
		return p.response and core.default(p.response) or nil
	end
	error "Invalid type"
end

-- ---- RPC ----------------------------------------------------------------------------------

local header = {} -- reused for every header encoded or decoded here

local function responder(self, response, session)
	return function(args, ud)
		header.type, header.session, header.ud = nil, session, ud
		local h = core.encode(self.__package, header)
		if response then
			return core.pack(h .. core.encode(response, args))
		end
		return core.pack(h)
	end
end

-- dispatch(msg [, sz]) -> "REQUEST", name, args, response function | nil, ud
--                       | "RESPONSE", session, args, ud
function host:dispatch(...)
	local bin = core.unpack(...)
	header.type, header.session, header.ud = nil, nil, nil
	local _, size = core.decode(self.__package, bin, header)
	local content = bin:sub(size + 1)
	local session, ud = header.session, header.ud
	if header.type then
		local p = queryproto(self.__proto, header.type)
		local args = p.request and core.decode(p.request, content) or nil
		if session then
			return "REQUEST", p.name, args, responder(self, p.response, session), ud
		end
		return "REQUEST", p.name, args, nil, ud
	end
	assert(session, "session not found")
	local response = assert(self.__session[session], "Unknown session")
	self.__session[session] = nil
	if response == true then
		return "RESPONSE", session, nil, ud
	end
	return "RESPONSE", session, (core.decode(response, content)), ud
end

-- attach(sp) -> function(name, args, session, ud): a packed request of sp's protocol `name`;
-- with a session, the reply is expected (dispatch matches it by session).
function host:attach(sp)
	return function(name, args, session, ud)
		local p = queryproto(sp, name)
		header.type, header.session, header.ud = p.tag, session, ud
		local h = core.encode(self.__package, header)
		if session then
			self.__session[session] = p.response or true
		end
		if args and p.request then
			return core.pack(h .. core.encode(p.request, args))
		end
		return core.pack(h)
	end
end

return sproto
