--- gen_server — a generic server process: state, synchronous calls, casts, and the rest.
--
-- A gen_server is a process that keeps a state and answers requests through callbacks of
-- a module, as Erlang's gen_server and Elixir's GenServer (OTP 25 / Elixir 1.14 semantics).
--
-- ## Example
--
--     -- counter.lua
--     local gen_server = require "gen_server"
--     local M = {}
--
--     function M.start_link(n) return gen_server.start_link("counter", n, {name = "counter"}) end
--     function M.add(by) gen_server.cast("counter", {"add", by}) end
--     function M.get() return gen_server.call("counter", "get") end
--
--     function M.init(n) return "ok", n end
--     function M.handle_call(req, from, n) return "reply", n, n end
--     function M.handle_cast(msg, n) return "noreply", n + msg[2] end
--
--     return M
--
-- The callback module is given by its name (a string): the server process requires it,
-- which is what lets a reload reach running servers. A table of functions works too (it is
-- copied into the server; it cannot be reloaded).
--
-- ## Client API
--
-- * `start_link(mod, arg, [opts])` / `start(mod, arg, [opts])` → pid, `"ignore"`, or
--   nil, reason. Spawns the server (linked to the caller for start_link) and waits until
--   `init` returns. opts: `name` (register the server; a taken name gives
--   nil, {"already_started", pid} and spawns nothing), `timeout` (ms for init; past it:
--   nil, "timeout", and the server is killed), `hibernate_after` (ms idle before hibernating),
--   `spawn_opt` (extra options for process.spawn_opt, e.g. max_heap).
-- * `call(server, request, [timeout = 5000])` → the reply. server: pid or name. Raises
--   `{"timeout"|"noproc"|reason, {"gen_server", "call", {server, request, timeout}}}` when the
--   call times out, the server does not exist, or it ends before replying (even with
--   "normal"); `"calling_self"` when a server calls itself. After a caught timeout no late
--   reply arrives (the call waits on an alias, deactivated when it gives up).
-- * `cast(server, msg)` → "ok" at once, whatever becomes of the message.
-- * `reply(from, value)` → "ok": answers a call later, from any process, with the `from`
--   handle_call received.
-- * `stop(server, [reason = "normal"], [timeout = "infinity"])` → "ok" once the server has run
--   terminate and exited with reason; raises `{"noproc"|"timeout"|"calling_self"|reason,
--   {"gen_server", "stop", {server, reason, timeout}}}` (reason: what the server exited
--   with instead, e.g. the error terminate raised). After a timeout the server goes on
--   terminating.
-- * `whereis(server)` → pid or nil.
--
-- ## Callbacks and what they may return
--
-- Each callback returns its Erlang tuple as several values.
--
-- * `init(arg)`:
--   `"ok", state` | `"ok", state, timeout` | `"ok", state, "hibernate"` |
--   `"ok", state, {"continue", c}` | `"ignore"` | `"stop", reason`
-- * `handle_call(request, from, state)`:
--   `"reply", reply, state [, extra]` | `"noreply", state [, extra]` |
--   `"stop", reason, reply, state` | `"stop", reason, state`
-- * `handle_cast(msg, state)`, `handle_info(msg, state)`, `handle_continue(c, state)`:
--   `"noreply", state [, extra]` | `"stop", reason, state`
-- * `terminate(reason, state)`: anything (the result is ignored)
-- * `code_change(old_vsn, state, extra)`: `"ok", state` | `"error", reason`. Called when the
--   callback module was reloaded (code.reload), before the next message, with the version
--   the server ran and extra nil; and by sys.change_code with its arguments.
-- * `format_status(status)`: gets a copy of `{state = s, message = m, reason = r}` (those
--   known) and returns a table whose keys replace those, e.g. `{state = "<hidden>"}`; used by
--   sys.get_status and the terminating report. If it raises or returns no table, they show
--   the state as `"<mod>.format_status crashed"` / `"<mod>.format_status did not return a
--   table"` (mod: the module name, or "(table)").
--
-- `extra` is a timeout in ms (handle_info("timeout", state) runs if nothing arrives
-- before it), `"hibernate"` (a full garbage collection, then wait), or `{"continue", c}`
-- (handle_continue(c, state) runs before the next message).
-- Anything else makes the server stop with `{"bad_return_value", {values...}}`.
--
-- Missing callbacks: handle_call and handle_cast raise (the server crashes, as Elixir's
-- defaults do) with the reason "attempted to call a gen_server but no handle_call callback
-- was provided" (cast: "attempted to cast a gen_server but no handle_cast callback was
-- provided"); handle_info logs the unexpected message ("Undefined handle_info") and goes on;
-- terminate does nothing; code_change keeps the state; init and handle_continue raise
-- "gen_server callback init is not defined" (handle_continue likewise).
--
-- ## Termination
--
-- terminate(reason, state) runs when a callback returns "stop", raises (reason: the raised
-- value), or returns a bad value (then it gets the state from before); on stop/3; and when
-- the process that called start_link (its parent; a server started with `start` has none)
-- sends an exit signal *and the server traps exits* (then it exits with the same reason,
-- even while suspended). With `"stop", r, reply, s` from handle_call the reply is sent after
-- terminate has run (even if it raised). If terminate raises, the server exits with that
-- error instead. It does not run when init fails or on exit(pid, "kill"); a non-trapping
-- server killed by its parent dies at once. An abnormal end (other than "normal", "shutdown", {"shutdown", x})
-- is logged as "Generic server ... terminating", with the last message and the state.
-- A linked process that is not the parent and dies while the server traps exits comes as
-- handle_info({"EXIT", pid, reason}, state).
--
-- When the runtime stops (the end of the `moonbeam` command, or mb_stop), the servers are
-- shut down before anything is killed, from the top of each tree: a server whose parent is
-- not a server gets the exit signal "shutdown" from <0.0.0>, which a trapping server takes
-- as from its parent (terminate runs; a supervisor stops its children in order).
--
-- ## Supervision, names, sys
--
-- A module meant for supervisors defines `start_link(arg)` (and may define
-- `child_spec(arg)`); see `supervisor`. Names are strings registered with process.register.
-- `sys.get_state`, `sys.replace_state`, `sys.suspend`, `sys.resume`, `sys.change_code` and
-- `sys.get_status` work on every gen_server.
--
-- Messages the server understands: `{"$gen_call", from, request}`, `{"$gen_cast", msg}`,
-- `{"system", from, request}`; anything else goes to handle_info.
-- @module gen_server

local process = require "process"
local code = require "code"

local ANY = process.ANY
local RUNTIME = process.topid("<0.0.0>")   -- sender of the runtime's stop signal (mb_stop)
local select, type, pcall, error, tostring = select, type, pcall, error, tostring
local pairs, setmetatable, getmetatable = pairs, setmetatable, getmetatable
local table_pack, table_unpack = table.pack, table.unpack

local M = {}

-- ===================================================================== helpers

--- Deep equality of plain values (tables compared by content).
local function same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
M._same = same

--- The pid of a server given as pid or registered name; nil if there is none.
function M.whereis(server)
  if process.is_pid(server) then return server end
  if type(server) == "string" then return process.whereis(server) end
  return nil
end

local function quiet(reason)
  return reason == "normal" or reason == "shutdown" or
         (type(reason) == "table" and reason[1] == "shutdown")
end
M._quiet = quiet

-- ===================================================================== calls

-- Option tables every request uses, made once. (The reply patterns are made per request:
-- a finalizer that makes a request of its own while this one waits must not change them.)
local ALIAS, FLUSH = {alias = true}, {flush = true}

--- A synchronous request: the shared path of call and of sys's requests. `label` is the
-- message tag ("$gen_call" or "system"); `what(args, server, request, timeout)` names the
-- caller in exit reasons (made only when one is raised).
function M._request(server, label, request, timeout, what, args)
  local pid = M.whereis(server)
  if pid == nil then error({"noproc", what(args, server, request, timeout)}) end
  local me = process.self()
  if pid == me then error({"calling_self", what(args, server, request, timeout)}) end
  local tag = process.monitor(pid, ALIAS)
  local sent, err = pcall(process.send, pid, {label, {me, tag}, request})
  if not sent then   -- the request cannot be copied: end the monitor, name the culprit
    process.demonitor(tag, FLUSH)
    error((tostring(err):gsub("^msg%[3%]", "request")), 3)
  end
  local reply = {tag, ANY}
  local msg = process.receive(process.any_of(reply, {"DOWN", tag, ANY, ANY, ANY}), timeout)
  if msg == nil then
    process.demonitor(tag, FLUSH)   -- ends the alias: no later reply can come in
    local late = process.receive(reply, 0)   -- one may have come just before
    if late then return late[2] end
    error({"timeout", what(args, server, request, timeout)})
  end
  if msg[1] == "DOWN" then error({msg[5], what(args, server, request, timeout)}) end
  process.demonitor(tag, FLUSH)
  return msg[2]
end

local function call_args(_, server, request, timeout)
  return {"gen_server", "call", {server, request, timeout}}
end

function M.call(server, request, timeout)
  if timeout == nil then timeout = 5000 end
  return M._request(server, "$gen_call", request, timeout, call_args)
end

function M.cast(server, msg)
  local pid = M.whereis(server)
  if pid then process.send(pid, {"$gen_cast", msg}) end
  return "ok"
end

function M.reply(from, value)
  process.send(from[2], {from[2], value})
  return "ok"
end

local function stop_args(t) return {"gen_server", "stop", t} end

function M.stop(server, reason, timeout)
  if reason == nil then reason = "normal" end
  if timeout == nil then timeout = "infinity" end
  local args = {server, reason, timeout}
  local pid = M.whereis(server)
  if pid == nil then error({"noproc", stop_args(args)}) end
  if pid == process.self() then error({"calling_self", stop_args(args)}) end
  local ref = process.monitor(pid)
  process.send(pid, {"system", {process.self(), process.make_ref()}, {"terminate", reason}})
  local down = process.receive({"DOWN", ref}, timeout)
  if down == nil then
    process.demonitor(ref, {flush = true})
    error({"timeout", stop_args(args)})
  end
  if down[5] == "noproc" then error({"noproc", stop_args(args)}) end
  if not same(down[5], reason) then error({down[5], stop_args(args)}) end
  return "ok"
end

-- ===================================================================== the server

--- The callback module: required by name (so a reload reaches it) or the table itself.
local function callbacks(s)
  if s.modname then return require(s.modname) end
  return s.mod
end

local function describe(s)
  return tostring(process.self()) .. (s.name and (" (" .. s.name .. ")") or "")
end

--- Raise with a traceback kept for the report: the error value stays as it is.
local function handler(err)
  return {err = err, trace = debug.traceback(nil, 2)}
end

--- Runs a callback protected. Returns true, values (packed) or false, err, traceback.
local function run(f, ...)
  local switching = code.switching(false)   -- no switch in the middle of a callback
  local r = table_pack(xpcall(f, handler, ...))
  code.switching(switching)
  if r[1] then return true, r end
  local e = r[2]
  if type(e) == "table" and e.trace then return false, e.err, e.trace end
  return false, e
end

--- A copy of v, tables copied all the way down (shared parts and cycles kept).
local function deep_copy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local c = {}
  seen[v] = c
  for k, x in pairs(v) do c[deep_copy(k, seen)] = deep_copy(x, seen) end
  return setmetatable(c, getmetatable(v))
end

--- fields ({state =, message =, reason =}) as format_status shows them: the keys it returns
-- replace the given ones. It gets a deep copy, so changing the state in place is harmless.
-- When it raises or returns no table, the state is replaced by a note saying so (never
-- shown raw, as it may hold what format_status was meant to hide).
local function status_view(s, fields)
  local cb = callbacks(s)
  if type(cb.format_status) ~= "function" then return fields end
  local ok, r = run(cb.format_status, deep_copy(fields))
  local view = {}
  for k, v in pairs(fields) do view[k] = v end
  local what = (s.modname or "(table)") .. ".format_status"
  if not ok then
    view.state = what .. " crashed"
  elseif type(r[2]) ~= "table" then
    view.state = what .. " did not return a table"
  else
    for k, v in pairs(r[2]) do view[k] = v end
  end
  return view
end

local function report_crash(s, reason, trace)
  if quiet(reason) then return end
  local pretty = require "pretty"
  local view = status_view(s, {state = s.state, message = s.last, reason = reason})
  local function v(x) return pretty.format(x, {width = 96, indent = "   "}) end
  local lines = {"** Generic server " .. describe(s) .. " terminating",
                 "** Last message in was " .. v(view.message),
                 "** When Server state == " .. v(view.state),
                 "** Reason for termination ==",
                 "** " .. v(view.reason)}
  if s.client then lines[#lines + 1] = "** Client " .. tostring(s.client) end
  if trace then lines[#lines + 1] = trace end
  require("logger").report("error", table.concat(lines, "\n"))
end

--- Ends the server: terminate, the report, the reply of a `"stop", r, reply, s` (sent even
-- when terminate raises, as OTP does), then exit with reason (terminate's error if it raised).
local function terminate(s, reason, trace, from, reply)
  local cb = callbacks(s)
  if type(cb.terminate) == "function" then
    local ok, err, trace2 = run(cb.terminate, reason, s.state)
    if not ok then
      reason, trace = err, trace2
    end
  end
  report_crash(s, reason, trace)
  if from then M.reply(from, reply) end
  process.exit(reason)
end

local function bad_return(r)
  return {"bad_return_value", {table_unpack(r, 2, r.n)}}
end

--- The optional last value of a return: timeout, "hibernate" or {"continue", c}.
local function set_extra(s, extra)
  s.timeout, s.hibernate, s.continue = nil, false, nil
  if extra == nil then return true end
  if math.type(extra) == "integer" and extra >= 0 or extra == "infinity" then
    if extra ~= "infinity" then s.timeout = extra end
    return true
  end
  if extra == "hibernate" then
    s.hibernate = true
    return true
  end
  if type(extra) == "table" and extra[1] == "continue" and #extra == 2 then
    s.continue = {extra[2]}
    return true
  end
  return false
end

--- Applies a noreply-style result r (packed, r[1] = true from run): "noreply", state [, x]
-- or "stop", reason, state. Anything else stops the server (terminate gets the old state).
local function after_noreply(s, r)
  local tag = r[2]
  if tag == "noreply" and (r.n == 3 or r.n == 4) and set_extra(s, r[4]) then
    s.state = r[3]
    return
  elseif tag == "stop" and r.n == 4 then
    s.state = r[4]
    return terminate(s, r[3])
  end
  terminate(s, bad_return(r))
end

local function callback_failed(s, err, trace)
  terminate(s, err, trace)
end

local function default_handle_info(s)
  return function(msg, state)
    require("logger").report("error", "** Undefined handle_info in " .. describe(s),
      {{"Unhandled message", msg, quote = true}})
    return "noreply", state
  end
end

local function missing(name)
  return function()
    error(string.format("attempted to %s a gen_server but no %s callback was provided",
      name == "handle_call" and "call" or "cast", name), 0)
  end
end

local function callback(s, name)
  local f = callbacks(s)[name]
  if type(f) == "function" then return f end
  if name == "handle_info" then return default_handle_info(s) end
  if name == "handle_call" or name == "handle_cast" then return missing(name) end
  return function() error("gen_server callback " .. name .. " is not defined", 0) end
end

local function handle_call(s, from, request)
  s.client = from[1]
  local ok, r, trace = run(callback(s, "handle_call"), request, from, s.state)
  if not ok then return callback_failed(s, r, trace) end
  local tag = r[2]
  if tag == "reply" and (r.n == 4 or r.n == 5) and set_extra(s, r[5]) then
    s.state = r[4]
    return M.reply(from, r[3])
  elseif tag == "stop" and r.n == 5 then
    s.state = r[5]
    return terminate(s, r[3], nil, from, r[4])   -- the reply goes after terminate
  end
  after_noreply(s, r)
end

local function handle_async(s, name, msg)
  local ok, r, trace = run(callback(s, name), msg, s.state)
  if not ok then return callback_failed(s, r, trace) end
  after_noreply(s, r)
end

-- ===================================================================== sys

local function unknown_system(s, from, request)
  M.reply(from, {"error", {"unknown_system_msg", request}})
end

--- mod.code_change(old_vsn, state, extra) (mod nil: the server's module), protected: a
-- module that cannot be loaded is an error reply like a raising code_change, not a crash.
local function run_code_change(s, mod, old_vsn, extra)
  return run(function()
    local cb = callbacks(s)
    if mod ~= nil then cb = require(mod) end
    if type(cb) ~= "table" or cb.code_change == nil then return "ok", s.state end
    return cb.code_change(old_vsn, s.state, extra)
  end)
end

local function code_change(s, from, request)
  if not s.suspended then return unknown_system(s, from, request) end
  local ok, r = run_code_change(s, request[2], request[3], request[4])
  if not ok then return M.reply(from, {"error", {"EXIT", r}}) end
  if r[2] == "ok" and r.n == 3 then
    s.state = r[3]
    if s.modname then   -- migrated: the automatic code_change must not run again
      s.vsn = code.loaded_version(s.modname)
    end
    return M.reply(from, "ok")
  end
  if r[2] == "error" then return M.reply(from, {"error", {"error", r[3]}}) end
  M.reply(from, {"error", bad_return(r)})
end

local SYSTEM = {}

function SYSTEM.get_state(s, from) M.reply(from, {"ok", s.state}) end

function SYSTEM.replace_state(s, from, request)
  local ok, r = run(request[2], s.state)
  if not ok then return M.reply(from, {"error", {"callback_failed", r}}) end
  s.state = r[2]
  M.reply(from, {"ok", s.state})
end

function SYSTEM.suspend(s, from)
  s.suspended = true
  M.reply(from, "ok")
end

function SYSTEM.resume(s, from)
  s.suspended = false
  M.reply(from, "ok")
end

SYSTEM.change_code = code_change

function SYSTEM.get_status(s, from)
  local view = status_view(s, {state = s.state})
  M.reply(from, {"ok", {"status", process.self(), {"module", "gen_server"},
    {dictionary = {}, status = s.suspended and "suspended" or "running", parent = s.parent,
     module = s.modname or "(table)", name = s.name, state = view.state}}})
end

function SYSTEM.terminate(s, from, request)
  terminate(s, request[2])
end

local function handle_system(s, from, request)
  local name = type(request) == "table" and request[1] or request
  local f = type(name) == "string" and SYSTEM[name]
  if f then return f(s, from, request) end
  unknown_system(s, from, request)
end

-- ===================================================================== the loop

--- A full collection, then wait; no tail calls, so process.info shows "hibernate".
local function hibernate()
  collectgarbage()
  local msg = process.receive()
  return msg
end

local function next_message(s)
  if s.suspended then   -- only system messages, and the parent's exit (when trapping)
    return process.receive(process.any_of({"system", ANY, ANY}, {"EXIT", s.parent, ANY},
                                          {"EXIT", RUNTIME, ANY}))
  end
  if s.hibernate then
    s.hibernate = false
    local msg = hibernate()
    return msg
  end
  if s.timeout then
    local msg = process.receive(nil, s.timeout)
    if msg == nil then return "timeout" end
    return msg
  end
  if s.hibernate_after then
    local msg = process.receive(nil, s.hibernate_after)
    if msg == nil then msg = hibernate() end
    return msg
  end
  return process.receive()
end

--- The callback module was reloaded (this process switched to a new version at its last
-- safe point, the receive): code_change(old_vsn, state) migrates the state before the next
-- message. A failing code_change is logged and the state kept.
local function check_version(s)
  if s.suspended then return end   -- suspended: sys.change_code migrates
  local vsn = code.loaded_version(s.modname)
  if vsn == nil or vsn == s.vsn then return end
  local old = s.vsn
  s.vsn = vsn
  local cb = callbacks(s)
  if type(cb.code_change) ~= "function" then return end
  local ok, r = run(cb.code_change, old, s.state, nil)
  if ok and r[2] == "ok" and r.n == 3 then
    s.state = r[3]
  else
    require("logger").report("error", "** Generic server " .. describe(s) ..
      " kept its state: code_change from version " .. tostring(old) .. " failed",
      {{"result", ok and {table_unpack(r, 2, r.n)} or r, quote = true}})
  end
end

local function dispatch(s, msg)
  if s.modname then check_version(s) end
  s.last, s.client = msg, nil
  local kind = type(msg) == "table" and msg[1]
  if kind == "$gen_call" then return handle_call(s, msg[2], msg[3]) end
  if kind == "$gen_cast" then return handle_async(s, "handle_cast", msg[2]) end
  if kind == "system" then return handle_system(s, msg[2], msg[3]) end
  if kind == "EXIT" and (msg[2] == s.parent or msg[2] == RUNTIME) then   -- when trapping
    return terminate(s, msg[3])
  end
  handle_async(s, "handle_info", msg)
end

local function loop(s)
  while true do
    if s.continue then
      local c = s.continue[1]
      s.continue = nil
      handle_async(s, "handle_continue", c)
    else
      dispatch(s, next_message(s))
    end
  end
end

--- What init gave, as start's answer: {"ok"} | {"ignore"} | {"stop", reason}.
local function init_result(s, r)
  local tag = r[2]
  if tag == "ok" and (r.n == 3 or r.n == 4) and set_extra(s, r[4]) then
    s.state = r[3]
    return {"ok"}
  elseif tag == "ignore" and r.n == 2 then
    return {"ignore"}
  elseif tag == "stop" and r.n == 3 then
    return {"stop", r[3]}
  end
  return {"stop", bad_return(r)}
end

--- The server process: init, answer the starter, loop. As in OTP, the parent of a server
-- started without a link is the server itself (so nobody's exit makes it terminate).
function M._init_it(starter, ack, mod, arg, opts, linked)
  local s = {parent = linked and starter or process.self(), name = opts.name,
             hibernate_after = opts.hibernate_after}
  process.flag("ordered_stop", true)   -- the runtime's stop shuts servers down, tops first
  if type(mod) == "string" then s.modname = mod else s.mod = mod end
  local ok, r, trace = run(function() return callback(s, "init")(arg) end)
  if s.modname then s.vsn = code.loaded_version(s.modname) end
  local answer
  if ok then answer = init_result(s, r) else answer = {"stop", r} end
  process.send(ack, {ack, answer[1], answer[2]})
  if answer[1] == "ignore" then return end
  if answer[1] == "stop" then process.exit(answer[2]) end   -- no terminate after init
  loop(s)
end

-- ===================================================================== starting

local function start(mod, arg, opts, link)
  opts = opts or {}
  if type(mod) ~= "string" and type(mod) ~= "table" then
    error("bad argument #1 to 'start' (module name or table expected, got " .. type(mod) .. ")", 3)
  end
  local name = opts.name
  if name ~= nil then
    if type(name) ~= "string" then error("bad argument #3 to 'start' (name must be a string)", 3) end
    local holder = process.whereis(name)
    if holder then return nil, {"already_started", holder} end
  end
  local spawn = {}
  for k, v in pairs(opts.spawn_opt or {}) do spawn[k] = v end
  spawn.link, spawn.monitor, spawn.name = link, true, name
  local ack = process.alias()
  local ok, pid, ref = pcall(process.spawn_opt, spawn, "gen_server._init_it",
                             process.self(), ack, mod, arg, opts, link)
  if not ok then
    process.unalias(ack)
    local holder = name and process.whereis(name)
    if holder then return nil, {"already_started", holder} end
    -- an argument that cannot be copied: name it as the caller knows it
    local names = {["arg #3"] = "module", ["arg #4"] = "arg", ["arg #5"] = "opts"}
    error((tostring(pid):gsub("^arg #%d", names)), 3)
  end
  local timeout = opts.timeout
  if timeout == nil then timeout = "infinity" end
  local msg = process.receive(process.any_of({ack, ANY}, {"DOWN", ref}), timeout)
  process.unalias(ack)
  if msg == nil then   -- kill the child and leave no trace of it: no ack, DOWN or EXIT
    if link then process.unlink(pid) end
    process.exit(pid, "kill")
    process.receive({"DOWN", ref})
    process.receive({ack, ANY}, 0)
    process.receive({"EXIT", pid, ANY}, 0)
    return nil, "timeout"
  end
  if msg[1] == "DOWN" then
    return nil, msg[5]
  end
  if msg[2] == "ok" then
    process.demonitor(ref, {flush = true})
    return pid
  end
  -- ignore or stop: the server exits now. Wait for that, so that the link has acted by the
  -- time we return: a trapping caller has the EXIT in its mailbox, another may be gone.
  process.receive({"DOWN", ref})
  if msg[2] == "ignore" then return "ignore" end
  return nil, msg[3]
end

function M.start_link(mod, arg, opts) return start(mod, arg, opts, true) end
function M.start(mod, arg, opts) return start(mod, arg, opts, false) end

return M
