-- skynet.crypt: every known answer of test/vectors/crypt.txt (made by Skynet's own module),
-- round trips, and malformed input raising Skynet's errors.
local skynet = require "skynet"
local crypt = require "skynet.crypt"
local T = require "testlib"
local V = require "vectors"

T.case("every_crypt_vector_matches_skynet", function()
	T.eq(V.check_expressions("crypt.txt", { crypt = crypt }), 132, "vector count")
end)

T.case("crypt_and_skynet_crypt_are_one_module", function()
	T.eq(require "crypt", crypt)
	T.eq(crypt.padding.iso7816_4, 0)
	T.eq(crypt.padding.pkcs7, 1)
end)

T.case("des_round_trips_both_paddings", function()
	for _, mode in ipairs({ crypt.padding.iso7816_4, crypt.padding.pkcs7 }) do
		for len = 0, 300, 7 do
			local text = string.rep("\0\128x", 100):sub(1, len)
			local c = crypt.desencode("12345678", text, mode)
			T.eq(#c, len - len % 8 + 8, "cipher length")
			T.eq(crypt.desdecode("12345678", c, mode), text)
		end
	end
	-- no padding argument means iso7816_4, as in Skynet
	T.eq(crypt.base64encode(crypt.desencode("12345678", "hello world")), "KNugLrX23UcGtcVlk9y+LA==")
end)

T.case("des_rejects_bad_keys_lengths_and_padding", function()
	T.raises(crypt.desencode, "Invalid key size 7, need 8 bytes", "1234567", "x")
	T.raises(crypt.desdecode, "Invalid key size 9, need 8 bytes", "123456789", "x")
	T.raises(crypt.desdecode, "Invalid des crypt text length 7", "12345678", "1234567")
	T.raises(crypt.desdecode, "Invalid des crypt text length 0", "12345678", "")
	T.raises(crypt.desencode, "Invalid padding mode 5", "12345678", "x", 5)
	-- a pkcs7 text read as iso7816_4 (and the reverse) has malformed padding
	local p = crypt.desencode("12345678", "hello", crypt.padding.pkcs7)
	T.raises(crypt.desdecode, "Invalid des crypt text", "12345678", p, crypt.padding.iso7816_4)
	local i = crypt.desencode("12345678", "hello", crypt.padding.iso7816_4)
	T.raises(crypt.desdecode, "Invalid des crypt text", "12345678", i, crypt.padding.pkcs7)
	-- the wrong key gives garbage that fails the padding check
	T.raises(crypt.desdecode, "Invalid des crypt text", "87654321", i)
end)

T.case("hex_round_trips_and_rejects_bad_text", function()
	local all = {}
	for b = 0, 255 do
		all[#all + 1] = string.char(b)
	end
	all = table.concat(all)
	T.eq(crypt.hexdecode(crypt.hexencode(all)), all)
	T.eq(crypt.hexencode("\0\255"), "00ff")
	T.eq(crypt.hexdecode("00FF"), "\0\255")
	T.raises(crypt.hexdecode, "Invalid hex text size 3", "abc")
	T.raises(crypt.hexdecode, "Invalid hex text", "zz")
	T.raises(crypt.hexdecode, "Invalid hex text", "0g")
end)

T.case("base64_round_trips_and_rejects_bad_text", function()
	for len = 0, 70 do
		local s = string.rep("\255\0a", 30):sub(1, len)
		T.eq(crypt.base64decode(crypt.base64encode(s)), s)
	end
	T.eq(crypt.base64decode("aGVs\nbG8=\n"), "hello", "line breaks are skipped")
	T.raises(crypt.base64decode, "Invalid base64 text", "aGVsb")
	T.raises(crypt.base64decode, "Invalid base64 text", "a===")
	T.raises(crypt.base64decode, "Invalid base64 text", "aGV=bA==")
	T.raises(crypt.base64decode, "Invalid base64 text", "YR==", "stray bits under the padding")
end)

T.case("eight_byte_arguments_are_checked", function()
	T.raises(crypt.hmac64, "Invalid uint64 x", "short", "12345678")
	T.raises(crypt.hmac64, "Invalid uint64 y", "12345678", "short")
	T.raises(crypt.hmac64_md5, "Invalid uint64 y", "12345678", "")
	T.raises(crypt.hmac_hash, "Invalid uint64 key", "1234", "text")
	T.raises(crypt.dhexchange, "Invalid dh uint64 key", "123")
	T.raises(crypt.dhexchange, "Can't be 0", string.rep("\0", 8))
	T.raises(crypt.dhsecret, "Can't be 0", "12345678", string.rep("\0", 8))
	T.raises(crypt.dhsecret, "Invalid uint64 x", "1", "12345678")
	T.raises(crypt.xor_str, "Empty key", "abc", "")
	T.raises(crypt.sha1, "bad argument #1", nil)
end)

T.case("dh_both_sides_agree_on_the_secret", function()
	for _ = 1, 20 do
		local a, b = crypt.randomkey(), crypt.randomkey()
		T.eq(#a, 8)
		local s1 = crypt.dhsecret(crypt.dhexchange(b), a)
		local s2 = crypt.dhsecret(crypt.dhexchange(a), b)
		T.eq(s1, s2)
	end
end)

T.case("randomkey_never_xors_to_zero", function()
	local seen = {}
	for _ = 1, 200 do
		local k = crypt.randomkey()
		local x = 0
		for i = 1, 8 do
			x = bit.bxor(x, k:byte(i))
		end
		T.ok(x ~= 0, "xor of key bytes is not zero")
		seen[k] = true
	end
	local distinct = 0
	for _ in pairs(seen) do
		distinct = distinct + 1
	end
	T.eq(distinct, 200, "distinct keys")
end)

skynet.start(T.run)
