-- skynet.cluster.auth: the authentication handshake between skyjet nodes ([cluster] secret_file),
-- both halves side by side so they cannot drift apart. It travels as two name queries (address
-- 0), so a stock Skynet peer just answers "name not found":
--   client -> AUTH1, client name, nonce_c          server -> AUTH1, nonce_s, proof("server")
--   client -> AUTH2, proof("client")               server -> "" (authenticated)
-- Each proof is HMAC-SHA256(secret, role|nonces|client name); fresh nonces from both ends make a
-- recorded handshake useless later, and the secret never crosses the wire.
local skynet = require "skynet"
local crypto = require "skynet.crypto"

local auth = {}

local AUTH1, AUTH2 = "__skyjet_auth1", "__skyjet_auth2"
local NONCE_BYTES = 32
auth.DEADLINE = 10000 -- ms a link may take to finish the handshake

local function server_proof(secret, nonce_c, nonce_s, client)
	return crypto.hmac_sha256(secret, "server|" .. nonce_c .. "|" .. nonce_s .. "|" .. client)
end

local function client_proof(secret, nonce_c, nonce_s, client)
	return crypto.hmac_sha256(secret, "client|" .. nonce_s .. "|" .. nonce_c .. "|" .. client)
end

-- Client half. query(...) sends a name query carrying the values and returns the raw reply
-- payload (raising on failure). Raises with the reason when the peer fails to prove the secret.
function auth.client(secret, myname, query)
	local nonce_c = crypto.randombytes(NONCE_BYTES)
	local ok, reply = pcall(query, AUTH1, myname, nonce_c)
	if not ok then
		error("the node did not take part in authentication (" .. tostring(reply) .. ")", 0)
	end
	local tag, nonce_s, proof_s = skynet.unpack(reply)
	if tag ~= AUTH1 or type(nonce_s) ~= "string" or #nonce_s ~= NONCE_BYTES then
		error("malformed authentication reply", 0)
	end
	if not crypto.equal(tostring(proof_s), server_proof(secret, nonce_c, nonce_s, myname)) then
		error("the node failed to prove the shared secret", 0)
	end
	ok, reply = pcall(query, AUTH2, client_proof(secret, nonce_c, nonce_s, myname))
	if not ok then
		error("the node refused our proof (" .. tostring(reply) .. ")", 0)
	end
end

-- Server half: one per inbound link. answer(values) takes the unpacked values of a name query
-- and returns what to do: "reply", payload (go on); "done", payload, client (authenticated);
-- or "fail", reason (close the link).
local server = {}
server.__index = server

function auth.server(secret)
	return setmetatable({ secret = secret }, server)
end

function server:answer(tag, a, b)
	if tag == AUTH1 and not self.nonce_s then
		if type(a) == "string" and type(b) == "string" and #b == NONCE_BYTES then
			self.client, self.nonce_c, self.nonce_s = a, b, crypto.randombytes(NONCE_BYTES)
			return "reply", skynet.packstring(AUTH1, self.nonce_s,
				server_proof(self.secret, self.nonce_c, self.nonce_s, self.client))
		end
	elseif tag == AUTH2 and self.nonce_s then
		local expect = client_proof(self.secret, self.nonce_c, self.nonce_s, self.client)
		if crypto.equal(tostring(a), expect) then
			return "done", "", self.client
		end
		return "fail", string.format("authentication failed (wrong proof from %q)", self.client)
	end
	return "fail", "request before authentication"
end

return auth
