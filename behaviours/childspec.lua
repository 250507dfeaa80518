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

--- mod.child_spec(arg) when the module has one, else the default spec.
local function from_module(mod, arg, has_arg)
  local ok, m = pcall(require, mod)
  if ok and type(m) == "table" and type(m.child_spec) == "function" then
    return m.child_spec(arg)
  end
  local start = {mod, "start_link"}
  if has_arg then start[3] = arg end
  return {id = mod, start = start}
end

local function valid_shutdown(s)
  return s == "brutal_kill" or s == "infinity" or (math.type(s) == "integer" and s >= 0)
end

--- The spec with defaults filled in, or nil and the reason it is not one.
function M.normalize(spec)
  if type(spec) == "string" then spec = from_module(spec, nil, false)
  elseif type(spec) == "table" and spec.start == nil and type(spec[1]) == "string" then
    spec = from_module(spec[1], spec[2], true)
  end
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

return M
