-- api_mod_yield: a module whose body yields (skynet.sleep) while it loads (t_api).
local skynet = require "skynet"
skynet.sleep(1)
return { loaded_at = skynet.now() }
