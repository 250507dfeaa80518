--- childspec — child specifications shared by supervisor and dynamic_supervisor.
--
-- A child spec is a table:
--
--     {id = "cache",                                  -- any value; unique in a supervisor
--      start = {"cache", "start_link", arg1, ...},    -- module name, function name, args
--      restart = "permanent" | "transient" | "temporary",   -- default "permanent"
--      shutdown = ms | "brutal_kill" | "infinity",    -- default 5000, "infinity" for supervisors
--      type = "worker" | "supervisor",                -- default "worker"
--      modules = {"cache"}}                           -- default {module of start}
--
-- `start` may also be `{f, arg1, ...}` with f a function (copied into the supervisor).
-- Shorthands, as Elixir's: a module name `"mod"` means `mod.child_spec(nil)` when the module
-- defines child_spec, else `{id = "mod", start = {"mod", "start_link"}}`; `{"mod", arg}`
-- means `mod.child_spec(arg)`, else `{id = "mod", start = {"mod", "start_link", arg}}`.
-- The start function must link the child to its caller (the supervisor) and return
-- pid | "ignore" | nil, reason.
--
-- Also here, since both supervisors need them: the SUPERVISOR REPORT (`report`), the
-- restart-intensity window (`add_restart`) and stopping children by their specs
-- (`stop_children`).
-- @module childspec

local process = require "process"

local type, pcall, error, pairs = type, pcall, error, pairs
local table_pack, table_unpack = table.pack, table.unpack

local M = {}

local RESTARTS = {permanent = true, transient = true, temporary = true}
local TYPES = {worker = true, supervisor = true}

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- mod.child_spec(arg) when the module has one, else the default spec; nil and the
-- error when the module cannot be loaded.
local function from_module(mod, arg, has_arg)
  local ok, m = pcall(require, mod)
  if not ok then return nil, {"invalid_child_spec", {"cannot load", mod, m}} end
  if type(m) == "table" and type(m.child_spec) == "function" then return m.child_spec(arg) end
  local start = {mod, "start_link"}
  if has_arg then start[3] = arg end
  return {id = mod, start = start}
end

--- The table a shorthand stands for ("mod", {"mod", arg}), without defaults; other values
-- as they are. nil and a reason when the shorthand's module cannot be loaded.
function M.expand(spec)
  if type(spec) == "string" then return from_module(spec, nil, false) end
  if type(spec) == "table" and spec.start == nil and type(spec[1]) == "string" then
    return from_module(spec[1], spec[2], #spec >= 2)
  end
  return spec
end

local function valid_shutdown(s)
  return s == "brutal_kill" or s == "infinity" or (math.type(s) == "integer" and s >= 0)
end

--- The spec with defaults filled in, or nil and the reason it is not one.
function M.normalize(spec)
  local err
  spec, err = M.expand(spec)
  if spec == nil and err ~= nil then return nil, err end
  if type(spec) ~= "table" then return nil, {"invalid_child_spec", spec} end
  if spec.start == nil then return nil, "missing_start" end
  if spec.id == nil then return nil, {"invalid_child_spec", {"missing_id", spec}} end
  local s = copy(spec)
  local start = s.start
  if type(start) ~= "table" or not (type(start[1]) == "function" or
      (type(start[1]) == "string" and type(start[2]) == "string")) then
    return nil, {"invalid_mfa", start}
  end
  s.restart = s.restart or "permanent"
  s.type = s.type or "worker"
  if s.shutdown == nil then s.shutdown = s.type == "supervisor" and "infinity" or 5000 end
  if not RESTARTS[s.restart] then return nil, {"invalid_restart_type", s.restart} end
  if not TYPES[s.type] then return nil, {"invalid_child_type", s.type} end
  if not valid_shutdown(s.shutdown) then return nil, {"invalid_shutdown", s.shutdown} end
  s.modules = s.modules or {type(start[1]) == "string" and start[1] or "?"}
  return s
end

--- Like normalize, but an invalid spec raises (for specs given by programmers at init).
function M.check(spec)
  local s, err = M.normalize(spec)
  if s == nil then error(err, 2) end
  return s
end

local function last_index(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) == "integer" and k > n then n = k end
  end
  return n
end

--- Runs the spec's start function, with `extra` arguments put in front of its own.
-- Returns "ok", pid | "ignore" | "error", reason.
function M.start(spec, extra)
  local start, f, args = spec.start, nil, {}
  local first
  if type(start[1]) == "function" then
    f, first = start[1], 2
  else
    local ok, mod = pcall(require, start[1])
    if not ok then return "error", mod end
    f, first = type(mod) == "table" and mod[start[2]], 3
    if type(f) ~= "function" then return "error", {"undef", {start[1], start[2]}} end
  end
  local n = 0
  for _, v in ipairs(extra or {}) do
    n = n + 1
    args[n] = v
  end
  for i = first, last_index(start) do   -- nil arguments keep their place
    n = n + 1
    args[n] = start[i]
  end
  local r = table_pack(pcall(f, table_unpack(args, 1, n)))
  if not r[1] then return "error", r[2] end
  if process.is_pid(r[2]) then return "ok", r[2] end
  if r[2] == "ignore" then return "ignore" end
  if r[2] == nil and r.n >= 3 then return "error", r[3] end
  return "error", {"bad_return_value", r[2]}
end

-- ===================================================================== supervising

--- The start's function and its arguments (extra ones first), as reports show them.
local function mfargs(spec, extra)
  local start, args = spec.start, {}
  local first = type(start[1]) == "function" and 2 or 3
  for _, v in ipairs(extra or {}) do args[#args + 1] = v end
  for i = first, last_index(start) do args[#args + 1] = start[i] end
  if first == 2 then return {start[1], args} end
  return {start[1], start[2], args}
end

--- A SUPERVISOR REPORT about a child, as OTP writes it: the supervisor (its name or pid),
-- the context ("child_terminated", "start_error", "shutdown_error", "shutdown"), the
-- reason, and the offender (pid, id, mfargs, restart_type, shutdown, child_type).
function M.report(supervisor, context, reason, pid, spec, extra)
  require("logger").report("error", nil, {
    {"supervisor", supervisor},
    {"errorContext", context},
    {"reason", reason, quote = true},
    {"offender", {{"pid", pid or "undefined"}, {"id", spec.id}, {"mfargs", mfargs(spec, extra)},
                  {"restart_type", spec.restart}, {"shutdown", spec.shutdown},
                  {"child_type", spec.type}}}}, "SUPERVISOR REPORT")
end

--- Notes a restart now in `history` (times in ms). Returns the new history and whether it
-- holds no more than `intensity` restarts within the last `period_ms`: one more, and the
-- supervisor gives up (OTP's max_restarts/max_seconds).
function M.add_restart(history, intensity, period_ms)
  local now = process.monotonic()
  local kept = {}
  for _, t in ipairs(history) do
    if now - t <= period_ms then kept[#kept + 1] = t end
  end
  kept[#kept + 1] = now
  return kept, #kept <= intensity
end

--- Did a child that was being stopped end as its spec expects? (OTP's rule: "killed" for
-- brutal_kill, else "shutdown"; "normal" is fine for a child that is not permanent.)
local function expected_end(spec, reason)
  if reason == "normal" and spec.restart ~= "permanent" then return true end
  if spec.shutdown == "brutal_kill" then return reason == "killed" end
  return reason == "shutdown"
end

local ANY = process.ANY

--- Stops one running child's process: monitor it, unlink (an EXIT already in the mailbox
-- means it ended by itself: that is its reason), then the exit signal. Returns the ref to
-- wait on, or nil and the reason it already ended with.
local function signal_stop(child)
  local pid = child.pid
  local ref = process.monitor(pid)
  process.unlink(pid)
  local gone = process.receive({"EXIT", pid, ANY}, 0)
  if gone then
    process.receive({"DOWN", ref})
    return nil, gone[3]
  end
  process.exit(pid, child.spec.shutdown == "brutal_kill" and "kill" or "shutdown")
  return ref
end

--- Stops the running children of `list` (records with `pid` and `spec`) together: each gets
-- "shutdown" ("kill" for brutal_kill), and is killed when still alive after its shutdown
-- ms ("infinity": waits). Returns {child, reason} for each that ended otherwise than its
-- spec expects (those are the "shutdown_error" reports). To stop children one after
-- another, as supervisor does, call it with one child at a time.
function M.stop_children(list)
  local waiting, deadlines, n, failed = {}, {}, 0, {}
  for _, child in ipairs(list) do
    if process.is_pid(child.pid) then
      local ref, reason = signal_stop(child)
      if ref == nil then
        if not expected_end(child.spec, reason) then failed[#failed + 1] = {child, reason} end
      else
        waiting[ref], n = child, n + 1
        if math.type(child.spec.shutdown) == "integer" then
          deadlines[#deadlines + 1] = {at = process.monotonic() + child.spec.shutdown, ref = ref}
        end
      end
    end
  end
  local function ours(m)
    return type(m) == "table" and m[1] == "DOWN" and waiting[m[2]] ~= nil
  end
  while n > 0 do
    local now, next_at = process.monotonic(), nil
    for _, d in ipairs(deadlines) do
      if waiting[d.ref] and not d.killed then
        if d.at <= now then
          process.exit(waiting[d.ref].pid, "kill")
          d.killed = true
        elseif next_at == nil or d.at < next_at then
          next_at = d.at
        end
      end
    end
    local down = process.receive(ours, next_at and math.floor(next_at - now) + 1 or "infinity")
    if down then
      local child = waiting[down[2]]
      waiting[down[2]], n = nil, n - 1
      if down[5] ~= "noproc" and not expected_end(child.spec, down[5]) then
        failed[#failed + 1] = {child, down[5]}
      end
    end
  end
  return failed
end

return M
