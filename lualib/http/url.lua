-- http.url: split a request target into path and query and decode form-style escapes, as
-- Skynet's http.url. Pure functions. An escape that is not %XX (two hex digits) stays as written.
local url = {}

local function unescape(hex)
	return string.char(tonumber(hex, 16))
end

local function decode(s)
	return (s:gsub("+", " "):gsub("%%(%x%x)", unescape))
end
url.decode = decode

-- parse(u) -> decoded path, raw query ("" when there is none)
function url.parse(u)
	local path, query = u:match "^([^?]*)%??(.*)$"
	return decode(path), query
end

-- parse_query("a=1&b=x%20y") -> { a = "1", b = "x y" }; pairs without "=" are skipped
function url.parse_query(q)
	local r = {}
	for pair in q:gmatch "[^&]+" do
		local k, v = pair:match "^([^=]*)=(.*)$"
		if k then
			r[decode(k)] = decode(v)
		end
	end
	return r
end

return url
