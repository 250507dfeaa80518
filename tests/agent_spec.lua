-- tests/agent_spec.lua — agent: a state held by a process and changed by functions sent to
-- it (OTP.md §4.1, acceptance scenarios 40 and 41 of §8).
--
-- The busted runner is itself a process and does not trap exits: agents that must fail
-- are started with agent.start (not linked), and whatever needs a linked or trapping caller
-- runs in a child process (`inside`) that sends back what it saw. Every receive has a
-- timeout, and after_each kills the agents and children a test left.

local process = require "process"
local agent = require "agent"
local gen_server = require "gen_server"

local ANY = process.ANY

local spawned = {}

local function track(pid)
  if process.is_pid(pid) then spawned[#spawned + 1] = pid end
  return pid
end

after_each(function()
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
  return recv({tag}, 5000)[2]
end

local function state(a) return agent.get(a, function(s) return s end) end

local function call_error(a, req, timeout)
  return {"gen_server", "call", {a, req, timeout or 5000}}
end

describe("agent", function()
  it("scenario 40: get, update, get_and_update, cast, stop, then noproc", function()
    local a = track(agent.start_link(function() return 0 end))
    assert.is_true(process.is_pid(a))
    assert.are.equal(0, agent.get(a, function(s) return s end))
    assert.are.equal("ok", agent.update(a, function(s) return s + 1 end))
    assert.are.equal(10, agent.get_and_update(a, function(s) return s * 10, s + 1 end))
    assert.are.equal("ok", agent.cast(a, function(s) return s + 100 end))
    assert.are.equal(102, agent.get(a, function(s) return s end))
    local ref = process.monitor(a)
    assert.are.equal("ok", agent.stop(a))
    assert.are.equal("normal", recv({"DOWN", ref})[5])
    local get = function(s) return s end
    local ok, err = pcall(agent.get, a, get)
    assert.is_false(ok)
    assert.are.same({"noproc", call_error(a, {"get", get})}, err)
  end)

  it("scenario 41: a raising function kills the agent and the caller exits with its reason; "
     .. "get_and_update must return a pair", function()
    local a = track(agent.start(function() return 1 end))
    local ref = process.monitor(a)
    local boom = function() error("kaboom", 0) end
    local ok, err = pcall(agent.update, a, boom)
    assert.is_false(ok)
    assert.are.same({"kaboom", call_error(a, {"update", boom})}, err)
    assert.are.equal("kaboom", recv({"DOWN", ref})[5])
    assert.is_false(process.alive(a))

    local cases = {
      {function(s) return s end, {1}},
      {function(s) return {s, s + 1} end, {{1, 2}}},
      {function(s) return s, s, s end, {1, 1, 1}},
      {function() end, {}},
    }
    for _, case in ipairs(cases) do
      local b = track(agent.start(function() return 1 end))
      local ref2 = process.monitor(b)
      local ok2, err2 = pcall(agent.get_and_update, b, case[1])
      assert.is_false(ok2)
      local reason = {"bad_return_value", case[2]}
      assert.are.same({reason, call_error(b, {"get_and_update", case[1]})}, err2)
      assert.are.same(reason, recv({"DOWN", ref2})[5])
    end
  end)

  it("runs every function inside the agent process, with the state as argument", function()
    local a = track(agent.start(function() return process.self() end))
    assert.are.equal(a, state(a))
    assert.are.equal(a, agent.get(a, function() return process.self() end))
    local me = process.self()
    agent.cast(a, function(s)
      process.send(me, {"cast ran in", process.self()})
      return s
    end)
    assert.are.equal(a, recv({"cast ran in"})[2])
    -- upvalues travel with the function
    local base = {10, 20}
    assert.are.equal("ok", agent.update(a, function() return base[1] + base[2] end))
    assert.are.equal(30, state(a))
    -- nil is a state like any other
    assert.are.equal("ok", agent.update(a, function() return nil end))
    assert.is_nil(state(a))
    assert.is_nil(agent.get_and_update(a, function(s) return s, 5 end))
    assert.are.equal(5, state(a))
  end)

  it("registers a name, answers through it, and refuses a taken name", function()
    local name = "agent_spec_counter"
    local a = track(agent.start_link(function() return 7 end, {name = name}))
    assert.are.equal(a, process.whereis(name))
    assert.are.equal(7, agent.get(name, function(s) return s end))
    assert.are.equal("ok", agent.update(name, function(s) return s + 1 end))
    assert.are.equal("ok", agent.cast(name, function(s) return s * 2 end))
    assert.are.equal(16, agent.get_and_update(name, function(s) return s, 0 end))
    local before = #process.list()
    local pid, err = agent.start(function() return 0 end, {name = name})
    assert.is_nil(pid)
    assert.are.same({"already_started", a}, err)
    assert.are.equal(before, #process.list())
    assert.are.equal("ok", agent.stop(name))
    assert.is_nil(process.whereis(name))
    local get = function(s) return s end
    local ok, err2 = pcall(agent.get, name, get)
    assert.is_false(ok)
    assert.are.same({"noproc", call_error(name, {"get", get})}, err2)
  end)

  it("reports a failing initial function, and links start_link's caller", function()
    local before = #process.list()
    local pid, err = agent.start(function() error("bad init", 0) end)
    assert.is_nil(pid)
    assert.are.equal("bad init", err)
    assert.are.equal(before, #process.list())

    -- a trapping caller of start_link gets the reason and the EXIT
    local r = inside(function()
      process.flag("trap_exit", true)
      local p, e = agent.start_link(function() process.exit({"no", "state"}) end)
      local exit = process.receive({"EXIT", ANY, ANY}, 2000)
      return p, e, exit and exit[3]
    end)
    assert.are.same({true, nil, {"no", "state"}, {"no", "state"}, n = 4}, r)

    -- a non-trapping caller dies with it
    local me = process.self()
    local child, ref = process.spawn_monitor(function()
      agent.start_link(function() error("bad init", 0) end)
      process.send(me, "survived")
    end)
    track(child)
    assert.are.equal("bad init", recv({"DOWN", ref})[5])
    assert.is_nil(process.receive(function(m) return m == "survived" end, 0))
  end)

  it("gives up on a slow initial function after the timeout option", function()
    local before = #process.list()
    local t0 = process.monotonic()
    local pid, err = agent.start(function() process.sleep(500) return 0 end, {timeout = 100})
    local elapsed = process.monotonic() - t0
    assert.is_nil(pid)
    assert.are.equal("timeout", err)
    assert.is_true(elapsed >= 90 and elapsed < 450, "took " .. elapsed .. " ms")
    assert.are.equal(before, #process.list())
  end)

  it("times out a slow get without stopping the agent, and no late reply arrives", function()
    local a = track(agent.start(function() return 1 end))
    local r = inside(function()
      local slow = function(s) process.sleep(300) return s end
      local ok, err = pcall(agent.get, a, slow, 100)
      process.sleep(400)
      local left = process.receive(nil, 0)
      return ok, err, slow, left
    end)
    assert.is_true(r[1])
    assert.is_false(r[2])
    assert.are.same({"timeout", call_error(a, {"get", r[4]}, 100)}, r[3])
    assert.is_nil(r[5])
    assert.is_true(process.alive(a))
    assert.are.equal(1, state(a))
  end)

  it("stop: ok once the agent has exited with the reason; noproc when it is gone", function()
    local a = track(agent.start(function() return 0 end))
    local ref = process.monitor(a)
    assert.are.equal("ok", agent.stop(a, "shutdown"))
    assert.are.equal("shutdown", recv({"DOWN", ref})[5])
    assert.is_false(process.alive(a))
    local ok, err = pcall(agent.stop, a)
    assert.is_false(ok)
    assert.are.same({"noproc", {"gen_server", "stop", {a, "normal", "infinity"}}}, err)
  end)

  it("get, update and get_and_update on a dead agent exit with noproc; cast is ok", function()
    local a = track(agent.start(function() return 0 end))
    assert.are.equal("ok", agent.stop(a))
    local f = function(s) return s, s end
    for _, op in ipairs({"get", "update", "get_and_update"}) do
      local ok, err = pcall(agent[op], a, f, 1000)
      assert.is_false(ok)
      assert.are.same({"noproc", call_error(a, {op, f}, 1000)}, err)
    end
    assert.are.equal("ok", agent.cast(a, f))
    assert.are.equal("ok", agent.cast("agent_spec_nobody", f))
  end)

  it("a raising cast kills the agent with the error", function()
    local a = track(agent.start(function() return 0 end))
    local ref = process.monitor(a)
    assert.are.equal("ok", agent.cast(a, function() error({"cast", "failed"}) end))
    assert.are.same({"cast", "failed"}, recv({"DOWN", ref})[5])
  end)

  it("rejects a value that is not a function", function()
    local ok, err = pcall(agent.start, 42)
    assert.is_false(ok)
    assert.is_truthy(err:find("bad argument #1 to 'start' (function expected, got number)", 1, true), err)
    local a = track(agent.start(function() return 0 end))
    ok, err = pcall(function() local v = agent.get(a, "s"); return v end)   -- blamed here
    assert.is_false(ok)
    assert.is_truthy(err:find("bad argument #2 to 'get' (function expected, got string)", 1, true), err)
    assert.is_truthy(err:find("agent_spec.lua:%d+: "), err)
  end)

  it("child_spec: a permanent worker started by agent.start_link", function()
    local f = function() return 0 end
    assert.are.same({id = "agent", start = {"agent", "start_link", f}, restart = "permanent",
                     type = "worker"}, agent.child_spec(f))
    local spec = require("childspec").check(agent.child_spec(f, {name = "agent_spec_child"}))
    assert.are.same({id = "agent", start = {"agent", "start_link", f, {name = "agent_spec_child"}},
                     restart = "permanent", type = "worker", shutdown = 5000, modules = {"agent"}},
                    spec)
    local r = inside(function()
      local how, pid = require("childspec").start(spec)
      local v = agent.get("agent_spec_child", function(s) return s end)
      local linked = false
      for _, p in ipairs(process.info(process.self()).links) do linked = linked or p == pid end
      agent.stop(pid)
      return how, v, linked
    end)
    assert.are.same({true, "ok", 0, true, n = 4}, r)
  end)

  it("is a gen_server: sys.get_state and code_change with a function", function()
    local sys = require "sys"
    local a = track(agent.start(function() return 21 end))
    assert.are.equal(21, sys.get_state(a))
    assert.are.equal("ok", sys.suspend(a))
    assert.are.equal("ok", sys.change_code(a, "agent", "1", function(s) return s * 2 end))
    assert.are.equal("ok", sys.resume(a))
    assert.are.equal(42, state(a))
    assert.are.equal(a, gen_server.whereis(a))
  end)
end)
