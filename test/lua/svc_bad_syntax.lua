-- svc_bad_syntax: does not compile (for the loader-error test).
local x = = 1
