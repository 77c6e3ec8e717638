-- Skynet's legacy module name for skynet.sharemap.
return require "skynet.sharemap"
