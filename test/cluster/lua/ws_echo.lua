-- ws_echo: a WebSocket server on [env] ws_port for test_http.py. Echoes each message with its
-- type; "close-me" makes it close with 4001 "bye", "ping-me" makes it ping the client,
-- "raise-me" makes the handler raise. Every
-- handler call is logged as "WS <event> ...", and accept's result as "WS done <ok> <err>".
local skynet = require "skynet"
local socket = require "skynet.socket"
local websocket = require "http.websocket"

local handle = {}

function handle.connect(id)
	skynet.error("WS connect " .. id)
end

function handle.handshake(id, _, url)
	skynet.error(string.format("WS handshake %s %s", url, websocket.addrinfo(id)))
end

function handle.message(id, msg, kind)
	skynet.error(string.format("WS message %s %d", kind, #msg))
	if msg == "close-me" then
		websocket.close(id, 4001, "bye")
	elseif msg == "raise-me" then
		error("handler failed on purpose")
	elseif msg == "ping-me" then
		websocket.ping(id)
	else
		websocket.write(id, msg, kind)
	end
end

function handle.ping(_, data)
	skynet.error("WS ping [" .. tostring(data) .. "]")
end

function handle.pong(id)
	skynet.error("WS pong " .. id)
end

function handle.close(_, code, reason)
	skynet.error(string.format("WS close %s %s", tostring(code), tostring(reason)))
end

function handle.error(_, why)
	skynet.error("WS error " .. tostring(why))
end

skynet.start(function()
	local port = tonumber(skynet.getenv "ws_port")
	local lid = socket.listen("127.0.0.1", port)
	socket.start(lid, function(id, addr)
		skynet.fork(function()
			local ok, err = websocket.accept(id, handle, "ws", addr)
			skynet.error("WS done " .. tostring(ok) .. " " .. tostring(err))
		end)
	end)
	skynet.error("WS listening " .. port)
end)
