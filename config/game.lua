-- The node table of the game1/game2/game3 example (Skynet's clustername.lua format):
-- `name = "host:port"`, `name = false` for a node that is down (its calls fail at once).
-- Options start with "__": __nowaiting = true makes calls to a node this table does not name
-- fail at once instead of waiting for a reload to add it.
--
--   scripts/cluster up config/game.lua     game1 from config/game1.ini, game2 and game3 generated
--   scripts/cluster status config/game.lua
--   scripts/cluster down config/game.lua
--
-- Edit it and send SIGHUP (or type `reload` in a node's console): only what changed is touched.
game1 = "127.0.0.1:7301"
game2 = "127.0.0.1:7302"
game3 = "127.0.0.1:7303"
__nowaiting = true
