-- task_supervisor_spec.lua — tasks under a supervisor (OTP.md §3.8, scenario 39).
local task_supervisor = require "task_supervisor"
local task = require "task"
local P = process
local ANY = P.ANY

describe("task_supervisor", function()
  local sup
  before_each(function()
    P.flag("trap_exit", true)
    sup = assert(task_supervisor.start_link())
  end)
  after_each(function()
    P.exit(sup, "kill")
    while P.receive({"EXIT", ANY, ANY}, 50) do end
    P.flag("trap_exit", false)
  end)

  it("async: the supervisor starts the task, the caller awaits its result", function()
    local t = task_supervisor.async(sup, function(a, b) return a + b end, 2, 3)
    assert.are.equal(5, task.await(t, 1000))
    assert.is_true(P.is_pid(t.pid))
    assert.are.equal(P.self(), t.owner)
  end)

  it("async: the task is linked to the caller and supervised", function()
    local t = task_supervisor.async(sup, function() P.receive() end)
    local links = P.info(P.self()).links
    local linked = false
    for _, l in ipairs(links) do linked = linked or l == t.pid end
    assert.is_true(linked)
    assert.are.same({t.pid}, task_supervisor.children(sup))
    P.exit(t.pid, "kill")
    assert.are.same({"EXIT", t.pid, "killed"}, P.receive({"EXIT", t.pid, ANY}, 1000))
  end)

  it("39: async_nolink — a raising task gives {exit, reason} from yield, the caller lives", function()
    local me = P.self()
    local watcher = P.spawn(function()
      local t = task_supervisor.async_nolink(sup, function() error({"bad", 1}) end)
      P.send(me, {"yield", task.yield(t, 1000)})
    end)
    local m = P.receive({"yield"}, 3000)
    assert.are.same({"yield", "exit", {"bad", 1}}, m)
    P.sleep(20)
    assert.is_false(P.alive(watcher))   -- it ended normally, after reporting
  end)

  it("async_nolink: the caller is not linked, and a non-trapping caller survives a crash", function()
    local me = P.self()
    local caller, ref = P.spawn_monitor(function()
      local t = task_supervisor.async_nolink(sup, function() P.exit("boom") end)
      local how, r = task.yield(t, 1000)
      P.send(me, {"result", how, r, #P.info(P.self()).links})
      P.receive({"never"}, 200)
    end)
    assert.are.same({"result", "exit", "boom", 0}, P.receive({"result"}, 3000))
    assert.are.same({"DOWN", ref, "process", caller, "normal"}, P.receive({"DOWN", ref}, 3000))
  end)

  it("start_child: fire and forget, temporary by default, transient restarted on failure", function()
    local me = P.self()
    local pid = assert(task_supervisor.start_child(sup, function() P.send(me, "ran") end))
    assert.is_true(P.is_pid(pid))
    assert.are.equal("ran", P.receive(function(m) return m == "ran" end, 1000))
    local n = 0
    local flaky = assert(task_supervisor.start_child(sup, function()
      P.send(me, "try")
      if P.receive({"fail"}, 1000) then error("again", 0) end
    end, {restart = "transient"}))
    assert.are.equal("try", P.receive(function(m) return m == "try" end, 1000))
    P.send(flaky, {"fail"})
    assert.are.equal("try", P.receive(function(m) return m == "try" end, 1000))
    local again = task_supervisor.children(sup)
    assert.are.equal(1, #again)
    assert.are_not.equal(flaky, again[1])
    P.exit(again[1], "kill")
  end)

  it("children and terminate_child", function()
    local a = assert(task_supervisor.start_child(sup, function() P.receive() end))
    local b = assert(task_supervisor.start_child(sup, function() P.receive() end))
    local kids = task_supervisor.children(sup)
    table.sort(kids)
    local want = {a, b}
    table.sort(want)
    assert.are.same(want, kids)
    local ref = P.monitor(a)
    assert.are.equal("ok", task_supervisor.terminate_child(sup, a))
    assert.are.same({"DOWN", ref, "process", a, "shutdown"}, P.receive({"DOWN", ref}, 3000))
    assert.are.same({nil, "not_found"}, {task_supervisor.terminate_child(sup, a)})
    assert.are.same({b}, task_supervisor.children(sup))
    P.exit(b, "kill")
  end)

  it("async raises when the supervisor cannot start the task", function()
    local full = assert(task_supervisor.start_link({max_children = 1}))
    task_supervisor.start_child(full, function() P.receive() end)
    local ok, err = pcall(task_supervisor.async, full, function() end)
    assert.is_false(ok)
    assert.are.same({"max_children", {"task_supervisor", "async", {full}}}, err)
    P.exit(full, "kill")
  end)

  it("stops its tasks when it shuts down", function()
    local t = task_supervisor.async_nolink(sup, function() P.receive() end)
    local ref = P.monitor(t.pid)
    P.exit(sup, "shutdown")
    assert.are.same({"DOWN", ref, "process", t.pid, "shutdown"}, P.receive({"DOWN", ref}, 3000))
    assert.are.same({"exit", "shutdown"}, {task.yield(t, 1000)})
  end)
end)
