-- A service of t_sproto: uses a schema another service put in a sprotoloader slot.
local T = require "testlib"
local loader = require "sprotoloader"

local CMD = {}

function CMD.pencode(index, typename, value)
	return loader.load(index):pencode(typename, value)
end

function CMD.pointer(index)
	return tostring(loader.load(index).__cobj)
end

T.serve(CMD)
