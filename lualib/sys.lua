--- sys — inspect and steer any process built on gen_server (servers, supervisors, agents).
--
--     sys.get_state(pid)                      --> the raw state
--     sys.replace_state(pid, function(s) return s + 1 end)   --> the new state
--     sys.suspend(pid)  ... sys.change_code(pid, "counter", "1", extra) ...  sys.resume(pid)
--
-- While suspended a server handles only these requests: calls to it time out and stay
-- queued until sys.resume. change_code works only while suspended; it runs
-- mod.code_change(old_vsn, state, extra) in the server and keeps the old state when that
-- fails.
--
-- Every function takes a pid or registered name and an optional timeout (ms, default 5000)
-- and raises `{"timeout"|"noproc"|reason, {"sys", fname, {server}}}` as OTP's sys does.
-- Results:
--   get_state → state;  replace_state → new state (a failing function raises
--   {"callback_failed", err});  suspend, resume → "ok";
--   change_code → "ok" | nil, reason (`{"unknown_system_msg", req}` when not suspended,
--   `{"error", r}` when code_change returns "error", r; `{"EXIT", err}` when it raises);
--   get_status → {"status", pid, {"module", "gen_server"},
--                 {status = "running"|"suspended", parent =, module =, name =, state =, ...}}
--   (the state as the module's format_status shows it).
-- @module sys

local gen_server = require "gen_server"

local M = {}

local function request(fname, server, req, timeout)
  if timeout == nil then timeout = 5000 end
  local function what(args) return {"sys", fname, args} end
  local reply = gen_server._request(server, "system", req, timeout, what, {server})
  if type(reply) == "table" and reply[1] == "error" then return nil, reply[2] end
  if type(reply) == "table" and reply[1] == "ok" then return reply[2] end
  return reply
end

--- Raise what a system request refused with (the calls that cannot fail quietly).
local function strict(fname, server, req, timeout)
  local v, err = request(fname, server, req, timeout)
  if err ~= nil then error(err) end
  return v
end

function M.get_state(server, timeout)
  return strict("get_state", server, "get_state", timeout)
end

function M.replace_state(server, f, timeout)
  if type(f) ~= "function" then error("bad argument #2 to 'replace_state' (function expected)", 2) end
  return strict("replace_state", server, {"replace_state", f}, timeout)
end

function M.suspend(server, timeout)
  return strict("suspend", server, "suspend", timeout)
end

function M.resume(server, timeout)
  return strict("resume", server, "resume", timeout)
end

function M.change_code(server, mod, old_vsn, extra, timeout)
  return request("change_code", server, {"change_code", mod, old_vsn, extra}, timeout)
end

function M.get_status(server, timeout)
  return strict("get_status", server, "get_status", timeout)
end

return M
