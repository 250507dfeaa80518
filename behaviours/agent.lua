--- agent — a process that holds a state, read and changed by functions sent to it.
--
-- An agent is a gen_server whose callback module is this one ("agent"), as Elixir's Agent
-- is a GenServer (OTP 25 / Elixir 1.14 semantics). Every function given to it is copied
-- into the agent process and runs there, with the state as its argument.
--
-- ## Example
--
--     local agent = require "agent"
--     local counter = agent.start_link(function() return 0 end, {name = "counter"})
--     agent.update("counter", function(n) return n + 1 end)          --> "ok"
--     agent.get("counter", function(n) return n end)                 --> 1
--     agent.get_and_update("counter", function(n) return n, n * 2 end) --> 1 (state now 2)
--     agent.cast("counter", function(n) return n + 100 end)          --> "ok" at once
--     agent.stop("counter")                                          --> "ok"
--
-- Functions are copied with their upvalues (see process.spawn): a function that refers to
-- something that cannot be sent (a file, a coroutine) raises in the caller and nothing is
-- sent.
--
-- ## Client API
--
-- * `start_link(f, [opts])` / `start(f, [opts])` → pid | nil, reason. Spawns the agent
--   (linked to the caller for start_link) and waits until `f()` has returned the initial
--   state. opts as gen_server.start's: `name` (a string; a taken name gives
--   nil, {"already_started", pid}), `timeout` (ms for f; past it nil, "timeout" and the
--   agent is killed), `hibernate_after`, `spawn_opt`. If f raises, the result is
--   nil, reason, and the agent exits with that reason (which a linked caller that does not
--   trap exits dies of, as with gen_server).
-- * `get(agent, f, [timeout = 5000])` → `f(state)` (its first value); the state is unchanged.
-- * `update(agent, f, [timeout = 5000])` → "ok"; the new state is `f(state)`.
-- * `get_and_update(agent, f, [timeout = 5000])` → reply, where `f(state)` returns exactly
--   two values: `reply, new_state`. Any other number of values makes the agent exit with
--   `{"bad_return_value", {values...}}` (and the caller with it, as below).
-- * `cast(agent, f)` → "ok" at once; the agent later sets its state to `f(state)`.
-- * `stop(agent, [reason = "normal"], [timeout = "infinity"])` → "ok" once the agent has
--   exited with reason.
-- * `child_spec(f, [opts])` → `{id = "agent", start = {"agent", "start_link", f, opts},
--   restart = "permanent", type = "worker"}`: a permanent worker for a supervisor.
--
-- `agent` is a pid or a registered name. get, update and get_and_update are gen_server
-- calls and fail as those do, raising `{why, {"gen_server", "call", {agent, request,
-- timeout}}}` where why is "timeout" (the agent goes on and still applies the function;
-- no late reply reaches the caller), "noproc" (no such agent), or the agent's exit reason
-- when it ends during the call, e.g. the error value of a function that raised: a raising
-- function kills the agent. The request is `{"get"|"update"|"get_and_update", f}`. stop
-- fails as gen_server.stop does (`{"noproc"|"timeout"|reason, {"gen_server", "stop", ...}}`).
--
-- ## As a gen_server callback module (internal)
--
-- The agent process runs gen_server with these callbacks; they are not for direct use.
--
-- * `init(f)` → `"ok", f()`
-- * `handle_call({"get", f}, from, s)` → `"reply", f(s), s`;
--   `handle_call({"update", f}, from, s)` → `"reply", "ok", f(s)`;
--   `handle_call({"get_and_update", f}, from, s)` → `"reply", reply, new_state` |
--   `"stop", {"bad_return_value", {values...}}, s`
-- * `handle_cast({"cast", f}, s)` → `"noreply", f(s)`
-- * `code_change(old_vsn, s, extra)` → `"ok", extra(s)` when extra is a function (as
--   Elixir's Agent), else `"ok", s`
--
-- A request of another shape raises in the agent (it crashes, as Elixir's would). The
-- agent does not trap exits: its parent's exit signal stops it at once. Abnormal ends are
-- logged by gen_server ("Generic server ... terminating") and by the runtime.
-- @module agent

local gen_server = require "gen_server"

local type, error, tostring = type, error, tostring

local M = {}

-- ===================================================================== client API

local function check_fun(f, argn, fname)
  if type(f) ~= "function" then
    error(string.format("bad argument #%d to '%s' (function expected, got %s)",
                        argn, fname, type(f)), 3)
  end
end

local function start_opts(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error(string.format("bad argument #2 to '%s' (table expected, got %s)", fname, type(opts)), 3)
  end
  return opts or {}
end

function M.start_link(f, opts)
  check_fun(f, 1, "start_link")
  return gen_server.start_link("agent", f, start_opts(opts, "start_link"))
end

function M.start(f, opts)
  check_fun(f, 1, "start")
  return gen_server.start("agent", f, start_opts(opts, "start"))
end

function M.get(agent, f, timeout)
  check_fun(f, 2, "get")
  return gen_server.call(agent, {"get", f}, timeout)
end

function M.update(agent, f, timeout)
  check_fun(f, 2, "update")
  return gen_server.call(agent, {"update", f}, timeout)
end

function M.get_and_update(agent, f, timeout)
  check_fun(f, 2, "get_and_update")
  return gen_server.call(agent, {"get_and_update", f}, timeout)
end

function M.cast(agent, f)
  check_fun(f, 2, "cast")
  return gen_server.cast(agent, {"cast", f})
end

function M.stop(agent, reason, timeout)
  return gen_server.stop(agent, reason, timeout)
end

function M.child_spec(f, opts)
  return {id = "agent", start = {"agent", "start_link", f, opts},
          restart = "permanent", type = "worker"}
end

-- ===================================================================== callbacks

function M.init(f)
  local state = f()
  return "ok", state
end

local function bad_request(req)
  error("agent: unknown request " .. tostring(type(req) == "table" and req[1] or req), 0)
end

function M.handle_call(req, from, state)
  local kind, f = type(req) == "table" and req[1], type(req) == "table" and req[2]
  if type(f) ~= "function" then bad_request(req) end
  if kind == "get" then
    local reply = f(state)
    return "reply", reply, state
  elseif kind == "update" then
    local new = f(state)
    return "reply", "ok", new
  elseif kind == "get_and_update" then
    local r = table.pack(f(state))
    if r.n ~= 2 then return "stop", {"bad_return_value", {table.unpack(r, 1, r.n)}}, state end
    return "reply", r[1], r[2]
  end
  bad_request(req)
end

function M.handle_cast(req, state)
  if type(req) ~= "table" or req[1] ~= "cast" or type(req[2]) ~= "function" then
    bad_request(req)
  end
  local new = req[2](state)
  return "noreply", new
end

function M.code_change(old_vsn, state, extra)
  if type(extra) == "function" then
    local new = extra(state)
    return "ok", new
  end
  return "ok", state
end

return M
