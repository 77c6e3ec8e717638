-- Skynet's legacy module name for skynet.sharedata.
return require "skynet.sharedata"
