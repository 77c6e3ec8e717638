-- http: http.url, and the Lua request parser of http.httpd under valid input cut at random
-- places and under thousands of random mutations (it must answer a status code or report the end
-- of input, never raise another error or hang); header injection refused by write_response.
local skynet = require "skynet"
local T = require "testlib"
local httpd = require "http.httpd"
local urllib = require "http.url"

local EOF = setmetatable({}, { __tostring = function()
	return "EOF"
end })

-- read(n) over a string, handing out pieces of random size when n is nil; EOF raises.
local function string_reader(s)
	local pos = 1
	return function(n)
		if pos > #s then
			error(EOF)
		end
		if n == nil then
			n = math.random(1, 64)
		elseif pos + n - 1 > #s then
			error(EOF)
		end
		local piece = s:sub(pos, pos + n - 1)
		pos = pos + #piece
		return piece
	end
end

local VALID = {
	"GET /p?a=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
	"POST /f HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nhello",
	"PUT /c HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.1\r\nhost: h\r\nfold: a\r\n  b\r\n\r\n",
}

T.case("url_parse_and_query", function()
	local path, query = urllib.parse("/a%20b/c+d?x=1&y=%41%zz&flag&=e")
	T.eq(path, "/a b/c d")
	T.eq(query, "x=1&y=%41%zz&flag&=e")
	T.same(urllib.parse_query(query), { x = "1", y = "A%zz", [""] = "e" })
	T.same({ urllib.parse("/plain") }, { "/plain", "" })
end)

T.case("valid_requests_parse_the_same_in_any_pieces", function()
	for round = 1, 50 do
		local code, url, method, header, body = httpd.read_request(string_reader(VALID[3]), 100)
		T.eq(code, 200, "round " .. round)
		T.eq(url, "/c")
		T.eq(method, "PUT")
		T.eq(body, "abcde")
		T.eq(header.t, "v", "trailer")
	end
	local code, _, _, header = httpd.read_request(string_reader(VALID[1]))
	T.eq(code, 200)
	T.same(header["x-a"], { "1", "2" })
	code, _, _, header = httpd.read_request(string_reader(VALID[5]))
	T.eq(code, 200)
	T.eq(header.fold, "a b")
	T.eq((httpd.read_request(string_reader(VALID[2]), 4)), 413, "body over the limit")
end)

local ANSWERS = { [200] = true, [400] = true, [413] = true, [501] = true, [505] = true }

local function mutate(s)
	local n = math.random(1, 4)
	for _ = 1, n do
		local pos = math.random(1, #s)
		local op = math.random(1, 5)
		if op == 1 then -- flip a byte
			s = s:sub(1, pos - 1) .. string.char(math.random(0, 255)) .. s:sub(pos + 1)
		elseif op == 2 then -- cut
			s = s:sub(1, pos)
		elseif op == 3 then -- delete a run
			s = s:sub(1, pos - 1) .. s:sub(pos + math.random(1, 8))
		elseif op == 4 then -- insert something structural
			local bits = { "\r\n", ":", " ", "\r\n\r\n", "ffffffffffff", "\0", "\t", "%" }
			s = s:sub(1, pos - 1) .. bits[math.random(#bits)] .. s:sub(pos)
		else -- repeat a run
			local run = s:sub(pos, pos + math.random(1, 40))
			s = s:sub(1, pos - 1) .. run:rep(math.random(2, 300)) .. s:sub(pos)
		end
	end
	return s
end

T.case("random_mutations_get_a_status_or_end_of_input", function()
	math.randomseed(tonumber(skynet.getenv "test_seed" or "") or os.time())
	local seen = {}
	for i = 1, 4000 do
		local input = mutate(VALID[(i % #VALID) + 1])
		local code, err = httpd.read_request(string_reader(input), 4096)
		if code then
			T.ok(ANSWERS[code], "status " .. tostring(code) .. " for " .. string.format("%q", input))
		else
			T.ok(err == EOF, "error " .. tostring(err) .. " for " .. string.format("%q", input))
		end
		seen[code or "eof"] = true
		if i % 500 == 0 then
			skynet.yield()
		end
	end
	T.ok(seen[200] and seen[400] and seen.eof, "mutations reach accept, refuse and short input")
end)

T.case("write_response_refuses_header_injection", function()
	local out = {}
	local function write(s)
		out[#out + 1] = s
	end
	local ok, err = httpd.write_response(write, 200, "x", { ["x-a"] = "v\r\nset-cookie: evil" })
	T.eq(ok, false)
	T.ok(tostring(err):find "bad header field", err)
	ok, err = httpd.write_response(write, 200, "x", { ["bad name"] = "v" })
	T.eq(ok, false)
	T.ok(tostring(err):find "bad header field", err)
	out = {}
	T.ok(httpd.write_response(write, 404, nil, { ["x-b"] = { "1", "2" } }))
	T.eq(table.concat(out), "HTTP/1.1 404 Not Found\r\nx-b: 1\r\nx-b: 2\r\n\r\n")
end)

skynet.start(T.run)
