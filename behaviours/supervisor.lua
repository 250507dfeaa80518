--- supervisor — a process that starts, watches and restarts other processes.
--
-- A supervisor starts a list of children, one at a time and in order, restarts them when
-- they end (as their restart type and the strategy say), and stops them in reverse order
-- when it stops. This is Erlang's supervisor (OTP 25 semantics, see OTP.md §3) with the
-- child specs and shorthands of Elixir's Supervisor. Supervisors nest: a supervisor is a
-- child like any other, which makes a supervision tree.
--
-- ## Example
--
--     -- app.lua: a tree of two levels.
--     local supervisor = require "supervisor"
--
--     local workers = {                      -- the lower level: one_for_all
--       {id = "db", start = {"db", "start_link", "db.sqlite"}},
--       "cache",                             -- shorthand: cache.child_spec(nil)
--     }
--
--     local root = supervisor.start_link({
--       {"pool", {size = 64}},               -- shorthand: pool.child_spec({size = 64})
--       supervisor.child_spec({workers, {strategy = "one_for_all"}}, {id = "workers"}),
--       {id = "web", start = {"web", "start_link", 8080}, shutdown = 10000},
--     }, {strategy = "rest_for_one", intensity = 5, period = 10, name = "app_sup"})
--
-- ## Writing a child module
--
-- A child is started by calling the `start` function of its spec in the supervisor process.
-- That function must start the child process, **link it to its caller** (the supervisor)
-- and return the child's pid, `"ignore"` (nothing to run; the spec is kept with no pid),
-- or nil, reason. gen_server.start_link does all of this:
--
--     -- counter.lua
--     local gen_server = require "gen_server"
--     local M = {}
--
--     function M.start_link(n)
--       return gen_server.start_link("counter", n, {name = "counter"})
--     end
--
--     -- optional: how supervisors start this module when given "counter" or {"counter", n}
--     function M.child_spec(n)
--       return {id = "counter", start = {"counter", "start_link", n}, shutdown = 2000}
--     end
--
--     function M.init(n)
--       process.flag("trap_exit", true)     -- so that terminate runs on shutdown
--       return "ok", n
--     end
--     function M.terminate(reason, n) --[[ save n somewhere ]] end
--     -- handle_call, handle_cast... as for any gen_server
--     return M
--
-- A child that does not trap exits dies at once with reason "shutdown" when its supervisor
-- stops it, and its terminate does not run. A module whose start_link starts a supervisor
-- says so in its child_spec: `{id = "my_sup", start = {"my_sup", "start_link", arg},
-- type = "supervisor"}` (shutdown then defaults to "infinity").
--
-- ## Child specs
--
--     {id = "cache",                                  -- any value, unique in the supervisor
--      start = {"cache", "start_link", arg1, ...},    -- module, function, args ({f, args...} too)
--      restart = "permanent" | "transient" | "temporary",   -- default "permanent"
--      shutdown = ms | "brutal_kill" | "infinity",    -- default 5000; "infinity" for supervisors
--      type = "worker" | "supervisor",                -- default "worker"
--      modules = {"cache"}}                           -- default {module of start}
--
-- Shorthands: `"mod"` is `mod.child_spec(nil)` if the module defines child_spec, else
-- `{id = "mod", start = {"mod", "start_link"}}`; `{"mod", arg}` is `mod.child_spec(arg)`, else
-- `{id = "mod", start = {"mod", "start_link", arg}}` (see childspec).
--
-- * restart: "permanent" children are always restarted (even after a "normal" exit);
--   "transient" ones only after an abnormal exit (not after "normal", "shutdown" or
--   {"shutdown", x}: their spec stays, with no pid); "temporary" ones never, and their spec
--   is removed when they end, fail to start, or are stopped with terminate_child.
-- * shutdown: with ms T the child is sent exit signal "shutdown" and killed if it is still
--   alive T ms later; "brutal_kill" kills it at once; "infinity" waits as long as it takes
--   (the usual choice for supervisors). Before that, the supervisor monitors and unlinks the
--   child, so its own exit message cannot be mistaken for a crash.
--
-- ## Client API
--
-- `sup` is a pid or a registered name. Calls wait as long as the supervisor needs
-- (no timeout) and raise `{"noproc"|reason, {"gen_server", "call", {sup, request, "infinity"}}}`
-- when the supervisor is not there or dies meanwhile.
--
-- * `start_link(children, [opts])` → pid | nil, reason. Starts the supervisor linked to the
--   caller, then its children in list order, each start finishing before the next. opts:
--   `strategy` ("one_for_one" default, "one_for_all", "rest_for_one"), `intensity`
--   (max restarts, default 3, integer >= 0), `period` (seconds, default 5, > 0), `name`.
--   Results: nil, {"supervisor_data", {"invalid_strategy"|"invalid_intensity"|
--   "invalid_period", value}} for bad options (nothing is spawned);
--   nil, {"already_started", pid} for a taken name; nil, {"start_spec", reason} for a child
--   spec that is not valid (reason as childspec.normalize gives it, or
--   {"duplicate_child_name", id}; no child is started); nil, {"shutdown",
--   {"failed_to_start_child", id, reason}} when a child fails to start (the children
--   already started are stopped, last first). In the last two cases the supervisor exits
--   with that reason, so a linked caller that does not trap exits dies with it, as in OTP.
-- * `start_child(sup, spec)` → pid; nil (no error) when the child returned "ignore" (the
--   spec is kept unless temporary); nil, {"already_started", pid} | "already_present"
--   (same id, not running) | {reason, full_spec} (the start failed; the spec is dropped)
--   | a spec error such as "missing_start".
-- * `terminate_child(sup, id)` → "ok" (also when it was not running) | nil, "not_found".
-- * `restart_child(sup, id)` → pid | nil (ignore) | nil, "running" | "restarting" |
--   "not_found" | the start's error reason.
-- * `delete_child(sup, id)` → "ok" | nil, "running" | "restarting" | "not_found".
-- * `which_children(sup)` → array of `{id, pid | nil | "restarting", type, modules}`, the
--   most recently added spec first (as OTP: a restart keeps the place).
-- * `count_children(sup)` → `{specs =, active =, supervisors =, workers =}` (active: children
--   whose process is alive; supervisors and workers count specs).
-- * `get_childspec(sup, id)` → the full spec (defaults filled in) | nil, "not_found".
-- * `stop(sup, [reason = "normal"], [timeout = "infinity"])` → "ok" after the children are
--   stopped (they always get "shutdown") and the supervisor has exited with reason
--   (raises as gen_server.stop).
-- * `child_spec(spec, [overrides])` → spec: expands a shorthand (`"mod"`, `{"mod", arg}`)
--   and merges the fields of `overrides` (id, start, restart, shutdown, type, modules) into
--   it, like Elixir's Supervisor.child_spec/2; an unknown field or an invalid result raises.
--   `child_spec({children, opts}, [overrides])` is the spec of a supervisor started with
--   `start_link(children, opts)`: id opts.name or "supervisor", type "supervisor", shutdown
--   "infinity". So the shorthand `{"supervisor", {children, opts}}` nests a supervisor.
--
-- ## Strategies, restarts, intensity
--
-- When a child ends and must be restarted: "one_for_one" restarts that child;
-- "one_for_all" stops the others (last started first), then starts all of them in order;
-- "rest_for_one" stops the children started after it (last first), then starts it and
-- them in order. Stopped temporary children are removed, not restarted. An exit that needs
-- no restart (temporary child, transient child with a normal reason) changes nothing else.
--
-- Every restart counts, and so does every failed attempt: when a restart fails (its start
-- returns an error), the child shows as "restarting" and the supervisor sends itself a
-- message to try again, handling the requests that came in the meantime first. If more than
-- `intensity` restarts happen within `period` seconds, the supervisor stops all its children
-- (last first) and exits with reason "shutdown"; a linked parent that traps exits gets
-- {"EXIT", sup, "shutdown"}. With intensity 0 the first exit to restart brings it down.
--
-- ## Termination
--
-- The supervisor traps exits. On `stop`, on an exit signal from its parent (the process
-- that called start_link; the supervisor then exits with the same reason) and when the
-- intensity is exceeded, it stops its children in reverse start order, one at a time.
--
-- ## Reports
--
-- "SUPERVISOR REPORT" entries go through logger.report (level "error") with fields
-- supervisor (name or pid), errorContext ("child_terminated", "start_error",
-- "shutdown_error", "shutdown"), reason and offender ({pid, id, mfargs, restart_type,
-- shutdown, child_type}): for a child that ends abnormally (not "normal", "shutdown" or
-- {"shutdown", x}), a start that fails at init or on restart, a child that does not stop as
-- its shutdown spec expects (e.g. "killed" after its timeout), and the intensity reached.
--
-- ## Internals
--
-- The supervisor is a gen_server whose callback module is this one: `init`,
-- `handle_call`, `handle_cast`, `handle_info` and `terminate` below are its callbacks, not
-- for users. `sys.get_state(sup)` gives `{name, strategy, intensity, period, children =
-- {{id, pid, restarting, spec}...} in start order, restarts = {ms...}}`.
-- @module supervisor

local process = require "process"
local gen_server = require "gen_server"
local childspec = require "childspec"

local type, pairs, ipairs, pcall, error, tostring = type, pairs, ipairs, pcall, error, tostring
local is_pid = process.is_pid
local same, quiet = gen_server._same, gen_server._quiet

local M = {}

local STRATEGIES = {one_for_one = true, one_for_all = true, rest_for_one = true}
local OVERRIDES = {id = true, start = true, restart = true, shutdown = true, type = true,
                   modules = true}

-- ===================================================================== client API

--- Checks the options; returns the supervisor flags or nil, {"supervisor_data", why}.
local function flags(opts)
  local strategy = opts.strategy or "one_for_one"
  local intensity = opts.intensity == nil and 3 or opts.intensity
  local period = opts.period == nil and 5 or opts.period
  local bad
  if not STRATEGIES[strategy] then bad = {"invalid_strategy", strategy}
  elseif math.type(intensity) ~= "integer" or intensity < 0 then
    bad = {"invalid_intensity", intensity}
  elseif type(period) ~= "number" or not (period > 0) then bad = {"invalid_period", period}
  end
  if bad then return nil, {"supervisor_data", bad} end
  return {strategy = strategy, intensity = intensity, period = period, name = opts.name}
end

function M.start_link(children, opts)
  if type(children) ~= "table" then
    error("bad argument #1 to 'start_link' (table of child specs expected, got " ..
          type(children) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'start_link' (table expected, got " .. type(opts) .. ")", 2)
  end
  local f, err = flags(opts or {})
  if f == nil then return nil, err end
  return gen_server.start_link("supervisor", {children, f}, {name = f.name})
end

--- A call whose reply is {"ok", value} or {"error", reason}: value | nil, reason.
local function request(sup, req)
  local r = gen_server.call(sup, req, "infinity")
  if r[1] == "ok" then return r[2] end
  return nil, r[2]
end

function M.start_child(sup, spec) return request(sup, {"start_child", spec}) end
function M.terminate_child(sup, id) return request(sup, {"terminate_child", id}) end
function M.restart_child(sup, id) return request(sup, {"restart_child", id}) end
function M.delete_child(sup, id) return request(sup, {"delete_child", id}) end
function M.which_children(sup) return request(sup, {"which_children"}) end
function M.count_children(sup) return request(sup, {"count_children"}) end
function M.get_childspec(sup, id) return request(sup, {"get_childspec", id}) end

function M.stop(sup, reason, timeout)
  return gen_server.stop(sup, reason or "normal", timeout or "infinity")
end

--- Is this the argument of the supervisor module's own child_spec ({children, opts})?
local function is_sup_arg(x)
  return x == nil or (type(x) == "table" and x.start == nil and x.id == nil and
                      (x[1] == nil or type(x[1]) == "table"))
end

function M.child_spec(spec, overrides)
  local base
  if is_sup_arg(spec) then
    local children, opts = spec and spec[1] or {}, spec and spec[2] or {}
    base = {id = opts.name or "supervisor", start = {"supervisor", "start_link", children, opts},
            type = "supervisor", shutdown = "infinity"}
  else
    local err
    base, err = childspec.expand(spec)
    if type(base) ~= "table" then
      error("bad argument #1 to 'child_spec' (" ..
            (err and require("pretty").format(err) or "child spec expected") .. ")", 2)
    end
    local c = {}
    for k, v in pairs(base) do c[k] = v end
    base = c
  end
  if overrides ~= nil then
    if type(overrides) ~= "table" then
      error("bad argument #2 to 'child_spec' (table expected)", 2)
    end
    for k, v in pairs(overrides) do
      if not OVERRIDES[k] then
        error("unknown key '" .. tostring(k) .. "' in child specification override", 2)
      end
      base[k] = v
    end
  end
  local ok, err = childspec.normalize(base)
  if not ok then
    error("invalid child specification: " .. require("pretty").format(err), 2)
  end
  return base
end

-- ===================================================================== reports

local function who(s)
  return s.name or tostring(process.self())
end

local function report(s, context, reason, child)
  childspec.report(who(s), context, reason, child.pid, child.spec)
end

-- ===================================================================== children

local function find(s, id)
  for i, c in ipairs(s.children) do
    if same(c.id, id) then return c, i end
  end
end

local function find_pid(s, pid)
  for _, c in ipairs(s.children) do
    if c.pid == pid then return c end
  end
end

local function remove(s, child)
  for i, c in ipairs(s.children) do
    if c == child then return table.remove(s.children, i) end
  end
end

--- The child has no process any more: a temporary spec goes, the others stay with no pid.
local function del_child(s, child)
  child.pid, child.restarting = nil, false
  if child.spec.restart == "temporary" then remove(s, child) end
end

--- Runs the child's start. Returns true (started or ignored) or false, reason.
local function start_one(child)
  child.restarting = false
  local tag, v = childspec.start(child.spec)
  if tag == "ok" then
    child.pid = v
    return true
  end
  child.pid = nil
  if tag == "ignore" then return true end
  return false, v
end

--- Stops a child process as its shutdown spec says; returns the reason it ended with.
-- Monitor first, then unlink: an EXIT already queued means it had ended by itself.
--- Stops one child (if it runs) and reports an unexpected end.
local function do_terminate(s, child)
  for _, f in ipairs(childspec.stop_children({child})) do
    report(s, "shutdown_error", f[2], child)
  end
  child.pid, child.restarting = nil, false
end

--- Stops the children of `list` (in start order) last first; temporary ones are removed.
local function terminate_children(s, list)
  for i = #list, 1, -1 do
    local child = list[i]
    do_terminate(s, child)
    if child.spec.restart == "temporary" then remove(s, child) end
  end
end

--- Starts the children of `list` in order. On a failure: report, mark the child as
-- restarting, and return it (the ones after it stay without a pid).
local function restart_children(s, list)
  for _, child in ipairs(list) do
    if find(s, child.id) == child then
      local ok, reason = start_one(child)
      if not ok then
        report(s, "start_error", reason, child)
        child.restarting = true
        return child
      end
    end
  end
end

--- Records a restart now; false when that makes more than `intensity` within `period`.
local function add_restart(s)
  local ok
  s.restarts, ok = childspec.add_restart(s.restarts, s.intensity, s.period * 1000)
  return ok
end

local function try_again(child)
  gen_server.cast(process.self(), {"try_again_restart", child.id})
end

--- Restarts `child` (whose process is gone) by the strategy. Returns true when the
-- intensity is exceeded and the supervisor must stop.
local function restart(s, child)
  if not add_restart(s) then
    report(s, "shutdown", "reached_max_restart_intensity", child)
    del_child(s, child)
    return true
  end
  child.pid = nil
  local failed
  if s.strategy == "one_for_one" then
    local ok, reason = start_one(child)
    if not ok then
      report(s, "start_error", reason, child)
      child.restarting = true
      failed = child
    end
  else
    local _, i = find(s, child.id)
    if s.strategy == "one_for_all" then i = 1 end
    local list = table.move(s.children, i, #s.children, 1, {})
    terminate_children(s, list)
    failed = restart_children(s, list)
  end
  if failed then try_again(failed) end
  return false
end

--- A child process ended with reason: restart it or not, as its restart type says.
local function child_exited(s, child, reason)
  local restart_type = child.spec.restart
  if not quiet(reason) then report(s, "child_terminated", reason, child) end
  if restart_type == "permanent" or (restart_type == "transient" and not quiet(reason)) then
    return restart(s, child)
  end
  del_child(s, child)
  return false
end

-- ===================================================================== gen_server callbacks

--- Normalizes the specs; returns the child records or nil, {"start_spec", why}.
local function init_children(list)
  local children = {}
  for _, raw in ipairs(list) do
    local ok, spec, err = pcall(childspec.normalize, raw)
    if not ok then return nil, {"start_spec", spec} end
    if spec == nil then return nil, {"start_spec", err} end
    for _, c in ipairs(children) do
      if same(c.id, spec.id) then return nil, {"start_spec", {"duplicate_child_name", spec.id}} end
    end
    children[#children + 1] = {id = spec.id, pid = nil, restarting = false, spec = spec}
  end
  return children
end

function M.init(arg)
  process.flag("trap_exit", true)
  local f = arg[2]
  local children, err = init_children(arg[1])
  if children == nil then return "stop", err end
  local s = {name = f.name, strategy = f.strategy, intensity = f.intensity, period = f.period,
             children = children, restarts = {}}
  local started = {}
  for _, child in ipairs(table.move(children, 1, #children, 1, {})) do
    local ok, reason = start_one(child)
    if not ok then
      report(s, "start_error", reason, child)
      terminate_children(s, started)
      return "stop", {"shutdown", {"failed_to_start_child", child.id, reason}}
    end
    if child.pid == nil and child.spec.restart == "temporary" then remove(s, child) end
    started[#started + 1] = child
  end
  return "ok", s
end

local CALLS = {}

function CALLS.start_child(s, req)
  local ok, spec, err = pcall(childspec.normalize, req[2])
  if not ok then return {"error", spec} end
  if spec == nil then return {"error", err} end
  local old = find(s, spec.id)
  if old then
    if is_pid(old.pid) then return {"error", {"already_started", old.pid}} end
    return {"error", "already_present"}
  end
  local child = {id = spec.id, pid = nil, restarting = false, spec = spec}
  local started, reason = start_one(child)
  if not started then return {"error", {reason, spec}} end
  if child.pid ~= nil or spec.restart ~= "temporary" then s.children[#s.children + 1] = child end
  return {"ok", child.pid}
end

function CALLS.terminate_child(s, req)
  local child = find(s, req[2])
  if child == nil then return {"error", "not_found"} end
  do_terminate(s, child)
  del_child(s, child)
  return {"ok", "ok"}
end

function CALLS.restart_child(s, req)
  local child = find(s, req[2])
  if child == nil then return {"error", "not_found"} end
  if child.restarting then return {"error", "restarting"} end
  if is_pid(child.pid) then return {"error", "running"} end
  local ok, reason = start_one(child)
  if not ok then return {"error", reason} end
  return {"ok", child.pid}
end

function CALLS.delete_child(s, req)
  local child = find(s, req[2])
  if child == nil then return {"error", "not_found"} end
  if child.restarting then return {"error", "restarting"} end
  if is_pid(child.pid) then return {"error", "running"} end
  remove(s, child)
  return {"ok", "ok"}
end

function CALLS.which_children(s)
  local list, n = {}, #s.children
  for i = n, 1, -1 do
    local c = s.children[i]
    local pid = c.pid
    if c.restarting then pid = "restarting" end
    list[#list + 1] = {c.id, pid, c.spec.type, c.spec.modules}
  end
  return {"ok", list}
end

function CALLS.count_children(s)
  local counts = {specs = 0, active = 0, supervisors = 0, workers = 0}
  for _, c in ipairs(s.children) do
    counts.specs = counts.specs + 1
    if is_pid(c.pid) and process.alive(c.pid) then counts.active = counts.active + 1 end
    if c.spec.type == "supervisor" then counts.supervisors = counts.supervisors + 1
    else counts.workers = counts.workers + 1 end
  end
  return {"ok", counts}
end

function CALLS.get_childspec(s, req)
  local child = find(s, req[2])
  if child == nil then return {"error", "not_found"} end
  return {"ok", child.spec}
end

function M.handle_call(req, from, s)
  local f = type(req) == "table" and type(req[1]) == "string" and CALLS[req[1]]
  if not f then
    require("logger").report("error", "Supervisor " .. who(s) .. " received unexpected call",
      {{"request", req, quote = true}})
    return "reply", {"error", {"unknown_call", req}}, s
  end
  return "reply", f(s, req), s
end

function M.handle_cast(msg, s)
  if type(msg) == "table" and msg[1] == "try_again_restart" then
    local child = find(s, msg[2])
    if child and child.restarting and restart(s, child) then return "stop", "shutdown", s end
    return "noreply", s
  end
  require("logger").report("error", "Supervisor " .. who(s) .. " received unexpected cast",
    {{"message", msg, quote = true}})
  return "noreply", s
end

function M.handle_info(msg, s)
  if type(msg) == "table" and msg[1] == "EXIT" then
    local child = find_pid(s, msg[2])
    if child and child_exited(s, child, msg[3]) then return "stop", "shutdown", s end
    return "noreply", s
  end
  require("logger").report("error", "Supervisor " .. who(s) .. " received unexpected message",
    {{"message", msg, quote = true}})
  return "noreply", s
end

function M.terminate(reason, s)
  terminate_children(s, table.move(s.children, 1, #s.children, 1, {}))
end

return M
