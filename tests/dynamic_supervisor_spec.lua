-- dynamic_supervisor_spec.lua — children on demand, restarts, intensity, shutdown
-- (OTP.md §3.4–§3.7, scenario 38).
local P = process
local ANY = P.ANY
local ds = require "dynamic_supervisor"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local support = dofile(here .. "/support.lua")
local FIXTURES = here .. "/fixtures/dynamic_supervisor/"

local function recv(pattern, ms)
  local m = P.receive(pattern, ms or 2000)
  assert(m ~= nil, "nothing received")
  return m
end

local function nothing(pattern, ms)
  assert.is_nil(P.receive(pattern, ms or 100))
end

--- Waits for the init report of a child tagged `tag`; returns pid, args, number of args.
local function init_of(tag)
  local m = recv({"init", tag})
  return m[3], m[4], m[5]
end

local function worker(mode, restart)
  return {id = "w", start = {"ds_worker", "start_link", mode}, restart = restart}
end

local function count(sup) return ds.count_children(sup) end

local function counts(specs, active, supervisors, workers)
  return {specs = specs, active = active, supervisors = supervisors, workers = workers}
end

local saved_path
local sups, pids

--- A supervisor linked to the test process (which traps exits in these tests).
local function start(opts)
  local sup = assert(ds.start_link(opts))
  sups[#sups + 1] = sup
  return sup
end

local function track(pid)
  pids[#pids + 1] = pid
  return pid
end

before_each(function()
  saved_path = package.path
  package.path = FIXTURES .. "?.lua;" .. package.path
  sups, pids = {}, {}
  P.flag("trap_exit", true)
  P.register("ds_test", P.self())
end)

after_each(function()
  for _, sup in ipairs(sups) do
    if P.alive(sup) then
      if not pcall(ds.stop, sup, "normal", 3000) then P.exit(sup, "kill") end
    end
  end
  for _, pid in ipairs(pids) do P.exit(pid, "kill") end
  if P.whereis("ds_test") then P.unregister("ds_test") end
  P.flag("trap_exit", false)
  package.path = saved_path
  package.loaded.ds_worker, package.loaded.ds_flaky = nil, nil
  while P.receive(nil, 0) do end
end)

describe("dynamic_supervisor.start_child (scenario 38)", function()
  it("puts extra_arguments in front of the spec's arguments", function()
    local sup = start({max_children = 2, extra_arguments = {"extra"}})
    local pid = ds.start_child(sup, {"ds_worker", "arg"})
    assert.is_true(P.is_pid(pid))
    local from, args, n = init_of(nil)
    assert.are.equal(pid, from)
    assert.are.same({"extra", "arg"}, args)
    assert.are.equal(2, n)
  end)

  it("returns nil, \"max_children\" when full, and takes children again once one leaves",
     function()
    local sup = start({max_children = 2, extra_arguments = {"extra"}})
    local a = ds.start_child(sup, worker({tag = "a"}))
    local b = ds.start_child(sup, worker({tag = "b"}))
    assert.is_true(P.is_pid(a) and P.is_pid(b))
    local r, err = ds.start_child(sup, worker({tag = "c"}))
    assert.is_nil(r)
    assert.are.equal("max_children", err)
    assert.are.same(counts(2, 2, 0, 2), count(sup))
    init_of("a"); init_of("b")
    nothing({"init", "c"}, 50)
    assert.are.equal("ok", ds.terminate_child(sup, a))
    assert.is_true(P.is_pid(ds.start_child(sup, worker({tag = "c"}))))
    init_of("c")
  end)

  it("terminate_child stops the child with \"shutdown\": \"ok\", then nil, \"not_found\"",
     function()
    local sup = start()
    local pid = ds.start_child(sup, worker({tag = "t", trap = true}, "permanent"))
    init_of("t")
    local ref = P.monitor(pid)
    assert.are.equal("ok", ds.terminate_child(sup, pid))
    assert.are.same({"terminate", "t", pid, "shutdown"}, recv({"terminate", "t"}))
    assert.are.equal("shutdown", recv({"DOWN", ref})[5])
    local r, err = ds.terminate_child(sup, pid)
    assert.is_nil(r)
    assert.are.equal("not_found", err)
    r, err = ds.terminate_child(sup, P.self())
    assert.is_nil(r)
    assert.are.equal("not_found", err)
    -- a permanent child stopped this way is not restarted
    assert.are.same(counts(0, 0, 0, 0), count(sup))
    nothing({"init", "t"}, 50)
  end)

  it("returns \"ignore\" when the child's init returns ignore, and keeps nothing", function()
    local sup = start({extra_arguments = {"extra"}})
    assert.are.equal("ignore", ds.start_child(sup, worker({tag = "i", init = "ignore"})))
    init_of("i")
    assert.are.same(counts(0, 0, 0, 0), count(sup))
    assert.are.same({}, ds.which_children(sup))
  end)

  it("passes a start failure through as nil, R with no wrapper", function()
    local sup = start({extra_arguments = {"extra"}})
    local r, err = ds.start_child(sup, worker({tag = "f", init = "stop", reason = "nope"}))
    assert.is_nil(r)
    assert.are.equal("nope", err)
    r, err = ds.start_child(sup, {start = {function() return nil, {"custom", 1} end}})
    assert.is_nil(r)
    assert.are.same({"custom", 1}, err)
    r, err = ds.start_child(sup, {start = {function() error({"raised"}) end}})
    assert.is_nil(r)
    assert.are.same({"raised"}, err)
    r, err = ds.start_child(sup, {start = {function() return 42 end}})
    assert.is_nil(r)
    assert.are.same({"bad_return_value", 42}, err)
    assert.are.same(counts(0, 0, 0, 0), count(sup))
    assert.is_true(P.alive(sup))
  end)

  it("returns nil, reason for an invalid child spec", function()
    local sup = start()
    local r, err = ds.start_child(sup, {id = "x"})
    assert.is_nil(r)
    assert.are.equal("missing_start", err)
    r, err = ds.start_child(sup, {start = {42}})
    assert.is_nil(r)
    assert.are.same({"invalid_mfa", {42}}, err)
    r, err = ds.start_child(sup, {start = {"ds_worker", "start_link"}, restart = "sometimes"})
    assert.is_nil(r)
    assert.are.same({"invalid_restart_type", "sometimes"}, err)
    assert.are.same(counts(0, 0, 0, 0), count(sup))
  end)

  it("raises as gen_server.call does when the supervisor does not exist", function()
    local sup = start()
    ds.stop(sup)
    local ok, err = pcall(ds.count_children, sup)
    assert.is_false(ok)
    assert.are.same({"noproc", {"gen_server", "call", {sup, "count_children", "infinity"}}},
                    err)
  end)
end)

describe("dynamic_supervisor children started with start = {function, args...}", function()
  local function task_spec(me, tag, restart)
    return {start = {function(...)
      local args = {...}
      return P.spawn_link(function()
        P.send(me, {"task", tag, P.self(), args})
        local m = P.receive()
        if m[1] == "crash" then error({"crashed", tag}, 0) end
      end)
    end, me, tag}, restart = restart}
  end

  it("calls the function in the supervisor with the extra arguments first", function()
    local me = P.self()
    local sup = start({extra_arguments = {"extra"}})
    local pid = ds.start_child(sup, task_spec(me, "t1", "temporary"))
    assert.is_true(P.is_pid(pid))
    local m = recv({"task", "t1"})
    assert.are.equal(pid, m[3])
    assert.are.same({"extra", me, "t1"}, m[4])
    assert.are.same({{nil, pid, "worker", {"?"}}}, ds.which_children(sup))
    assert.are.equal(sup, P.info(pid).links[1])
  end)

  it("forgets a temporary task when it ends, normally or not, and never restarts it",
     function()
    local me = P.self()
    local sup = start()
    local a = ds.start_child(sup, task_spec(me, "ta", "temporary"))
    local b = ds.start_child(sup, task_spec(me, "tb", "temporary"))
    recv({"task", "ta"}); recv({"task", "tb"})
    assert.are.same(counts(2, 2, 0, 2), count(sup))
    P.send(a, {"done"})
    P.send(b, {"crash"})
    assert.is_truthy(support.poll(2000, function() return count(sup).specs == 0 end))
    assert.are.same({}, ds.which_children(sup))
    nothing({"task"}, 100)
  end)

  it("restarts a permanent function child with the same arguments", function()
    local me = P.self()
    local sup = start({extra_arguments = {"extra"}})
    local pid = ds.start_child(sup, task_spec(me, "tp", "permanent"))
    recv({"task", "tp"})
    P.send(pid, {"crash"})
    local m = recv({"task", "tp"})
    assert.are_not.equal(pid, m[3])
    assert.are.same({"extra", me, "tp"}, m[4])
    assert.are.same({{nil, m[3], "worker", {"?"}}}, ds.which_children(sup))
  end)
end)

describe("dynamic_supervisor restarts", function()
  it("restarts a crashed permanent child: new pid, same arguments", function()
    local sup = start({extra_arguments = {"extra"}})
    local mode = {tag = "p"}
    local pid = ds.start_child(sup, worker(mode, "permanent"))
    local first, args1 = init_of("p")
    assert.are.equal(pid, first)
    P.exit(pid, "boom")
    local second, args2 = init_of("p")
    assert.are_not.equal(pid, second)
    assert.are.same({"extra", mode}, args1)
    assert.are.same(args1, args2)
    assert.are.same({{nil, second, "worker", {"ds_worker"}}}, ds.which_children(sup))
    assert.are.same(counts(1, 1, 0, 1), count(sup))
  end)

  it("restarts a permanent child that stops normally", function()
    local sup = start()
    local pid = ds.start_child(sup, worker({tag = "pn"}, "permanent"))
    init_of("pn")
    P.send(pid, {"$gen_cast", {"stop", "normal"}})
    local again = init_of("pn")
    assert.are_not.equal(pid, again)
  end)

  local transient_rows = {
    {"normal", false}, {"shutdown", false}, {{"shutdown", "x"}, false}, {"boom", true},
  }
  for _, row in ipairs(transient_rows) do
    local reason, restarted = row[1], row[2]
    it(("%s a transient child that stops with %s"):format(
         restarted and "restarts" or "forgets", require("pretty").format(reason)), function()
      local sup = start()
      local pid = ds.start_child(sup, worker({tag = "tr"}, "transient"))
      init_of("tr")
      local ref = P.monitor(pid)
      P.send(pid, {"$gen_cast", {"stop", reason}})
      assert.are.same(reason, recv({"DOWN", ref})[5])
      if restarted then
        local again = init_of("tr")
        assert.are_not.equal(pid, again)
        assert.are.same({{nil, again, "worker", {"ds_worker"}}}, ds.which_children(sup))
      else
        assert.is_truthy(support.poll(2000, function() return count(sup).specs == 0 end))
        assert.are.same({}, ds.which_children(sup))
        nothing({"init", "tr"}, 100)
      end
    end)
  end

  for _, reason in ipairs({"normal", "boom"}) do
    it("forgets a temporary child that stops with " .. reason, function()
      local sup = start()
      local pid = ds.start_child(sup, worker({tag = "tm"}, "temporary"))
      init_of("tm")
      local ref = P.monitor(pid)
      P.send(pid, {"$gen_cast", {"stop", reason}})
      assert.are.equal(reason, recv({"DOWN", ref})[5])
      assert.is_truthy(support.poll(2000, function() return count(sup).specs == 0 end))
      assert.are.same({}, ds.which_children(sup))
      nothing({"init", "tm"}, 100)
    end)
  end

  it("exits \"shutdown\" on the 4th crash within the period, stopping the others", function()
    local sup = start()
    local other = ds.start_child(sup, worker({tag = "other", trap = true}, "permanent"))
    init_of("other")
    local pid = ds.start_child(sup, worker({tag = "crashy"}, "permanent"))
    init_of("crashy")
    for _ = 1, 3 do
      P.exit(pid, "boom")
      pid = init_of("crashy")
    end
    assert.is_true(P.alive(sup))
    assert.are.same(counts(2, 2, 0, 2), count(sup))
    P.exit(pid, "boom")
    assert.are.same({"EXIT", sup, "shutdown"}, recv({"EXIT", sup}))
    assert.are.same({"terminate", "other", other, "shutdown"}, recv({"terminate", "other"}))
    assert.is_false(P.alive(other))
    nothing({"init", "crashy"}, 50)
  end)

  it("with intensity 0 exits \"shutdown\" on the first crash", function()
    local sup = start({intensity = 0})
    local pid = ds.start_child(sup, worker({tag = "z"}, "transient"))
    init_of("z")
    P.exit(pid, "boom")
    assert.are.same({"EXIT", sup, "shutdown"}, recv({"EXIT", sup}))
    nothing({"init", "z"}, 50)
  end)

  it("counts failed restarts: 1 start + 3 failed tries, then \"shutdown\"", function()
    local sup = start()
    local pid = ds.start_child(sup, {start = {"ds_flaky", "start_link", {tag = "fl"}}})
    assert.are.same({"attempt", 1}, recv({"attempt"}))
    init_of("fl")
    P.exit(pid, "boom")
    for n = 2, 4 do assert.are.same({"attempt", n}, recv({"attempt"})) end
    assert.are.same({"EXIT", sup, "shutdown"}, recv({"EXIT", sup}))
    nothing({"attempt"}, 50)
  end)

  it("forgets restarts older than the period", function()
    local sup = start({intensity = 1, period = 1})
    local pid = ds.start_child(sup, worker({tag = "pd"}, "permanent"))
    init_of("pd")
    P.exit(pid, "boom")
    pid = init_of("pd")
    P.sleep(1100)
    P.exit(pid, "boom")
    pid = init_of("pd")
    assert.is_true(P.alive(sup))
    P.exit(pid, "boom")
    assert.are.same({"EXIT", sup, "shutdown"}, recv({"EXIT", sup}))
  end)
end)

describe("dynamic_supervisor.start_link", function()
  it("accepts only the one_for_one strategy", function()
    local r, err = ds.start_link({strategy = "one_for_all"})
    assert.is_nil(r)
    local reason = {"supervisor_data", {"invalid_strategy", "one_for_all"}}
    assert.are.same(reason, err)
    local exit = recv({"EXIT", ANY, ANY})
    assert.are.same(reason, exit[3])
    start({strategy = "one_for_one"})
  end)

  it("stops in init on other invalid options", function()
    local rows = {
      {{intensity = -1}, {"invalid_intensity", -1}},
      {{period = 0}, {"invalid_period", 0}},
      {{max_children = "lots"}, {"invalid_max_children", "lots"}},
      {{extra_arguments = "x"}, {"invalid_extra_arguments", "x"}},
    }
    for _, row in ipairs(rows) do
      local r, err = ds.start_link(row[1])
      assert.is_nil(r)
      assert.are.same({"supervisor_data", row[2]}, err)
      recv({"EXIT", ANY, {"supervisor_data"}})
    end
  end)

  it("takes a linked caller that does not trap exits down with an invalid strategy", function()
    local caller, ref = P.spawn_monitor(function()
      require("dynamic_supervisor").start_link({strategy = "rest_for_one"})
      P.receive(nil, 1000)
    end)
    assert.are.same({"supervisor_data", {"invalid_strategy", "rest_for_one"}},
                    recv({"DOWN", ref, "process", caller})[5])
  end)

  it("registers a name, refuses it twice, and answers through it", function()
    local sup = start({name = "ds_named"})
    assert.are.equal(sup, P.whereis("ds_named"))
    local r, err = ds.start_link({name = "ds_named"})
    assert.is_nil(r)
    assert.are.same({"already_started", sup}, err)
    local pid = ds.start_child("ds_named", worker({tag = "n"}))
    init_of("n")
    assert.are.same({{nil, pid, "worker", {"ds_worker"}}}, ds.which_children("ds_named"))
    assert.are.same(counts(1, 1, 0, 1), ds.count_children("ds_named"))
    assert.are.equal("ok", ds.terminate_child("ds_named", pid))
    assert.are.equal("ok", ds.stop("ds_named"))
    assert.is_nil(P.whereis("ds_named"))
  end)
end)

describe("dynamic_supervisor.which_children and count_children", function()
  it("list workers and supervisors in start order, with no ids", function()
    local sup = start()
    local a = ds.start_child(sup, worker({tag = "a"}))
    local sub = ds.start_child(sup, ds.child_spec({}))
    local b = ds.start_child(sup, {"ds_worker", {tag = "b"}})
    assert.is_true(P.is_pid(a) and P.is_pid(sub) and P.is_pid(b))
    assert.are.same({{nil, a, "worker", {"ds_worker"}},
                     {nil, sub, "supervisor", {"dynamic_supervisor"}},
                     {nil, b, "worker", {"ds_worker"}}}, ds.which_children(sup))
    assert.are.same(counts(3, 3, 1, 2), count(sup))
    assert.are.same(counts(0, 0, 0, 0), count(sub))
    assert.are.equal("ok", ds.terminate_child(sup, a))
    assert.are.same({{nil, sub, "supervisor", {"dynamic_supervisor"}},
                     {nil, b, "worker", {"ds_worker"}}}, ds.which_children(sup))
    assert.are.same(counts(2, 2, 1, 1), count(sup))
  end)

  it("show a child whose restart failed as \"restarting\", counted in specs only", function()
    local sys = require "sys"
    local me = P.self()
    local sup = start({intensity = 1})
    local pid = ds.start_child(sup, {start = {"ds_flaky", "start_link", {tag = "rs"}}})
    recv({"attempt", 1})
    init_of("rs")
    -- Queue the crash and then both queries while the supervisor is suspended, so that
    -- they are answered after the failed restart and before its retry.
    assert.are.equal("ok", sys.suspend(sup))
    P.exit(pid, "boom")
    assert.is_truthy(support.poll(2000, function()
      return P.info(sup).message_queue_len == 1 end))
    track(P.spawn(function() P.send(me, {"which", ds.which_children(sup)}) end))
    assert.is_truthy(support.poll(2000, function()
      return P.info(sup).message_queue_len == 2 end))
    track(P.spawn(function() P.send(me, {"count", ds.count_children(sup)}) end))
    assert.is_truthy(support.poll(2000, function()
      return P.info(sup).message_queue_len == 3 end))
    assert.are.equal("ok", sys.resume(sup))
    assert.are.same({"attempt", 2}, recv({"attempt"}))
    assert.are.same({{nil, "restarting", "worker", {"ds_flaky"}}}, recv({"which"})[2])
    assert.are.same(counts(1, 0, 0, 1), recv({"count"})[2])
    -- the retry is the second restart within the period: too many for intensity 1
    assert.are.same({"EXIT", sup, "shutdown"}, recv({"EXIT", sup}))
    nothing({"attempt"}, 50)
  end)

  it("child_spec makes a supervisor child spec", function()
    assert.are.same({id = "dynamic_supervisor", type = "supervisor",
                     start = {"dynamic_supervisor", "start_link", {}}}, ds.child_spec())
    assert.are.same({id = "pool", type = "supervisor",
                     start = {"dynamic_supervisor", "start_link", {name = "pool"}}},
                    ds.child_spec({name = "pool"}))
  end)
end)

describe("dynamic_supervisor shutdown", function()
  it("stop sends \"shutdown\" to every child and waits for them together", function()
    local sup = start()
    local kids = {}
    for i = 1, 3 do
      kids[i] = ds.start_child(sup, worker({tag = "k" .. i, trap = true, terminate_sleep = 400}))
      init_of("k" .. i)
    end
    local ref = P.monitor(sup)
    local t0 = P.monotonic()
    assert.are.equal("ok", ds.stop(sup))
    local took = P.monotonic() - t0
    for i = 1, 3 do
      assert.are.same({"terminate", "k" .. i, kids[i], "shutdown"},
                      recv({"terminate", "k" .. i}))
      assert.is_false(P.alive(kids[i]))
    end
    assert.are.equal("normal", recv({"DOWN", ref})[5])
    assert.is_true(took >= 390, "took " .. took)
    assert.is_true(took < 1100, "took " .. took .. " (one after the other would be 1200)")
  end)

  it("kills a child past its shutdown time, and brutal_kill children at once", function()
    local sup = start()
    local slow = ds.start_child(sup, {start = {"ds_worker", "start_link",
      {tag = "slow", trap = true, terminate_sleep = 500}}, shutdown = 100})
    local brutal = ds.start_child(sup, {start = {"ds_worker", "start_link",
      {tag = "brutal", trap = true}}, shutdown = "brutal_kill"})
    local plain = ds.start_child(sup, worker({tag = "plain"}))
    init_of("slow"); init_of("brutal"); init_of("plain")
    local r_slow, r_brutal, r_plain = P.monitor(slow), P.monitor(brutal), P.monitor(plain)
    local t0 = P.monotonic()
    assert.are.equal("ok", ds.stop(sup))
    local took = P.monotonic() - t0
    assert.are.equal("killed", recv({"DOWN", r_slow})[5])
    assert.are.equal("killed", recv({"DOWN", r_brutal})[5])
    assert.are.equal("shutdown", recv({"DOWN", r_plain})[5])
    assert.is_true(took >= 90 and took < 450, "took " .. took)
    recv({"terminate", "slow"})
    nothing({"terminate", "brutal"}, 50)
    nothing({"terminate", "plain"}, 0)
  end)

  it("terminate_child kills a child past its shutdown time", function()
    local sup = start()
    local slow = ds.start_child(sup, {start = {"ds_worker", "start_link",
      {tag = "slow1", trap = true, terminate_sleep = 500}}, shutdown = 100})
    init_of("slow1")
    local ref = P.monitor(slow)
    local t0 = P.monotonic()
    assert.are.equal("ok", ds.terminate_child(sup, slow))
    local took = P.monotonic() - t0
    assert.are.equal("killed", recv({"DOWN", ref})[5])
    assert.is_true(took >= 90 and took < 450, "took " .. took)
    assert.are.same(counts(0, 0, 0, 0), count(sup))
  end)

  it("an exit signal from the parent stops the children and ends it with that reason",
     function()
    local me = P.self()
    local parent = track(P.spawn(function()
      local dsup = require "dynamic_supervisor"
      local sup = dsup.start_link()
      local a = dsup.start_child(sup, {"ds_worker", {tag = "pa", trap = true}})
      local b = dsup.start_child(sup, {"ds_worker", {tag = "pb", trap = true}})
      P.send(me, {"ready", sup, a, b})
      P.receive()
    end))
    local ready = recv({"ready"})
    local sup, a, b = ready[2], ready[3], ready[4]
    track(sup)
    local ref = P.monitor(sup)
    P.exit(parent, {"shutdown", "bye"})
    assert.are.same({"shutdown", "bye"}, recv({"DOWN", ref})[5])
    assert.are.same({"terminate", "pa", a, "shutdown"}, recv({"terminate", "pa"}))
    assert.are.same({"terminate", "pb", b, "shutdown"}, recv({"terminate", "pb"}))
    assert.is_false(P.alive(a))
    assert.is_false(P.alive(b))
  end)

  it("stop on a supervisor that does not exist raises noproc", function()
    local ok, err = pcall(ds.stop, "ds_nobody")
    assert.is_false(ok)
    assert.are.same({"noproc", {"gen_server", "stop", {"ds_nobody", "normal", "infinity"}}},
                    err)
  end)
end)

describe("dynamic_supervisor reports", function()
  it("writes SUPERVISOR REPORTs for crashed children and for giving up", function()
    local script = os.tmpname()
    support.write_file(script, [[
      local ds = require "dynamic_supervisor"
      process.flag("trap_exit", true)
      local function spec(restart)
        return {start = {function() return process.spawn_link(function()
          local m = process.receive()
          error(m, 0)
        end) end}, restart = restart}
      end
      local sup = ds.start_link({name = "rep_sup", intensity = 0})
      local quiet = ds.start_child(sup, spec("temporary"))
      local t = ds.start_child(sup, spec("temporary"))
      local p = ds.start_child(sup, spec("permanent"))
      process.send(quiet, "normal")
      process.send(t, "boom")
      process.sleep(100)
      process.send(p, "bang")
      process.receive({"EXIT", sup}, 2000)
    ]])
    local cmd = support.shell_quote(support.moonbeam) .. " " .. support.shell_quote(script)
    local f = assert(io.popen(cmd .. " 2>&1"))
    local out = f:read("a")
    f:close()
    os.remove(script)
    local function n_of(s) return select(2, out:gsub(s:gsub("%p", "%%%0"), "")) end
    assert.are.equal(3, n_of("=SUPERVISOR REPORT===="), out)
    assert.are.equal(3, n_of('supervisor: rep_sup'), out)
    assert.are.equal(2, n_of("errorContext: child_terminated"), out)
    assert.are.equal(1, n_of('errorContext: child_terminated\n    reason: "boom"'), out)
    assert.are.equal(1, n_of('errorContext: child_terminated\n    reason: "bang"'), out)
    assert.are.equal(1, n_of('errorContext: shutdown\n    reason: "reached_max_restart_intensity"'),
                     out)
    assert.are.equal(1, n_of('{"restart_type", "temporary"}'), out)
  end)
end)
