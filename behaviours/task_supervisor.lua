--- task_supervisor — tasks started under a supervisor, as Elixir's Task.Supervisor.
--
--     local task_supervisor, task = require "task_supervisor", require "task"
--     local sup = task_supervisor.start_link({name = "jobs"})
--     local t = task_supervisor.async_nolink("jobs", function() return risky() end)
--     local how, v = task.yield(t, 1000)     -- "ok", v | "exit", reason | nil
--
-- A task supervisor is a dynamic_supervisor whose children are task processes; its
-- options are dynamic_supervisor's (`name`, `max_children`, `intensity`, `period`, ...).
-- Supervised tasks are stopped when the supervisor shuts down, so a tree can own the work it
-- started.
--
-- * `start_link([opts])` → pid | nil, reason.
-- * `async(sup, f, ...)` → a task (see `task`): started by sup, linked to the caller and
--   monitored by it, awaited with task.await / task.yield. A failing task brings down a
--   caller that does not trap exits.
-- * `async_nolink(sup, f, ...)` → a task monitored by the caller but not linked: a failure
--   only shows in task.yield (`"exit", reason`) or as a DOWN; the caller lives on.
-- * `start_child(sup, f, [opts])` → pid | nil, reason: a task nobody awaits (fire and
--   forget). opts: `restart` ("temporary" by default, or "transient": restarted if it
--   fails), `shutdown` (ms or "brutal_kill", default 5000). f may be "mod.fn".
-- * `children(sup)` → the pids of the running tasks.
-- * `terminate_child(sup, pid)` → "ok" | nil, "not_found".
-- * `child_spec(opts)` → a spec for a parent supervisor (type "supervisor").
--
-- async and async_nolink raise `{reason, {"task_supervisor", "async", {sup}}}` when the
-- supervisor cannot start the task (it is gone, or has max_children running).
-- @module task_supervisor

local dynamic_supervisor = require "dynamic_supervisor"
local process = require "process"
local task = require "task"

local M = {}

function M.start_link(opts)
  return dynamic_supervisor.start_link(opts)
end

function M.child_spec(opts)
  return dynamic_supervisor.child_spec(opts)
end

local function start_task(sup, link, fname, f, ...)
  local spec = {id = "task", restart = "temporary",
                start = {"task", "_start_link", process.self(), f, ...}}
  local ok, pid, err = pcall(dynamic_supervisor.start_child, sup, spec)
  if not ok then err = type(pid) == "table" and pid[1] or pid end
  if not ok or pid == nil or pid == "ignore" then
    error({err or pid, {"task_supervisor", fname, {sup}}})
  end
  return task._connect(pid, link)
end

function M.async(sup, f, ...) return start_task(sup, true, "async", f, ...) end

function M.async_nolink(sup, f, ...) return start_task(sup, false, "async_nolink", f, ...) end

function M.start_child(sup, f, opts)
  opts = opts or {}
  return dynamic_supervisor.start_child(sup, {
    id = "task", start = {"task", "start_link", f},
    restart = opts.restart or "temporary", shutdown = opts.shutdown or 5000})
end

function M.children(sup)
  local pids = {}
  for _, c in ipairs(dynamic_supervisor.which_children(sup)) do
    if process.is_pid(c[2]) then pids[#pids + 1] = c[2] end
  end
  return pids
end

function M.terminate_child(sup, pid)
  return dynamic_supervisor.terminate_child(sup, pid)
end

return M
