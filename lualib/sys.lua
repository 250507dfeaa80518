--- sys — inspect and steer any process built on gen_server (servers, supervisors, agents).
--
--     sys.get_state(pid)                      --> the raw state
--     sys.replace_state(pid, function(s) return s + 1 end)   --> the new state
--     sys.suspend(pid)  ... sys.change_code(pid, "counter", "1", extra) ...  sys.resume(pid)
--
-- While suspended a server handles only these requests (and its parent's exit, when it
-- traps exits): calls to it time out and stay queued until sys.resume. change_code works
-- only while suspended; it runs mod.code_change(old_vsn, state, extra) in the server (mod
-- nil: the server's own module; no code_change: the state is kept) and keeps the old state
-- when that fails.
--
-- Every function takes a pid or registered name and an optional timeout (ms, default 5000)
-- and raises `{"timeout"|"noproc"|"calling_self"|reason, {"sys", fname, args}}` as OTP's sys
-- does: args is {server}, {server, mod, old_vsn, extra} for change_code, with the timeout
-- appended when one was given (`{"noproc", {"sys", "get_state", {pid, 100}}}`).
-- Results:
--   get_state → state;  replace_state → new state (a failing function raises
--   {"callback_failed", err} and the state stays as it was);  suspend, resume → "ok";
--   change_code → "ok" | nil, reason (`{"unknown_system_msg", {"change_code", mod, old_vsn,
--   extra}}` when not suspended, `{"error", r}` when code_change returns "error", r;
--   `{"EXIT", err}` when it raises or mod cannot be loaded; `{"bad_return_value", {values...}}`
--   for any other result);
--   get_status → {"status", pid, {"module", "gen_server"},
--                 {dictionary = {}, status = "running"|"suspended", parent = pid,
--                  module = name|"(table)", name = registered name|nil, state = ...}}
--   (the state as the module's format_status shows it; parent is the server itself when
--   it was started without a link).
-- @module sys

local gen_server = require "gen_server"

local type, error = type, error

local M = {}

--- Sends a system request and waits for the reply. `args` are the arguments the function
-- was called with, as they appear in its exit reasons: {server, ...} plus the timeout when
-- one was given (OTP's shape).
local function request(fname, req, args, timeout)
  if timeout ~= nil then args[args.n + 1] = timeout end
  args.n = nil
  local function what(a) return {"sys", fname, a} end
  local reply = gen_server._request(args[1], "system", req, timeout or 5000, what, args)
  if type(reply) == "table" and reply[1] == "error" then return nil, reply[2] end
  if type(reply) == "table" and reply[1] == "ok" then return reply[2] end
  return reply
end

--- Raise what a system request refused with (the calls that cannot fail quietly).
local function strict(fname, req, args, timeout)
  local v, err = request(fname, req, args, timeout)
  if err ~= nil then error(err) end
  return v
end

function M.get_state(server, timeout)
  return strict("get_state", "get_state", {server, n = 1}, timeout)
end

function M.replace_state(server, f, timeout)
  if type(f) ~= "function" then error("bad argument #2 to 'replace_state' (function expected)", 2) end
  return strict("replace_state", {"replace_state", f}, {server, n = 1}, timeout)
end

function M.suspend(server, timeout)
  return strict("suspend", "suspend", {server, n = 1}, timeout)
end

function M.resume(server, timeout)
  return strict("resume", "resume", {server, n = 1}, timeout)
end

function M.change_code(server, mod, old_vsn, extra, timeout)
  return request("change_code", {"change_code", mod, old_vsn, extra},
                 {server, mod, old_vsn, extra, n = 4}, timeout)
end

function M.get_status(server, timeout)
  return strict("get_status", "get_status", {server, n = 1}, timeout)
end

return M
