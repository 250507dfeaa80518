-- tests/task_spec.lua — task: functions run in processes of their own, awaited, yielded,
-- shut down, streamed (OTP.md §4.2, acceptance scenarios 42–45 of §8).
--
-- The busted runner is itself a process and does not trap exits. Whatever needs a
-- trapping owner, or a clean mailbox, runs in a child process (`inside`) that sends back
-- what it saw; checks with luassert stay in the runner. Every receive has a timeout, and
-- after_each kills the processes a test left and empties the runner's mailbox.

local process = require "process"
local task = require "task"

local ANY = process.ANY

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = here .. "/fixtures/task/"

local spawned = {}

local function track(pid)
  if process.is_pid(pid) then spawned[#spawned + 1] = pid end
  return pid
end

local saved_path

before_each(function()
  saved_path = package.path
  package.path = FIXTURES .. "?.lua;" .. package.path
end)

after_each(function()
  package.path = saved_path
  for _, pid in ipairs(spawned) do   -- and wait, so that process.list() is settled
    local ref = process.monitor(pid)
    process.exit(pid, "kill")
    process.receive({"DOWN", ref}, 2000)
  end
  spawned = {}
  while process.receive(nil, 0) do end
end)

local function recv(pattern, ms)
  local m = process.receive(pattern, ms or 2000)
  assert(m ~= nil, "nothing received")
  return m
end

--- Runs f in a new process; returns what pcall(f) gave there, packed.
local function inside(f)
  local me, tag = process.self(), process.make_ref()
  track(process.spawn(function() process.send(me, {tag, table.pack(pcall(f))}) end))
  return recv({tag}, 10000)[2]
end

--- Waits (up to 2 s) until pid has ended; true if it has.
local function wait_dead(pid)
  local deadline = process.monotonic() + 2000
  while process.alive(pid) and process.monotonic() < deadline do process.sleep(5) end
  return not process.alive(pid)
end

local function linked_to(pid)
  for _, p in ipairs(process.info(process.self()).links) do
    if p == pid then return true end
  end
  return false
end

local function await_error(t, timeout)
  return {"task", "await", {t, timeout}}
end

describe("task", function()
  it("scenario 42: await times out with {timeout, {task, await, {t, 50}}}; a trapping "
     .. "caller that catches it leaves the task running", function()
    local r = inside(function()
      process.flag("trap_exit", true)
      local t = task.async(function() process.sleep(500) return "late" end)
      local t0 = process.monotonic()
      local ok, err = pcall(task.await, t, 50)
      local elapsed = process.monotonic() - t0
      local alive = process.alive(t.pid)
      process.exit(t.pid, "kill")
      return t, ok, err, elapsed, alive
    end)
    assert.is_true(r[1])
    local t = r[2]
    assert.is_false(r[3])
    assert.are.same({"timeout", await_error(t, 50)}, r[4])
    assert.is_true(r[5] >= 45 and r[5] < 1000, "took " .. r[5] .. " ms")
    assert.is_true(r[6])

    -- a caller that does not catch it exits with it, and takes the linked task along
    local me = process.self()
    local caller, cref = process.spawn_monitor(function()
      local t2 = task.async(function() process.sleep(2000) end)
      process.send(me, {"task", t2})
      process.receive(function(m) return m == "go" end, 2000)
      task.await(t2, 50)
    end)
    track(caller)
    local t2 = recv({"task"})[2]
    track(t2.pid)
    local tref = process.monitor(t2.pid)
    process.send(caller, "go")
    local reason = {"timeout", await_error(t2, 50)}
    assert.are.same(reason, recv({"DOWN", cref})[5])
    assert.are.same(reason, recv({"DOWN", tref})[5])
  end)

  it("scenario 43: a task that exits boom kills its owner that does not trap exits", function()
    local me = process.self()
    local owner, ref = process.spawn_monitor(function()
      local t = task.async(function() process.exit("boom") end)
      process.send(me, {"task", t.pid})
      task.await(t, 2000)
      process.send(me, "survived")
    end)
    track(owner)
    track(recv({"task"})[2])
    assert.are.equal("boom", recv({"DOWN", ref})[5])
    assert.is_nil(process.receive(function(m) return m == "survived" end, 0))
  end)

  it("scenario 44: yield gives nil, then ok; exit for a task that exits; shutdown stops a "
     .. "running task (nil) and gives the result of a finished one", function()
    local r = inside(function()
      process.flag("trap_exit", true)
      local me = process.self()
      local out = {}
      local t = task.async(function() process.sleep(200) return "v" end)
      out.yield10 = table.pack(task.yield(t, 10))
      out.alive_after_nil = process.alive(t.pid)
      out.yield500 = table.pack(task.yield(t, 1000))

      local x = task.async(function() process.exit("x") end)
      out.exited = table.pack(task.yield(x, 1000))

      local s = task.async(function() process.sleep(5000) end)
      out.shutdown_running = table.pack(task.shutdown(s))
      out.running_alive = process.alive(s.pid)

      local f = task.async(function() return "v" end)
      out.finished_dead = wait_dead(f.pid)
      out.shutdown_finished = table.pack(task.shutdown(f))

      local b = task.async(function() process.sleep(5000) end)
      out.brutal = table.pack(task.shutdown(b, "brutal_kill"))
      out.brutal_alive = process.alive(b.pid)

      -- a task that traps exits ignores "shutdown" and is killed after the timeout
      local stubborn = task.async(function()
        process.flag("trap_exit", true)
        process.send(me, "trapping")
        process.sleep(5000)
      end)
      process.receive(function(m) return m == "trapping" end, 2000)
      local t0 = process.monotonic()
      out.stubborn = table.pack(task.shutdown(stubborn, 100))
      out.stubborn_ms = process.monotonic() - t0
      out.stubborn_alive = process.alive(stubborn.pid)

      local c = task.async(function() error("crashed", 0) end)
      out.crashed_dead = wait_dead(c.pid)
      out.shutdown_crashed = table.pack(task.shutdown(c))

      -- nothing of those tasks is left but the EXITs of the links
      out.left = {}
      for _ = 1, 20 do
        local m = process.receive(nil, 0)
        if m == nil then break end
        out.left[#out.left + 1] = m[1]
      end
      return out
    end)
    assert.is_true(r[1], tostring(r[2]))
    local out = r[2]
    assert.are.same({n = 1}, out.yield10)
    assert.is_true(out.alive_after_nil)
    assert.are.same({"ok", "v", n = 2}, out.yield500)
    assert.are.same({"exit", "x", n = 2}, out.exited)
    assert.are.same({n = 1}, out.shutdown_running)
    assert.is_false(out.running_alive)
    assert.is_true(out.finished_dead)
    assert.are.same({"ok", "v", n = 2}, out.shutdown_finished)
    assert.are.same({n = 1}, out.brutal)
    assert.is_false(out.brutal_alive)
    assert.are.same({n = 1}, out.stubborn)
    assert.is_true(out.stubborn_ms >= 90 and out.stubborn_ms < 1000, "took " .. out.stubborn_ms)
    assert.is_false(out.stubborn_alive)
    assert.is_true(out.crashed_dead)
    assert.are.same({"exit", "crashed", n = 2}, out.shutdown_crashed)
    for _, kind in ipairs(out.left) do assert.are.equal("EXIT", kind) end
  end)

  it("shutdown unlinks the task first: an owner that does not trap exits survives it", function()
    local r = inside(function()
      local a = task.async(function() process.sleep(5000) end)
      local b = task.async(function() process.sleep(5000) end)
      return task.shutdown(a, 1000), task.shutdown(b, "brutal_kill"), process.alive(a.pid),
             process.alive(b.pid), process.receive(nil, 0)
    end)
    assert.are.same({true, nil, nil, false, false, nil, n = 6}, r)
  end)

  it("scenario 45: async_stream keeps input order or completion order, bounds concurrency, "
     .. "and handles timeouts by kill_task or by exiting", function()
    local me = process.self()
    local sleepy = function(v) process.sleep(v) return v end

    -- ordered (the default): input order although 10 finishes first
    assert.are.same({{"ok", 30}, {"ok", 10}, {"ok", 20}},
                    task.async_stream({30, 10, 20}, sleepy, {max_concurrency = 3}))
    -- unordered: completion order. With 2 at a time, 30 and 10 start; 20 starts when 10
    -- is done and ends last (sleeps scaled to 400/200/300 ms for a 100 ms margin)
    local scaled = function(v) process.sleep(100 + 10 * v) return v end
    assert.are.same({{"ok", 10}, {"ok", 30}, {"ok", 20}},
                    task.async_stream({30, 10, 20}, scaled, {ordered = false, max_concurrency = 2}))
    assert.are.same({{"ok", 10}, {"ok", 20}, {"ok", 30}},
                    task.async_stream({30, 10, 20}, scaled, {ordered = false, max_concurrency = 3}))

    -- at most 3 running at once (each item reports its start and finish to us, the caller)
    local items = {}
    for i = 1, 10 do items[i] = i end
    local results = task.async_stream(items, function(i)
      process.send(me, {"start", i})
      process.sleep(100)
      process.send(me, {"finish", i})
      return i * i
    end, {max_concurrency = 3})
    local expected = {}
    for i = 1, 10 do expected[i] = {"ok", i * i} end
    assert.are.same(expected, results)
    local running, peak, starts = 0, 0, 0
    while true do
      local m = process.receive(process.any_of({"start"}, {"finish"}), 0)
      if m == nil then break end
      if m[1] == "start" then
        running, starts = running + 1, starts + 1
        if running > peak then peak = running end
      else
        running = running - 1
      end
    end
    assert.are.equal(10, starts)
    assert.are.equal(0, running)
    assert.are.equal(3, peak)

    -- timeout 100 with kill_task: the late item is {"exit", "timeout"} and its task is dead
    local reporting = function(v)
      process.send(me, {"item", v, process.self()})
      process.sleep(v)
      return v
    end
    assert.are.same({{"ok", 10}, {"exit", "timeout"}, {"ok", 20}},
                    task.async_stream({10, 300, 20}, reporting,
                                      {timeout = 100, on_timeout = "kill_task"}))
    local late = recv({"item", 300})[3]
    assert.is_true(wait_dead(late))
    while process.receive({"item"}, 0) do end

    -- the default on_timeout: the caller exits, and no task is left running
    local caller, ref = process.spawn_monitor(function()
      task.async_stream({10, 300, 20}, reporting, {timeout = 100})
      process.send(me, "survived")
    end)
    track(caller)
    assert.are.same({"timeout", {"task", "async_stream", {100}}}, recv({"DOWN", ref})[5])
    assert.is_nil(process.receive(function(m) return m == "survived" end, 0))
    late = recv({"item", 300})[3]
    assert.is_true(wait_dead(late))
    -- caught: the late task was stopped all the same
    local ok, err = pcall(task.async_stream, {10, 3000}, reporting,
                          {timeout = 100, max_concurrency = 2})
    assert.is_false(ok)
    assert.are.same({"timeout", {"task", "async_stream", {100}}}, err)
    late = recv({"item", 3000})[3]
    assert.is_true(wait_dead(late))
  end)

  it("async_stream: failing items in a trapping caller, zip_input_on_exit, and the default "
     .. "max_concurrency (process.schedulers())", function()
    local r = inside(function()
      process.flag("trap_exit", true)
      local f = function(v)
        if v == "bad" then process.exit({"bad", "item"}) end
        process.sleep(v)
        return v
      end
      local plain = task.async_stream({1, "bad", 2}, f)
      local zipped = task.async_stream({1, "bad", 500, 2}, f,
                                       {zip_input_on_exit = true, timeout = 200,
                                        on_timeout = "kill_task", max_concurrency = 4})
      return plain, zipped
    end)
    assert.is_true(r[1], tostring(r[2]))
    assert.are.same({{"ok", 1}, {"exit", {"bad", "item"}}, {"ok", 2}}, r[2])
    assert.are.same({{"ok", 1}, {"exit", {"bad", {"bad", "item"}}}, {"exit", {500, "timeout"}},
                     {"ok", 2}}, r[3])

    -- a failing item brings down a caller that does not trap exits
    local caller, ref = process.spawn_monitor(function()
      task.async_stream({1, 2}, function(v)
        if v == 2 then error("item 2 failed", 0) end
        return v
      end)
    end)
    track(caller)
    assert.are.equal("item 2 failed", recv({"DOWN", ref})[5])

    local me = process.self()
    local n = process.schedulers()
    local items = {}
    for i = 1, 2 * n + 1 do items[i] = i end
    task.async_stream(items, function(i)
      process.send(me, {"start", i})
      process.sleep(100)
      process.send(me, {"finish", i})
    end)
    local running, peak = 0, 0
    while true do
      local m = process.receive(process.any_of({"start"}, {"finish"}), 0)
      if m == nil then break end
      running = running + (m[1] == "start" and 1 or -1)
      if running > peak then peak = running end
    end
    assert.are.equal(n, peak)
  end)

  it("async: runs f with the arguments in a linked, monitored process that exits normally "
     .. "after sending its result", function()
    local t = task.async(function(a, b)
      process.receive(function(m) return m == "go" end, 2000)
      return a + b, "only the first value"
    end, 2, 3)
    track(t.pid)
    assert.are.same({pid = t.pid, ref = t.ref, owner = process.self()}, t)
    assert.is_true(process.is_ref(t.ref))
    assert.is_true(linked_to(t.pid))
    assert.are.same({process.self()}, process.info(t.pid).monitored_by)
    local mine = process.monitor(t.pid)
    process.send(t.pid, "go")
    assert.are.equal(5, task.await(t))
    assert.are.equal("normal", recv({"DOWN", mine})[5])
    assert.is_nil(process.receive({"DOWN", t.ref}, 100))
    assert.is_nil(process.receive({t.ref, ANY}, 0))
    assert.is_nil(task.await(task.async(function() return nil end)))
  end)

  it("runs a \"module.function\" task, and rejects what is not a function", function()
    assert.are.equal(5, task.await(task.async("taskmod.add", 2, 3)))
    local t = task.async("taskmod.whoami")
    assert.are.equal(t.pid, task.await(t))
    local r = inside(function()
      process.flag("trap_exit", true)
      return task.yield(task.async("taskmod.not_a_function"), 2000)
    end)
    assert.are.same({true, "exit", "taskmod.not_a_function is not a function", n = 3}, r)
    for _, bad in ipairs({42, "nodot", "mod.", ".fn"}) do
      local ok, err = pcall(function() local v = task.async(bad); return v end)
      assert.is_false(ok)
      local what = type(bad) == "string" and string.format("%q", bad) or type(bad)
      assert.is_truthy(err:find("task_spec.lua:%d+: bad argument #1 to 'async' " ..
                                "%(function or \"module.function\" expected, got " ..
                                what:gsub("%p", "%%%0") .. "%)$"), err)
    end
  end)

  it("raises in the caller for a value that cannot be copied, and leaves no task", function()
    local co = coroutine.create(function() end)
    local ok, err = pcall(task.async, function() return co end)
    assert.is_false(ok)
    assert.are.equal("arg #1<upvalue co>: thread cannot be sent", err)
    ok, err = pcall(task.async, function(x) return x end, co)
    assert.is_false(ok)
    assert.are.equal("arg #2: thread cannot be sent", err)

    local before = {}
    for _, pid in ipairs(process.list()) do before[pid] = true end
    local f = function(v) process.sleep(5000) return v end
    ok, err = pcall(task.async_stream, {1, co}, f, {max_concurrency = 2})
    assert.is_false(ok)
    assert.are.equal("arg #2: thread cannot be sent", err)
    for _, pid in ipairs(process.list()) do      -- the task of item 1 was stopped
      if not before[pid] then assert.is_true(wait_dead(pid), tostring(pid)) end
    end
  end)

  it("await twice: the second call times out", function()
    local t = task.async(function() return "once" end)
    assert.are.equal("once", task.await(t))
    local ok, err = pcall(task.await, t, 100)
    assert.is_false(ok)
    assert.are.same({"timeout", await_error(t, 100)}, err)
  end)

  it("await exits with the task's reason when it ends without a result, even normal", function()
    local t = task.async(function() process.exit("normal") end)
    local ok, err = pcall(task.await, t)
    assert.is_false(ok)
    assert.are.same({"normal", await_error(t, 5000)}, err)

    local r = inside(function()
      process.flag("trap_exit", true)
      local c = task.async(function() error({"bad", 1}) end)
      local ok2, err2 = pcall(task.await, c, 2000)
      local exit = process.receive({"EXIT", c.pid, ANY}, 1000)
      return c, ok2, err2, exit
    end)
    local c = r[2]
    assert.is_false(r[3])
    assert.are.same({{"bad", 1}, await_error(c, 2000)}, r[4])
    assert.are.same({"EXIT", c.pid, {"bad", 1}}, r[5])
  end)

  it("await, yield and shutdown from a process other than the owner raise an argument error",
     function()
    local t = task.async(function()
      process.receive(function(m) return m == "go" end, 2000)
      return "mine"
    end)
    track(t.pid)
    local r = inside(function()
      local errs = {}
      for _, fname in ipairs({"await", "yield", "shutdown"}) do
        local ok, err = pcall(function() local v = task[fname](t, 100); return v end)
        errs[fname] = {ok, err, process.self()}
      end
      errs.yield_many = {pcall(task.yield_many, {t}, 100)}
      return errs
    end)
    assert.is_true(r[1])
    for _, fname in ipairs({"await", "yield", "shutdown", "yield_many"}) do
      local e = r[2][fname]
      assert.is_false(e[1])
      local msg = string.format("bad argument #1 to '%s' (task %s must be queried from its " ..
                                "owner %s, not from %s)", fname, tostring(t.pid),
                                tostring(process.self()), tostring(r[2].await[3]))
      assert.is_truthy(e[2]:find(msg, 1, true), e[2])
    end
    process.send(t.pid, "go")
    assert.are.equal("mine", task.await(t))
  end)

  it("no late result reaches a caller that caught an await timeout", function()
    local me = process.self()
    local r = inside(function()
      local t = task.async(function()
        process.sleep(200)
        process.send(me, "replying")
        return "late"
      end)
      local ok, err = pcall(task.await, t, 50)
      local finished = wait_dead(t.pid)
      process.sleep(50)
      return ok, err[1], finished, process.receive(nil, 0),
             process.info(process.self()).message_queue_len
    end)
    assert.are.same({true, false, "timeout", true, nil, 0, n = 6}, r)
    recv(function(m) return m == "replying" end)
  end)

  it("yield gives {exit, reason} to a trapping caller when the function raises", function()
    local r = inside(function()
      process.flag("trap_exit", true)
      local t = task.async(function() error("oops", 0) end)
      local how, reason = task.yield(t, 2000)
      local exit = process.receive({"EXIT", t.pid, ANY}, 1000)
      return how, reason, exit and exit[3], process.alive(t.pid)
    end)
    assert.are.same({true, "exit", "oops", "oops", false, n = 5}, r)
  end)

  it("yield_many: results in the order of the tasks, nil for those still running", function()
    local r = inside(function()
      process.flag("trap_exit", true)
      local slow = task.async(function() process.sleep(3000) end)
      local ok = task.async(function() return 1 end)
      local bad = task.async(function() process.exit("x") end)
      local t0 = process.monotonic()
      local res = task.yield_many({ok, bad, slow}, 300)
      local elapsed = process.monotonic() - t0
      local slow_alive = process.alive(slow.pid)
      task.shutdown(slow, "brutal_kill")
      local quick = task.async(function() return "q" end)
      t0 = process.monotonic()
      local res2 = task.yield_many({quick})
      local elapsed2 = process.monotonic() - t0
      process.sleep(50)
      local downs = 0                              -- the monitors went with the results
      while process.receive({"DOWN"}, 0) do downs = downs + 1 end
      return {ok, bad, slow, quick}, res, elapsed, slow_alive, res2, elapsed2, downs
    end)
    assert.is_true(r[1], tostring(r[2]))
    local ok, bad, slow, quick = table.unpack(r[2])
    assert.are.same({{ok, {"ok", 1}}, {bad, {"exit", "x"}}, {slow}}, r[3])
    assert.is_true(r[4] >= 290 and r[4] < 2000, "took " .. r[4])
    assert.is_true(r[5])
    assert.are.same({{quick, {"ok", "q"}}}, r[6])
    assert.is_true(r[7] < 1000, "took " .. r[7])
    assert.are.equal(0, r[8])
  end)

  it("start runs f(...) in a process that is not linked; start_link links it", function()
    local me = process.self()
    local pid = track(task.start(function(a, b) process.send(me, {"ran", a, b, process.self()}) end,
                                 "x", {1}))
    assert.is_true(process.is_pid(pid))
    assert.are.same({"ran", "x", {1}, pid}, recv({"ran"}))
    assert.is_false(linked_to(pid))
    assert.is_true(wait_dead(pid))

    local r = inside(function()
      process.flag("trap_exit", true)
      local p = task.start_link(function()
        process.receive(function(m) return m == "go" end, 2000)
        process.exit("boom")
      end)
      local linked = linked_to(p)
      process.send(p, "go")
      local exit = process.receive({"EXIT", p, ANY}, 2000)
      local p2 = task.start("taskmod.add", 1, 2)
      return linked, exit and exit[3], process.is_pid(p2)
    end)
    assert.are.same({true, true, "boom", true, n = 4}, r)
  end)

  it("child_spec: a temporary worker started by task.start_link", function()
    local f = function() end
    assert.are.same({id = "task", start = {"task", "start_link", f, 1, "two"}, restart = "temporary"},
                    task.child_spec(f, 1, "two"))
    local spec = require("childspec").check(task.child_spec(f))
    assert.are.equal("temporary", spec.restart)
    assert.are.equal(5000, spec.shutdown)
    assert.are.equal("worker", spec.type)
  end)

  it("internal: a task started by another process (_start_link) and owned through _connect",
     function()
    local me = process.self()
    local f = function(x)
      process.receive(function(m) return m == "go" end, 2000)
      return x * 2
    end
    -- a stand-in for a supervisor: starts the task for us and stays
    local sup = track(process.spawn(function()
      process.flag("trap_exit", true)
      process.send(me, {"started", task._start_link(me, f, 21)})
      process.send(me, {"sup got", process.receive({"EXIT", ANY, ANY}, 3000)})
    end))
    local pid = track(recv({"started"})[2])
    local t = task._connect(pid, true)
    assert.are.same({pid = pid, ref = t.ref, owner = me}, t)
    assert.is_true(linked_to(pid))
    process.send(pid, "go")
    assert.are.equal(42, task.await(t))
    assert.are.same({"sup got", {"EXIT", pid, "normal"}}, recv({"sup got"}))

    -- the owner ends before connecting: the task exits {"shutdown", reason}
    local owner = track(process.spawn(function() process.receive(nil, 3000) end))
    process.spawn(function()
      process.flag("trap_exit", true)
      local p = task._start_link(owner, f, 1)
      process.send(me, {"started", p})
      process.send(me, {"sup got", process.receive({"EXIT", p, ANY}, 3000)})
    end)
    local p = recv({"started"})[2]
    local deadline = process.monotonic() + 2000   -- until it watches its owner
    while process.info(p) and process.info(p).status ~= "waiting" and
          process.monotonic() < deadline do
      process.sleep(5)
    end
    process.exit(owner, "kill")
    assert.are.same({"sup got", {"EXIT", p, {"shutdown", "killed"}}}, recv({"sup got"}))
  end)
end)
