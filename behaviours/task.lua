--- task — run a function in a process of its own and collect its result.
--
-- A thin layer over `process`, as Elixir's Task (OTP 25 / Elixir 1.14 semantics).
--
-- ## Example
--
--     local task = require "task"
--     local t = task.async(function(url) return fetch(url) end, "http://example.org/")
--     -- ... do something else meanwhile ...
--     local page = task.await(t)              -- raises if the task fails or takes > 5 s
--
--     for _, r in ipairs(task.async_stream({1, 2, 3}, function(n) return n * n end)) do
--       print(r[1], r[2])                      -- "ok" 1, "ok" 4, "ok" 9
--     end
--
-- `f` is a function (copied into the task with its upvalues, as process.spawn copies it) or
-- a string `"mod.fn"` (the task requires mod and calls mod.fn). The extra arguments are
-- copied too.
--
-- ## Awaited tasks
--
-- * `async(f, ...)` → a task `{pid =, ref =, owner =}`. The task runs `f(...)` in a new
--   process, linked to the caller (the owner) and monitored by it. It sends its result (the
--   first value f returns) to the owner and then exits "normal". The result goes to `ref`,
--   an alias that ends with the monitor: once the owner has stopped waiting for a task
--   (await timed out, shutdown) no late result can reach it. If the task fails, the link
--   brings down an owner that does not trap exits; a trapping owner gets the
--   `{"EXIT", pid, reason}` message (also `"normal"` when the task ends well, as in Elixir).
-- * `await(t, [timeout = 5000])` → the result. Removes the monitor and flushes its DOWN.
--   Raises `{why, {"task", "await", {t, timeout}}}`: why is "timeout" (the task is not
--   stopped, but its result will not be delivered any more; await it again and the call
--   times out) or the task's exit reason when it ended without a result (even "normal").
--   Awaiting a task that was already awaited times out.
-- * `yield(t, [timeout = 5000])` → `"ok", v` | `"exit", reason` | nil when nothing came in
--   time (the task keeps running and can be yielded or awaited again).
-- * `yield_many(tasks, [timeout = 5000])` → `{{task, result}, ...}` in the order of tasks,
--   result being `{"ok", v}`, `{"exit", reason}`, or nil for the tasks still running when
--   the time was up (those keep running).
-- * `shutdown(t, [timeout = 5000 | "brutal_kill"])` → `"ok", v` if the result had already
--   come, `"exit", reason` if the task had ended otherwise, nil if it was stopped. Unlinks
--   the task, sends it the exit signal "shutdown" (or "kill" for "brutal_kill") and waits
--   for its end; a task still alive after timeout ms is killed.
-- * `async_stream(list, f, [opts])` → an array with one `{"ok", f(item)}` or
--   `{"exit", reason}` per item of list, each item run as an async task. opts:
--   `max_concurrency` (tasks at once; default process.schedulers()), `ordered` (default
--   true: results in input order; false: in completion order), `timeout` (ms per item,
--   from its start; default 5000), `on_timeout` ("exit" (default): the running tasks are
--   killed and the caller exits with `{"timeout", {"task", "async_stream", {timeout}}}`;
--   "kill_task": the late task is killed and its item is `{"exit", "timeout"}`),
--   `zip_input_on_exit` (exit items become `{"exit", {item, reason}}`). The tasks are
--   linked to the caller as with async: a failing item brings down a caller that does not
--   trap exits.
--
-- await, yield, yield_many and shutdown must be called by the task's owner; from another
-- process they raise an argument error.
--
-- ## Tasks with nothing to await
--
-- * `start(f, ...)` → pid: runs f(...) in a new process, not linked.
-- * `start_link(f, ...)` → pid: the same, linked to the caller (a failure reaches it).
-- * `child_spec(f, ...)` → `{id = "task", start = {"task", "start_link", f, ...},
--   restart = "temporary"}` for a supervisor: a task that is not restarted.
--
-- A task process that fails (raises, or exits with a reason other than "normal",
-- "shutdown" or {"shutdown", x}) gets a crash report from the runtime.
--
-- ## The task process (internal, for task_supervisor)
--
-- An awaited task is started in two steps, so that a supervisor can start the process and
-- the caller can then own it:
--
-- 1. `task._start_link(owner, f, ...)` → pid (usable as a child spec's start
--    `{"task", "_start_link", owner, f, ...}`): spawns `task._body(owner, f, ...)` linked to
--    the caller. The body monitors owner and waits for its connect message; it exits
--    `{"shutdown", reason}` if owner ends first.
-- 2. `task._connect(pid, link)`, called by owner → the task table: links the caller to the
--    task when `link` (a dead task is not an error: await then reports "noproc"),
--    monitors it with an alias, and sends `{"$task_connect", owner, ref}`; the body then
--    runs f(...) and sends `{ref, result}` to the alias.
--
-- async is `_connect(process.spawn_link("task._body", self, f, ...), false)`. A task that
-- nobody awaits (task_supervisor.start_child) is simply `task.start_link(f, ...)`.
-- @module task

local process = require "process"

local ANY = process.ANY
local type, error, tostring, pairs, ipairs, pcall = type, error, tostring, pairs, ipairs, pcall
local string_format, math_ceil, math_max = string.format, math.ceil, math.max

local M = {}

-- ===================================================================== checks

--- Raises an argument error; level as error's, seen from bad_arg's caller (2: its caller).
local function bad_arg(level, argn, fname, msg)
  error(string_format("bad argument #%d to '%s' (%s)", argn, fname, msg), level + 1)
end

local function is_fun(f)
  return type(f) == "function" or (type(f) == "string" and f:match("^.+%.[^.]+$") ~= nil)
end

local function check_fun(f, argn, fname)
  if not is_fun(f) then
    bad_arg(3, argn, fname, "function or \"module.function\" expected, got " ..
            (type(f) == "string" and string_format("%q", f) or type(f)))
  end
end

local function check_timeout(timeout, argn, fname, extra)
  if timeout == "infinity" or (extra and timeout == extra) or
     (type(timeout) == "number" and timeout >= 0) then
    return
  end
  bad_arg(3, argn, fname, "timeout expected, got " .. tostring(timeout))
end

local function check_task(t, argn, fname)
  if type(t) ~= "table" or not process.is_pid(t.pid) or not process.is_ref(t.ref) then
    bad_arg(3, argn, fname, "task expected, got " .. type(t))
  end
  local me = process.self()
  if t.owner ~= me then
    bad_arg(3, argn, fname, string_format("task %s must be queried from its owner %s, not from %s",
                                       tostring(t.pid), tostring(t.owner), tostring(me)))
  end
end

-- ===================================================================== the task process

--- The function f names: itself, or mod.fn for "mod.fn".
local function resolve(f)
  if type(f) == "function" then return f end
  local modname, fname = f:match("^(.+)%.([^.]+)$")
  local fn = require(modname)[fname]
  if type(fn) ~= "function" then error(f .. " is not a function", 0) end
  return fn
end

--- Body of an awaited task: waits to be connected by owner, runs f, sends the result.
function M._body(owner, f, ...)
  local mref = process.monitor(owner)
  local msg = process.receive(process.any_of({"$task_connect", owner}, {"DOWN", mref}))
  if msg[1] == "DOWN" then process.exit({"shutdown", msg[5]}) end
  process.demonitor(mref, {flush = true})
  local reply_to = msg[3]
  local result = resolve(f)(...)
  process.send(reply_to, {reply_to, result})
end

function M._start_link(owner, f, ...)
  return process.spawn_link("task._body", owner, f, ...)
end

function M._connect(pid, link)
  local owner = process.self()
  if link then pcall(process.link, pid) end
  local ref = process.monitor(pid, {alias = true})
  process.send(pid, {"$task_connect", owner, ref})
  return {pid = pid, ref = ref, owner = owner}
end

-- ===================================================================== awaited tasks

function M.async(f, ...)
  check_fun(f, 1, "async")
  local ok, pid = pcall(process.spawn_link, "task._body", process.self(), f, ...)
  if not ok then
    -- a value that cannot be copied: number it as async's argument, not _body's
    if type(pid) == "string" then
      pid = pid:gsub("^arg #(%d+)", function(k) return "arg #" .. (tonumber(k) - 1) end)
    end
    error(pid, 0)
  end
  return M._connect(pid, false)
end

--- The task's result or DOWN, if one comes within timeout.
local function outcome(ref, timeout)
  return process.receive(process.any_of({ref, ANY}, {"DOWN", ref}), timeout)
end

function M.await(t, timeout)
  if timeout == nil then timeout = 5000 end
  check_task(t, 1, "await")
  check_timeout(timeout, 2, "await")
  local ref = t.ref
  local msg = outcome(ref, timeout)
  if msg == nil then
    process.demonitor(ref, {flush = true})   -- ends the alias: no late result
    process.receive({ref, ANY}, 0)           -- one that came in meanwhile
    error({"timeout", {"task", "await", {t, timeout}}})
  end
  if msg[1] == "DOWN" then error({msg[5], {"task", "await", {t, timeout}}}) end
  process.demonitor(ref, {flush = true})
  return msg[2]
end

function M.yield(t, timeout)
  if timeout == nil then timeout = 5000 end
  check_task(t, 1, "yield")
  check_timeout(timeout, 2, "yield")
  local msg = outcome(t.ref, timeout)
  if msg == nil then return nil end
  if msg[1] == "DOWN" then return "exit", msg[5] end
  process.demonitor(t.ref, {flush = true})
  return "ok", msg[2]
end

--- ms left until deadline (nil: no deadline), as a receive timeout.
local function left(deadline)
  if deadline == nil then return "infinity" end
  return math_ceil(math_max(0, deadline - process.monotonic()))
end

function M.yield_many(tasks, timeout)
  if timeout == nil then timeout = 5000 end
  if type(tasks) ~= "table" then bad_arg(2, 1, "yield_many", "table expected, got " .. type(tasks)) end
  check_timeout(timeout, 2, "yield_many")
  local results, pending, waiting = {}, {}, 0
  for i, t in ipairs(tasks) do
    check_task(t, 1, "yield_many")
    results[i] = {t}
    pending[t.ref] = i
    waiting = waiting + 1
  end
  local function wanted(m)
    if type(m) ~= "table" then return false end
    if m[1] == "DOWN" then return pending[m[2]] ~= nil end
    return m[1] ~= nil and pending[m[1]] ~= nil
  end
  local deadline = timeout ~= "infinity" and process.monotonic() + timeout or nil
  while waiting > 0 do
    local msg = process.receive(wanted, left(deadline))
    if msg == nil then break end
    if msg[1] == "DOWN" then
      results[pending[msg[2]]][2] = {"exit", msg[5]}
      pending[msg[2]] = nil
    else
      process.demonitor(msg[1], {flush = true})
      results[pending[msg[1]]][2] = {"ok", msg[2]}
      pending[msg[1]] = nil
    end
    waiting = waiting - 1
  end
  return results
end

--- Is this process monitoring pid (by any monitor)?
local function monitoring(pid)
  for _, p in ipairs(process.info(process.self()).monitors) do
    if p == pid then return true end
  end
  return false
end

function M.shutdown(t, timeout)
  if timeout == nil then timeout = 5000 end
  check_task(t, 1, "shutdown")
  check_timeout(timeout, 2, "shutdown", "brutal_kill")
  local pid, ref = t.pid, t.ref
  process.unlink(pid)
  local mon = process.monitor(pid)
  local expected = timeout == "brutal_kill" and "killed" or "shutdown"
  process.exit(pid, timeout == "brutal_kill" and "kill" or "shutdown")
  local down = process.receive({"DOWN", mon}, expected == "killed" and "infinity" or timeout)
  if down == nil then
    process.exit(pid, "kill")
    expected = "killed"
    down = process.receive({"DOWN", mon})
  end
  local reason = down[5]
  -- A result was sent before the task's end, so it is here by now.
  local msg = outcome(ref, 0)
  if reason == "noproc" then
    -- The task had ended before our monitor: its own DOWN tells how. That may still be on
    -- its way (a dead process leaves the table before it tells its monitors), so wait
    -- while a monitor of ours on it is active.
    while msg == nil and monitoring(pid) do msg = outcome(ref, 10) end
    if msg == nil then return "exit", "noproc" end
    if msg[1] == "DOWN" then reason = msg[5] end
  end
  process.demonitor(ref, {flush = true})
  if msg ~= nil and msg[1] == ref then return "ok", msg[2] end
  if reason == expected or reason == "shutdown" then return nil end
  return "exit", reason
end

-- ===================================================================== async_stream

local STREAM_DEFAULTS = {ordered = true, timeout = 5000, on_timeout = "exit",
                         zip_input_on_exit = false}

local function stream_opts(opts)
  if opts ~= nil and type(opts) ~= "table" then
    bad_arg(3, 3, "async_stream", "table expected, got " .. type(opts))
  end
  local o = {}
  for k, v in pairs(STREAM_DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.max_concurrency == nil then o.max_concurrency = process.schedulers() end
  if math.type(o.max_concurrency) ~= "integer" or o.max_concurrency < 1 then
    bad_arg(3, 3, "async_stream", "max_concurrency must be a positive integer")
  end
  if o.on_timeout ~= "exit" and o.on_timeout ~= "kill_task" then
    bad_arg(3, 3, "async_stream", "on_timeout must be \"exit\" or \"kill_task\"")
  end
  if not (o.timeout == "infinity" or (type(o.timeout) == "number" and o.timeout >= 0)) then
    bad_arg(3, 3, "async_stream", "timeout expected, got " .. tostring(o.timeout))
  end
  return o
end

--- Stops a stream task that is still running and drops whatever it sends.
local function kill_task(t)
  process.unlink(t.pid)
  process.exit(t.pid, "kill")
  process.demonitor(t.ref, {flush = true})
  process.receive({t.ref, ANY}, 0)
end

function M.async_stream(list, f, opts)
  if type(list) ~= "table" then bad_arg(2, 1, "async_stream", "table expected, got " .. type(list)) end
  check_fun(f, 2, "async_stream")
  local o = stream_opts(opts)
  local n = #list
  local results, done = {}, 0
  local running, nrunning, next_item = {}, 0, 1

  local function finish(e, item)
    running[e.task.ref] = nil
    nrunning = nrunning - 1
    done = done + 1
    results[o.ordered and e.i or done] = item
  end
  local function exit_item(e, reason)
    if o.zip_input_on_exit then reason = {list[e.i], reason} end
    return {"exit", reason}
  end
  local function wanted(m)
    if type(m) ~= "table" then return false end
    if m[1] == "DOWN" then return running[m[2]] ~= nil end
    return m[1] ~= nil and running[m[1]] ~= nil
  end

  while true do
    while nrunning < o.max_concurrency and next_item <= n do
      local ok, t = pcall(M.async, f, list[next_item])
      if not ok then                            -- e.g. an item that cannot be copied
        for _, e in pairs(running) do kill_task(e.task) end
        error(t, 0)
      end
      running[t.ref] = {i = next_item, task = t,
                        deadline = o.timeout ~= "infinity" and process.monotonic() + o.timeout or nil}
      nrunning, next_item = nrunning + 1, next_item + 1
    end
    if nrunning == 0 then break end
    local soonest
    for _, e in pairs(running) do
      if e.deadline and (soonest == nil or e.deadline < soonest) then soonest = e.deadline end
    end
    local msg = process.receive(wanted, left(soonest))
    if msg == nil then
      if o.on_timeout == "exit" then
        for _, e in pairs(running) do kill_task(e.task) end
        error({"timeout", {"task", "async_stream", {o.timeout}}})
      end
      local now = math_max(process.monotonic(), soonest)
      for _, e in pairs(running) do
        if e.deadline and e.deadline <= now then
          kill_task(e.task)
          finish(e, exit_item(e, "timeout"))
        end
      end
    elseif msg[1] == "DOWN" then
      finish(running[msg[2]], exit_item(running[msg[2]], msg[5]))
    else
      process.demonitor(msg[1], {flush = true})
      finish(running[msg[1]], {"ok", msg[2]})
    end
  end
  return results
end

-- ===================================================================== tasks not awaited

function M.start(f, ...)
  check_fun(f, 1, "start")
  return process.spawn(f, ...)
end

function M.start_link(f, ...)
  check_fun(f, 1, "start_link")
  return process.spawn_link(f, ...)
end

function M.child_spec(f, ...)
  local start = {"task", "start_link", f}
  local args = table.pack(...)
  for i = 1, args.n do start[3 + i] = args[i] end
  return {id = "task", start = start, restart = "temporary"}
end

return M
