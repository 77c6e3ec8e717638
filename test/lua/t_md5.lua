-- md5: every known answer of test/vectors/md5.txt (made by Skynet's md5 module), HMAC-MD5 against
-- RFC 2202, and bad arguments.
local skynet = require "skynet"
local md5 = require "md5"
local T = require "testlib"
local V = require "vectors"

T.case("every_md5_vector_matches_skynet", function()
	-- a description ends with how Skynet printed the result, which is not part of the expression
	local n = V.check_expressions("md5.txt", { md5 = md5 }, function(expr)
		return (expr:gsub(" as text %[.*$", ""))
	end)
	T.eq(n, 20, "vector count")
end)

T.case("hmacmd5_is_rfc2202_hmac_md5_in_hex_data_first", function()
	T.eq(md5.hmacmd5("Hi There", string.rep("\11", 16)), "9294727a3638bb1c13f48ef8158bfc9d")
	T.eq(md5.hmacmd5("what do ya want for nothing?", "Jefe"), "750c783e6ab0b503eaa86e310a5db738")
	T.eq(md5.hmacmd5("Test Using Larger Than Block-Size Key - Hash Key First", string.rep("\170", 80)),
		"6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd")
end)

T.case("sumhexa_is_the_hex_of_sum", function()
	local s = string.rep("\0\255abc", 1000)
	T.eq(md5.sumhexa(s), V.hex(md5.sum(s)))
	T.eq(md5.exor("\1\2", "\3\3"), "\2\1")
end)

T.case("bad_arguments_raise", function()
	T.raises(md5.sum, "bad argument #1", nil)
	T.raises(md5.hmacmd5, "bad argument #2", "data")
	T.raises(md5.exor, "lengths must be equal", "ab", "a")
end)

skynet.start(T.run)
