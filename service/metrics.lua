-- metrics: Prometheus text exposition on [node] metrics = HOST:PORT (started by bootstrap).
-- Answers `GET /metrics` and `HEAD /metrics` HTTP/1.0-style (one answer, then close; 404 for
-- other paths, 405 for other methods) over skynet.socket, so the reactor serves it and no thread is added. Values
-- come from the runtime's counters (skyjet.stats, socketdriver.stats) and, when the node
-- runs a cluster, from clusterd's status. Loopback addresses only unless
-- console_allow_remote = true. README.md ("Operating skyjet") lists every metric.
local skynet = require "skynet"
local socket = require "skynet.socket"
local oplisten = require "skynet.oplisten"
local skyjet = require "skyjet"
local driver = require "skynet.socketdriver"

local listen_address = ...
local MAX_REQUEST = 8192
local REQUEST_TICKS = 1000 -- a client has 10 s to send its request
local nodename = skynet.getenv "name"

-- Same rule as service/debug_console.lua: 127.0.0.0/8, ::1 or localhost, unless allowed.
local function number(v)
	if v ~= v then
		return "NaN"
	elseif v == math.huge then
		return "+Inf"
	elseif v == -math.huge then
		return "-Inf"
	elseif v == math.floor(v) and math.abs(v) < 2 ^ 53 then
		return string.format("%.0f", v)
	end
	local s = string.format("%.15g", v)
	return tonumber(s) == v and s or string.format("%.17g", v)
end

local function escape(v)
	return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- Our families are skyjet_*; the standard process_* ones keep their own names.
local function full(name)
	return name:sub(1, 8) == "process_" and name or "skyjet_" .. name
end

-- labels: an array of name, value pairs, kept in order
local function sample(out, name, value, labels)
	local l = ""
	if labels then
		local parts = {}
		for i = 1, #labels, 2 do
			parts[#parts + 1] = labels[i] .. '="' .. escape(labels[i + 1]) .. '"'
		end
		l = "{" .. table.concat(parts, ",") .. "}"
	end
	out[#out + 1] = full(name) .. l .. " " .. number(tonumber(value) or 0)
end

local function family(out, name, kind, help)
	out[#out + 1] = "# HELP " .. full(name) .. " " .. help
	out[#out + 1] = "# TYPE " .. full(name) .. " " .. kind
end

local function single(out, name, kind, help, value)
	family(out, name, kind, help)
	sample(out, name, value)
end

local function process(out, st)
	local p = st.process
	single(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.",
		p.cpu_seconds)
	single(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
		p.resident_bytes)
	single(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
		p.virtual_bytes)
	single(out, "process_open_fds", "gauge", "Number of open file descriptors.", p.open_fds)
	single(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds)
	single(out, "process_start_time_seconds", "gauge",
		"Start time of the process since unix epoch in seconds.", p.start_time_seconds)
	family(out, "build_info", "gauge", "Always 1; the labels tell which skyjet runs.")
	sample(out, "build_info", 1, { "version", st.version })
	single(out, "lua_memory_bytes", "gauge", "Bytes of Lua heap in all services.", st.lua_memory)
end

local function runtime(out)
	local st = skyjet.stats()
	local so = driver.stats()
	process(out, st)
	single(out, "uptime_seconds", "gauge", "Seconds since the node started.", skynet.now() / 100)
	single(out, "services", "gauge", "Services alive.", st.services)
	single(out, "services_launched_total", "counter", "Services launched since start.", st.launched)
	single(out, "services_released_total", "counter", "Services released since start.", st.released)
	single(out, "messages_total", "counter", "Messages processed by all workers.", st.messages)
	single(out, "mq_length_max", "gauge", "Longest service message queue right now.", st.mq_max)
	single(out, "mq_messages_waiting", "gauge", "Messages waiting in all service queues.", st.mq_total)
	single(out, "timers_pending", "gauge", "Timers waiting to fire.", st.timers)
	family(out, "worker_messages_total", "counter", "Messages processed per worker thread.")
	for i, w in ipairs(st.workers) do
		sample(out, "worker_messages_total", w.messages, { "worker", i })
	end
	family(out, "worker_busy_seconds_total", "counter",
		"Seconds each worker spent running services; rate() of it is the busy ratio.")
	for i, w in ipairs(st.workers) do
		sample(out, "worker_busy_seconds_total", w.busy_ns / 1e9, { "worker", i })
	end
	family(out, "log_lines_total", "counter", "Log lines written, by level.")
	for _, level in ipairs { "debug", "info", "warn", "error" } do
		sample(out, "log_lines_total", st.log[level], { "level", level })
	end
	single(out, "sockets", "gauge", "Sockets open in the reactor.", so.sockets)
	single(out, "socket_bytes_in_total", "counter", "Bytes read from all sockets.", so.bytes_in)
	single(out, "socket_bytes_out_total", "counter", "Bytes written to all sockets.", so.bytes_out)
	single(out, "socket_reads_total", "counter", "Socket read operations.", so.reads)
	single(out, "socket_writes_total", "counter", "Socket write operations.", so.writes)
end

-- Per-peer families from clusterd's status: { [node] = {connected, requests, ...} }
local PEER = {
	{ "cluster_link_up", "gauge", "1 when the link to the node is connected, else 0.", "connected" },
	{ "cluster_requests_total", "counter", "Calls sent to the node.", "requests" },
	{ "cluster_pushes_total", "counter", "One-way sends to the node.", "pushes" },
	{ "cluster_bytes_out_total", "counter", "Bytes sent to the node.", "bytes_out" },
	{ "cluster_bytes_in_total", "counter", "Bytes received from the node.", "bytes_in" },
	{ "cluster_pending_calls", "gauge", "Calls to the node waiting for an answer.", "pending" },
	{ "cluster_failures_total", "counter", "Calls to the node that failed.", "failures" },
	{ "cluster_rtt_seconds", "gauge", "Round trip of the last call or heartbeat to the node.",
		"rtt_us", 1e-6 },
}

-- status.errors = { [kind] = count }
local function peer_errors(out, status, nodes)
	family(out, "cluster_errors_total", "counter", "Failed calls to the node, by kind.")
	for _, node in ipairs(nodes) do
		local errors = status[node].errors
		if type(errors) == "table" then
			local kinds = {}
			for kind in pairs(errors) do
				kinds[#kinds + 1] = tostring(kind)
			end
			table.sort(kinds)
			for _, kind in ipairs(kinds) do
				sample(out, "cluster_errors_total", errors[kind], { "node", node, "kind", kind })
			end
		end
	end
end

-- status.latency = { bounds = {µs, ...}, buckets = {count per bound, ..., count above the last},
-- count = n, sum_us = total µs }; Prometheus buckets are cumulative and in seconds.
local function peer_latency(out, status, nodes)
	local name = "cluster_call_latency_seconds"
	family(out, name, "histogram", "Round trip of calls to the node.")
	for _, node in ipairs(nodes) do
		local lat = status[node].latency
		if type(lat) == "table" and type(lat.bounds) == "table" and type(lat.buckets) == "table" then
			local cumulative = 0
			for i, bound in ipairs(lat.bounds) do
				cumulative = cumulative + (lat.buckets[i] or 0)
				sample(out, name .. "_bucket", cumulative, { "node", node, "le", number(bound / 1e6) })
			end
			sample(out, name .. "_bucket", lat.count, { "node", node, "le", "+Inf" })
			sample(out, name .. "_sum", (lat.sum_us or 0) / 1e6, { "node", node })
			sample(out, name .. "_count", lat.count, { "node", node })
		end
	end
end

local function cluster(out)
	local d = skynet.localname ".clusterd" -- only when something required skynet.cluster
	if not d then
		return
	end
	local ok, status = pcall(skynet.call, d, "lua", "status")
	if not ok then
		skynet.log("warn", "metrics: clusterd status failed: " .. tostring(status))
		return
	end
	local nodes = {}
	for node in pairs(status) do
		if node ~= nodename then
			nodes[#nodes + 1] = node
		end
	end
	table.sort(nodes)
	for _, m in ipairs(PEER) do
		family(out, m[1], m[2], m[3])
		for _, node in ipairs(nodes) do
			local v = status[node][m[4]]
			if type(v) == "boolean" then
				v = v and 1 or 0
			end
			if type(v) == "number" then
				sample(out, m[1], v * (m[5] or 1), { "node", node })
			end
		end
	end
	peer_errors(out, status, nodes)
	peer_latency(out, status, nodes)
end

local function exposition()
	local out = {}
	runtime(out)
	cluster(out)
	out[#out + 1] = ""
	return table.concat(out, "\n")
end

local REASON = { [200] = "OK", [400] = "Bad Request", [404] = "Not Found",
	[405] = "Method Not Allowed", [431] = "Request Header Fields Too Large" }

-- head_only: HEAD gets the headers a GET would get, without the body.
local function respond(id, code, body, extra, head_only)
	body = body or (REASON[code] .. "\n")
	socket.write(id, string.format("HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" ..
		"Connection: close\r\n%s\r\n", code, REASON[code],
		code == 200 and "text/plain; version=0.0.4; charset=utf-8" or "text/plain", #body, extra or ""))
	if not head_only then
		socket.write(id, body)
	end
end

-- Read up to the blank line that ends the headers (a request may arrive in pieces).
local function read_request(id)
	local buf = ""
	while true do
		local head = buf:match "^(.-)\r?\n\r?\n"
		if head then
			return head
		end
		local line = buf:match "^([^\r\n]*)\r?\n"
		if line and not line:find " HTTP/" then -- HTTP/0.9 style: the request line alone
			return line
		end
		if #buf > MAX_REQUEST then
			return nil, 431
		end
		local data = socket.read(id)
		if not data then
			return nil
		end
		buf = buf .. data
	end
end

local function serve(id)
	if not socket.start(id) then
		return
	end
	local done = false
	skynet.timeout(REQUEST_TICKS, function()
		if not done then
			socket.shutdown(id) -- too slow: the read below returns false
		end
	end)
	local head, err = read_request(id)
	done = true
	if head then
		local method, target = head:match "^(%S+)%s+(%S+)"
		local path = target and target:match "^[^?]*"
		if not method then
			respond(id, 400)
		elseif method ~= "GET" and method ~= "HEAD" then
			respond(id, 405, nil, "Allow: GET, HEAD\r\n")
		elseif path ~= "/metrics" then
			respond(id, 404, nil, nil, method == "HEAD")
		else
			respond(id, 200, exposition(), nil, method == "HEAD")
		end
	elseif err then
		respond(id, err)
	end
	socket.close(id)
end

skynet.start(function()
	skyjet.internal()
	local lid, host, port = oplisten("metrics", listen_address)
	if not lid then
		return skynet.exit()
	end
	socket.accept_limit(lid, tonumber(skynet.getenv "metrics_maxconn"))
	socket.start(lid, function(id)
		skynet.fork(serve, id)
	end)
	skynet.log("info", string.format("metrics listening on %s:%d (GET /metrics)", host, port))
end)
