--- dynamic_supervisor — a supervisor whose children are started on demand.
--
-- A dynamic supervisor starts with no children; `start_child` adds them one at a time,
-- each from its own child spec, and they are restarted according to their restart type,
-- as Elixir's DynamicSupervisor (OTP 25 / Elixir 1.14 semantics; OTP.md §3.7). Children
-- have no ids: they are known by their pids.
--
-- ## Example: a pool of workers started on demand
--
--     -- pool.lua
--     local dynamic_supervisor = require "dynamic_supervisor"
--     local M = {}
--
--     function M.start_link()
--       return dynamic_supervisor.start_link({name = "pool", max_children = 10,
--                                             extra_arguments = {"pool"}})
--     end
--
--     -- A new worker for one job: pool_worker.start_link("pool", job) runs in "pool".
--     function M.add(job)
--       return dynamic_supervisor.start_child("pool", {"pool_worker", job})
--     end
--
--     function M.remove(pid) return dynamic_supervisor.terminate_child("pool", pid) end
--
--     return M
--
-- `M.add(job)` gives the worker's pid, or nil, "max_children" once ten are running.
-- A pool_worker that crashes is started again with the same `("pool", job)` arguments.
--
-- ## Client API
--
-- * `start_link([opts])` → pid | nil, reason. Spawns the supervisor, linked to the caller
--   (its parent), and returns once it is ready. opts:
--   - `strategy`: "one_for_one" (the default and the only one allowed);
--   - `intensity` (3) and `period` (5, seconds): more than `intensity` restarts within
--     `period` seconds stop the supervisor (see Restarts);
--   - `max_children` ("infinity" or an integer >= 0): how many children it may hold;
--   - `extra_arguments` ({}): values put in front of every child's start arguments;
--   - `name`: register the supervisor under this name (a taken name gives
--     nil, {"already_started", pid});
--   - `timeout`, `hibernate_after`, `spawn_opt`: as for gen_server.start_link.
--   A bad option makes the supervisor stop in its init with
--   `{"supervisor_data", {"invalid_strategy", s}}` (or `invalid_intensity`,
--   `invalid_period`, `invalid_max_children`, `invalid_extra_arguments`): start_link
--   returns nil and that reason, and, as for any gen_server whose init stops, a linked
--   caller that does not trap exits dies with it.
-- * `start_child(sup, spec)` → pid | "ignore" | nil, reason. spec is a child spec or a
--   shorthand (see `childspec`); its `id` may be left out (it is not used). The start
--   function runs in the supervisor with `extra_arguments` followed by the spec's own
--   arguments: with extra_arguments {"extra"} and start {"w", "start_link", "arg"},
--   `w.start_link("extra", "arg")`. Results: the child's pid; "ignore" when the start
--   function returns "ignore" (nothing is kept); nil, R when it returns nil, R or raises R
--   (R as it is, with no spec around it); nil, "max_children" when full; nil, R for an
--   invalid spec (`"missing_start"`, `{"invalid_mfa", start}`, ...).
--   `start` may be `{f, args...}` with f a function: it is copied into the supervisor and
--   called there as `f(extra..., args...)` (again with the same arguments for a restart);
--   it must link the child to its caller (e.g. with process.spawn_link) and return its
--   pid. This is how task_supervisor starts its tasks: temporary children with such a
--   start function.
-- * `terminate_child(sup, pid)` → "ok" | nil, "not_found". Stops the child as at shutdown
--   (below) and forgets it, whatever its restart type.
-- * `which_children(sup)` → an array of `{nil, pid, type, modules}` (the id is always nil;
--   pid is "restarting" while a failed restart waits to be tried again), in the order the
--   children were started (a restarted child counts as started anew).
-- * `count_children(sup)` → `{specs = n, active = n, supervisors = n, workers = n}`.
-- * `stop(sup, [reason = "normal"], [timeout = "infinity"])` → "ok" once the children are
--   stopped and the supervisor has exited with reason (gen_server.stop).
-- * `child_spec([opts])` → `{id = opts.name or "dynamic_supervisor", type = "supervisor",
--   start = {"dynamic_supervisor", "start_link", opts}}`, to put a dynamic supervisor
--   under another supervisor.
--
-- sup is a pid or a registered name. The calls wait without a time limit (as OTP's
-- supervisor calls do) and raise as gen_server.call does, e.g.
-- `{"noproc", {"gen_server", "call", {sup, request, "infinity"}}}` for a supervisor that
-- does not exist.
--
-- ## Restarts
--
-- When a child exits, its restart type decides: "permanent" children are always started
-- again, "transient" ones only after an abnormal exit (not "normal", "shutdown" or
-- {"shutdown", x}), "temporary" ones never. A restarted child gets a new pid and the same
-- arguments it was first started with; a child that is not restarted is forgotten. A
-- restart whose start function fails is tried again (each try counts as a restart); one
-- that returns "ignore" forgets the child. When a restart would make more than `intensity`
-- restarts within the last `period` seconds, the supervisor stops its children and exits
-- with "shutdown".
--
-- ## Shutdown
--
-- On stop, on an exit signal from its parent (it traps exits; it then exits with the
-- parent's reason), and when the restart intensity is exceeded, the supervisor stops all
-- its children together, in no particular order: each gets the exit signal "shutdown"
-- (or "kill" when its shutdown is "brutal_kill"), then it waits for each one up to its
-- `shutdown` ms ("infinity": as long as it takes) and kills those still running then.
--
-- ## Reports
--
-- Written with `logger.report("error", ..., "SUPERVISOR REPORT")`, fields as OTP's:
-- `supervisor` ({"local", name} or {pid, "dynamic_supervisor"}), `errorContext`, `reason`,
-- `offender` (the child: pid, mfargs with the extra arguments, restart_type, shutdown,
-- child_type). errorContext is "child_terminated" when a permanent child exits or another
-- one exits abnormally, "start_error" when a restart fails, "shutdown" (reason
-- "reached_max_restart_intensity") when the supervisor gives up, and "shutdown_error" when
-- a child being stopped ends with an unexpected reason (e.g. "killed" after its shutdown
-- time).
--
-- ## gen_server callbacks
--
-- The supervisor is a gen_server whose callback module is this one: `init`,
-- `handle_call`, `handle_info` and `terminate` below are for gen_server, not for users.
-- sys.get_state and the other sys functions work on it.
-- @module dynamic_supervisor

local process = require "process"
local gen_server = require "gen_server"
local childspec = require "childspec"
local logger = require "logger"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local math_type = math.type
local table_sort = table.sort

local M = {}

local MODULE = "dynamic_supervisor"

-- ===================================================================== client API

local START_OPTS = {"timeout", "hibernate_after", "spawn_opt"}

function M.start_link(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'start_link' (table expected, got " .. type(opts) .. ")", 2)
  end
  if opts.name ~= nil and type(opts.name) ~= "string" then
    error("bad argument #1 to 'start_link' (name must be a string)", 2)
  end
  local server_opts = {name = opts.name}
  for _, k in ipairs(START_OPTS) do server_opts[k] = opts[k] end
  return gen_server.start_link(MODULE, opts, server_opts)
end

--- The reply of a start_child call as the caller's results.
local function start_result(r)
  if r[1] == "ok" then return r[2] end
  if r[1] == "ignore" then return "ignore" end
  return nil, r[2]
end

function M.start_child(sup, spec)
  -- Children have no ids: a full spec may leave it out.
  if type(spec) == "table" and spec.start ~= nil and spec.id == nil then
    local s = {}
    for k, v in pairs(spec) do s[k] = v end
    s.id = false
    spec = s
  end
  local full, err = childspec.normalize(spec)
  if full == nil then return nil, err end
  return start_result(gen_server.call(sup, {"start_child", full}, "infinity"))
end

function M.terminate_child(sup, pid)
  local r = gen_server.call(sup, {"terminate_child", pid}, "infinity")
  if r == "ok" then return "ok" end
  return nil, r[2]
end

function M.which_children(sup)
  return gen_server.call(sup, "which_children", "infinity")
end

function M.count_children(sup)
  return gen_server.call(sup, "count_children", "infinity")
end

function M.stop(sup, reason, timeout)
  return gen_server.stop(sup, reason, timeout)
end

function M.child_spec(opts)
  opts = opts or {}
  local id = opts.name
  if id == nil then id = MODULE end
  return {id = id, start = {MODULE, "start_link", opts}, type = "supervisor"}
end

-- ===================================================================== state
--
-- state: {name, intensity, period (ms), max_children, extra, children, count, seq,
--         restarts}. children maps a key to a child {pid = pid | nil (restarting),
--         spec = full spec, seq = start order}; the key is the child's pid, or for a child
--         waiting for a restart the pid it had. restarts: times (ms) of recent restarts.

local function invalid(tag, v) return nil, {tag, v} end

--- The state for the start options, or nil and the reason they are wrong.
local function new_state(opts)
  local strategy = opts.strategy
  if strategy ~= nil and strategy ~= "one_for_one" then
    return invalid("invalid_strategy", strategy)
  end
  local intensity, period = opts.intensity, opts.period
  if intensity == nil then intensity = 3 end
  if period == nil then period = 5 end
  if math_type(intensity) ~= "integer" or intensity < 0 then
    return invalid("invalid_intensity", intensity)
  end
  if math_type(period) ~= "integer" or period <= 0 then
    return invalid("invalid_period", period)
  end
  local max = opts.max_children
  if max == nil then max = "infinity" end
  if max ~= "infinity" and (math_type(max) ~= "integer" or max < 0) then
    return invalid("invalid_max_children", max)
  end
  local extra = opts.extra_arguments
  if extra == nil then extra = {} end
  if type(extra) ~= "table" then return invalid("invalid_extra_arguments", extra) end
  return {name = opts.name, intensity = intensity, period = period * 1000,
          max_children = max, extra = extra, children = {}, count = 0, seq = 0,
          restarts = {}}
end

local function add_child(s, pid, spec)
  s.seq = s.seq + 1
  s.count = s.count + 1
  s.children[pid] = {pid = pid, spec = spec, seq = s.seq}
end

local function remove_child(s, key)
  if s.children[key] ~= nil then
    s.children[key] = nil
    s.count = s.count - 1
  end
end

--- The children in start order.
local function ordered(s)
  local list = {}
  for _, child in pairs(s.children) do list[#list + 1] = child end
  table_sort(list, function(a, b) return a.seq < b.seq end)
  return list
end

-- ===================================================================== reports

--- A SUPERVISOR REPORT about one child. who: the child's pid or {"restarting", pid}.
local function report(s, context, reason, child, who)
  childspec.report(s.name or tostring(process.self()), context, reason, who, child.spec,
                   s.extra)
end

-- ===================================================================== stopping children

--- Stops the running children of `list` together; reports those that end otherwise than
-- their specs expect. The children stay in the state.
local function stop_children(s, list)
  for _, f in ipairs(childspec.stop_children(list)) do
    report(s, "shutdown_error", f[2], f[1], f[1].pid)
  end
end

-- ===================================================================== restarts

--- Records a restart now; false when that makes too many within the period.
local function add_restart(s)
  local ok
  s.restarts, ok = childspec.add_restart(s.restarts, s.intensity, s.period)
  return ok
end

--- Starts the child kept under `key` again. Returns a gen_server noreply/stop result.
local function restart(s, key)
  local child = s.children[key]
  if not add_restart(s) then
    report(s, "shutdown", "reached_max_restart_intensity", child, child.pid or key)
    remove_child(s, key)
    return "stop", "shutdown", s
  end
  local tag, pid = childspec.start(child.spec, s.extra)
  if tag == "ok" then
    remove_child(s, key)
    add_child(s, pid, child.spec)
  elseif tag == "ignore" then
    remove_child(s, key)
  else
    report(s, "start_error", pid, child, {"restarting", key})
    child.pid = nil
    process.send(process.self(), {"$restart", key})
  end
  return "noreply", s
end

--- A child ended with reason: restart it, or forget it, as its restart type says.
local function child_exited(s, pid, reason)
  local child = s.children[pid]
  if child == nil or child.pid ~= pid then return "noreply", s end
  local restart_type = child.spec.restart
  if restart_type == "permanent" then
    report(s, "child_terminated", reason, child, pid)
    return restart(s, pid)
  end
  if gen_server._quiet(reason) then
    remove_child(s, pid)
    return "noreply", s
  end
  report(s, "child_terminated", reason, child, pid)
  if restart_type == "transient" then return restart(s, pid) end
  remove_child(s, pid)
  return "noreply", s
end

-- ===================================================================== gen_server callbacks

function M.init(opts)
  process.flag("trap_exit", true)
  local s, err = new_state(opts)
  if s == nil then return "stop", {"supervisor_data", err} end
  return "ok", s
end

local CALLS = {}

function CALLS.start_child(s, request)
  if s.max_children ~= "infinity" and s.count >= s.max_children then
    return {"error", "max_children"}
  end
  local spec = request[2]
  local tag, v = childspec.start(spec, s.extra)
  if tag == "ok" then
    add_child(s, v, spec)
    return {"ok", v}
  end
  if tag == "ignore" then return {"ignore"} end
  return {"error", v}
end

function CALLS.terminate_child(s, request)
  local key = request[2]
  local child = s.children[key]
  if child == nil then return {"error", "not_found"} end
  stop_children(s, {child})
  remove_child(s, key)
  return "ok"
end

function CALLS.which_children(s)
  local rows = {}
  for i, child in ipairs(ordered(s)) do
    rows[i] = {nil, child.pid or "restarting", child.spec.type, child.spec.modules}
  end
  return rows
end

function CALLS.count_children(s)
  local active, supervisors, workers = 0, 0, 0
  for _, child in pairs(s.children) do
    if child.pid then active = active + 1 end
    if child.spec.type == "supervisor" then
      supervisors = supervisors + 1
    else
      workers = workers + 1
    end
  end
  return {specs = s.count, active = active, supervisors = supervisors, workers = workers}
end

function M.handle_call(request, from, s)
  local name = type(request) == "table" and request[1] or request
  local f = type(name) == "string" and CALLS[name]
  if f then return "reply", f(s, request), s end
  logger.report("error", "** dynamic_supervisor " .. tostring(process.self()) ..
    " received an unexpected call", {{"request", request, quote = true}})
  return "reply", {"error", "unexpected_call"}, s
end

function M.handle_info(msg, s)
  if type(msg) == "table" then
    if msg[1] == "EXIT" and #msg == 3 then return child_exited(s, msg[2], msg[3]) end
    if msg[1] == "$restart" then
      local child = s.children[msg[2]]
      if child and child.pid == nil then return restart(s, msg[2]) end
      return "noreply", s
    end
  end
  logger.report("error", "** dynamic_supervisor " .. tostring(process.self()) ..
    " received an unexpected message", {{"message", msg, quote = true}})
  return "noreply", s
end

function M.terminate(reason, s)
  stop_children(s, ordered(s))
end

return M
