-- bench_sproto_agent: an agent of the sproto workload's memory measure. "shared": it holds the
-- node's schema from sprotoloader slot 1; "own": it parses the schema text itself.
local skynet = require "skynet"
local sproto = require "sproto"
local loader = require "sprotoloader"

local mode = ...
local sp -- held for the agent's whole life, as a game agent would

skynet.start(function()
	if mode == "shared" then
		sp = loader.load(1)
	else
		sp = sproto.new(require("sprotoparser").parse(require("sproto_schema").text))
	end
	assert(sp:exist_proto("op40"))
	collectgarbage()
	skynet.dispatch("lua", function(_, _, cmd)
		assert(cmd == "exit")
		skynet.retpack(true)
		skynet.exit()
	end)
end)
