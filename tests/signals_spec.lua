-- tests/signals_spec.lua — exit signals, links, monitors, receive timeouts and names
-- (OTP.md §1.2–1.7 and acceptance scenarios 1–13 of §8).
--
-- The busted runner is itself a Moonbeam process: the tests link, monitor and trap
-- exits from it. Processes that must die abnormally are never linked to the runner
-- unless it traps exits. Children ack (after setting trap_exit or linking) before any
-- signal is sent, every receive has a timeout, and after_each kills what a test spawned.

local ANY = process.ANY
local NODE = "nonode@nohost"

local spawned = {}

local function track(pid)
  spawned[#spawned + 1] = pid
  return pid
end

local function spawn(f, ...)
  return track(process.spawn(f, ...))
end

-- Spawns f(test_pid, ...) and waits for its {"ready", pid} ack.
local function start(f, ...)
  local pid = spawn(f, process.self(), ...)
  local ack = process.receive({ "ready", pid }, 2000)
  assert.is_not_nil(ack, "process " .. tostring(pid) .. " did not ack within 2000 ms")
  return pid
end

local function show(v)
  if type(v) ~= "table" then
    if v == ANY then return "ANY" end
    return type(v) == "string" and string.format("%q", v) or tostring(v)
  end
  local parts = {}
  for i = 1, #v do parts[#parts + 1] = show(v[i]) end
  for k, x in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then
      parts[#parts + 1] = tostring(k) .. "=" .. show(x)
    end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- The first message matching `pattern`; fails the test if none comes within `timeout` ms.
local function recv(pattern, timeout)
  timeout = timeout or 2000
  local m = process.receive(pattern, timeout)
  assert.is_not_nil(m, "no message matching " .. show(pattern) .. " within " .. timeout .. " ms")
  return m
end

-- Fails the test if a message matching `pattern` arrives within `ms`.
local function refute_recv(pattern, ms)
  local m = process.receive(pattern, ms)
  assert.is_nil(m, "unexpected message " .. show(m) .. " (pattern " .. show(pattern) .. ")")
end

-- The reason of the DOWN for `ref`.
local function down_reason(ref, timeout)
  local m = process.receive({ "DOWN", ref }, timeout or 2000)
  assert.is_not_nil(m, "no DOWN for " .. tostring(ref) .. " within " .. (timeout or 2000) .. " ms")
  return m[5]
end

local function flush()
  while process.receive(nil, 0) ~= nil do end
end

local function count(list, v)
  local n = 0
  for _, x in ipairs(list) do
    if x == v then n = n + 1 end
  end
  return n
end

local function wait_until(cond, ms)
  local deadline = process.monotonic() + (ms or 2000)
  while not cond() do
    if process.monotonic() > deadline then return false end
    process.sleep(2)
  end
  return true
end

-- pcall(f, ...) must fail with an error whose text ends with `expected`
-- (argument errors may carry Lua's "file:line: " prefix).
local function assert_error_text(expected, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error: " .. expected)
  assert.are.equal("string", type(err))
  assert.is_true(err:sub(-#expected) == expected,
    "expected error ending with <" .. expected .. ">, got <" .. err .. ">")
end

-- Child bodies. Each one is called as f(test_pid, ...) and acks with {"ready", self}.

-- Waits (not trapping) until told {"stop"}.
local function waiter(parent)
  process.send(parent, { "ready", process.self() })
  process.receive({ "stop" }, 30000)
end

-- Links to `target` (when given) without trapping, then waits.
local function linker(parent, target)
  process.link(target)
  process.send(parent, { "ready", process.self() })
  process.receive({ "stop" }, 30000)
end

-- Traps exits, links to `target` (when given), then forwards every message it gets
-- to the test as {"got", self, msg}.
local function trapper(parent, target)
  process.flag("trap_exit", true)
  if target then process.link(target) end
  process.send(parent, { "ready", process.self() })
  while true do
    local m = process.receive(nil, 30000)
    if m == nil then return end
    process.send(parent, { "got", process.self(), m })
  end
end

-- Sets trap_exit to `trap`, links to `target` (when given), then on {"exit", R}
-- calls process.exit(R).
local function exiter(parent, trap, target)
  process.flag("trap_exit", trap or false)
  if target then process.link(target) end
  process.send(parent, { "ready", process.self() })
  local m = process.receive({ "exit", ANY }, 30000)
  if m then process.exit(m[2]) end
end

-- Sets trap_exit to `trap`; on {"signal_self", R} calls process.exit(self(), R) and,
-- if it is still alive, reports {"survived", self, <EXIT message or nil>}.
local function self_signaller(parent, trap)
  process.flag("trap_exit", trap)
  process.send(parent, { "ready", process.self() })
  local m = process.receive({ "signal_self", ANY }, 30000)
  if m == nil then return end
  process.exit(process.self(), m[2])
  process.send(parent, { "survived", process.self(), process.receive({ "EXIT" }, 1000) })
  process.receive({ "stop" }, 30000)
end

-- The message a trapper forwarded.
local function forwarded(pid, timeout)
  local m = process.receive({ "got", pid }, timeout or 2000)
  assert.is_not_nil(m, "nothing forwarded by " .. tostring(pid) .. " within " .. (timeout or 2000) .. " ms")
  return m[3]
end

before_each(function()
  process.flag("trap_exit", false)
  flush()
end)

after_each(function()
  for _, pid in ipairs(spawned) do
    process.unlink(pid)
    process.exit(pid, "kill")
  end
  for _, pid in ipairs(spawned) do
    wait_until(function() return not process.alive(pid) end, 2000)
  end
  spawned = {}
  process.flag("trap_exit", false)
  flush()
end)

describe("acceptance scenarios (OTP.md §8)", function()
  it("1: a normal exit over a link is harmless", function()
    local B = start(waiter)
    local A, ref = process.spawn_monitor(function(b) process.link(b) end, B)
    track(A)
    assert.are.equal("normal", down_reason(ref))
    process.sleep(50)
    assert.is_true(process.alive(B))
    assert.are.same({}, process.info(B).links)
  end)

  it("2: an abnormal exit spreads to a non-trapping linked process", function()
    local B = start(waiter)
    local ref = process.monitor(B)
    local A = start(exiter, false, B)
    local rA = process.monitor(A)
    process.send(A, { "exit", "boom" })
    assert.are.equal("boom", down_reason(rA))
    assert.are.equal("boom", down_reason(ref))
  end)

  it("3: a trapping process gets {'EXIT', A, boom} and stays alive", function()
    local A = start(exiter)
    local B = start(trapper, A)
    process.send(A, { "exit", "boom" })
    assert.are.same({ "EXIT", A, "boom" }, forwarded(B))
    assert.is_true(process.alive(B))
  end)

  it("4: kill cannot be trapped and killed spreads over links", function()
    local B = start(trapper)
    local C = start(linker, B)
    local rB = process.monitor(B)
    local rC = process.monitor(C)
    assert.is_true(process.exit(B, "kill"))
    assert.are.equal("killed", down_reason(rB))
    assert.are.equal("killed", down_reason(rC))
  end)

  it("5: exit(kill) on yourself is an ordinary, trappable reason", function()
    local A = start(exiter)
    local B = start(trapper, A)
    process.send(A, { "exit", "kill" })
    assert.are.same({ "EXIT", A, "kill" }, forwarded(B))
    process.sleep(50)
    assert.is_true(process.alive(B))
  end)

  it("6: exit(P, normal) is ignored by P, exit(self(), normal) kills P with normal", function()
    local P = start(self_signaller, false)
    local ref = process.monitor(P)
    assert.is_true(process.exit(P, "normal"))
    process.sleep(50)
    assert.is_true(process.alive(P))
    refute_recv({ "DOWN", ref }, 0)
    process.send(P, { "signal_self", "normal" })
    assert.are.equal("normal", down_reason(ref))
    refute_recv({ "survived", P }, 100)
  end)

  it("7: linking to a dead process raises noproc, or gives {'EXIT', D, noproc} when trapping", function()
    local D, ref = process.spawn_monitor(function() end)
    assert.are.equal("normal", down_reason(ref))
    local ok, err = pcall(process.link, D)
    assert.is_false(ok)
    assert.are.equal("noproc", err)
    -- caught inside another non-trapping process too (the error is an ordinary exception)
    local P, pref = process.spawn_monitor(function(parent, d)
      local ok2, err2 = pcall(process.link, d)
      process.send(parent, { "linked", ok2, err2 })
    end, process.self(), D)
    track(P)
    assert.are.same({ "linked", false, "noproc" }, recv({ "linked" }))
    assert.are.equal("normal", down_reason(pref))

    assert.is_false(process.flag("trap_exit", true))
    assert.is_true(process.link(D))
    assert.are.same({ "EXIT", D, "noproc" }, recv({ "EXIT", D }))
    assert.are.equal(0, count(process.info(process.self()).links, D))
  end)

  it("8: monitoring a dead pid or an unknown name gives DOWN noproc at once", function()
    local D, ref0 = process.spawn_monitor(function() end)
    assert.are.equal("normal", down_reason(ref0))
    local t0 = process.monotonic()
    local ref = process.monitor(D)
    assert.are.same({ "DOWN", ref, "process", D, "noproc" }, recv({ "DOWN", ref }))
    local ref2 = process.monitor("nobody_has_this_name")
    assert.are.same({ "DOWN", ref2, "process", { "nobody_has_this_name", NODE }, "noproc" },
      recv({ "DOWN", ref2 }))
    assert.is_true(process.monotonic() - t0 < 500)
  end)

  it("9: demonitor keeps a delivered DOWN, demonitor with flush removes it", function()
    local P, ref = process.spawn_monitor(function() end)
    track(P)
    assert.is_true(wait_until(function() return not process.alive(P) end))
    process.sleep(20)
    assert.is_true(wait_until(function() return process.info(process.self()).message_queue_len >= 1 end))
    assert.is_false(process.demonitor(ref))
    assert.are.same({ "DOWN", ref, "process", P, "normal" }, recv({ "DOWN", ref }, 0))

    local P2, ref2 = process.spawn_monitor(function() end)
    track(P2)
    assert.is_true(wait_until(function() return not process.alive(P2) end))
    process.sleep(20)
    assert.is_true(wait_until(function() return process.info(process.self()).message_queue_len >= 1 end))
    assert.is_false(process.demonitor(ref2, { flush = true }))
    refute_recv({ "DOWN", ref2 }, 100)
    assert.are.equal(0, process.info(process.self()).message_queue_len)
  end)

  it("10: messages from one process all arrive before its DOWN, in order (100 x 50)", function()
    for rep = 1, 100 do
      local P, ref = process.spawn_monitor(function(parent)
        for i = 1, 50 do process.send(parent, { "m", i }) end
      end, process.self())
      local function mine(m)
        return type(m) == "table" and (m[1] == "m" or (m[1] == "DOWN" and m[2] == ref))
      end
      for i = 1, 50 do
        local m = recv(mine)
        assert.are.same({ "m", i }, m, "repetition " .. rep)
      end
      assert.are.same({ "DOWN", ref, "process", P, "normal" }, recv(mine))
    end
  end)

  it("11: selective receive leaves the other messages in order; after 0 and after 100", function()
    local me = process.self()
    process.send(me, "a")
    process.send(me, "b")
    process.send(me, "c")
    assert.are.equal("b", recv(function(m) return m == "b" end, 0))
    assert.are.equal(2, process.info(me).message_queue_len)

    local t0 = process.monotonic()
    assert.is_nil(process.receive(function(m) return m == "z" end, 0))
    assert.is_true(process.monotonic() - t0 < 500)

    t0 = process.monotonic()
    assert.is_nil(process.receive(function(m) return m == "z" end, 100))
    local elapsed = process.monotonic() - t0
    assert.is_true(elapsed >= 90 and elapsed < 1000, "after 100 took " .. elapsed .. " ms")

    assert.are.equal("a", process.receive(nil, 0))
    assert.are.equal("c", process.receive(nil, 0))
    assert.is_nil(process.receive(nil, 0))
  end)

  it("12: register errors (badarg cases) and release of the name on death", function()
    local P = start(waiter)
    local Q = start(waiter)
    local D, dref = process.spawn_monitor(function() end)
    assert.are.equal("normal", down_reason(dref))

    assert.is_true(process.register("foo", P))
    assert_error_text("bad argument #1 to 'process.register' (name 'foo' is already registered)",
      process.register, "foo", Q)
    assert_error_text("bad argument #2 to 'process.register' (process " .. tostring(P) .. " already has a name)",
      process.register, "bar", P)
    assert_error_text("bad argument #2 to 'process.register' (process " .. tostring(D) .. " is not alive)",
      process.register, "baz", D)
    assert_error_text("bad argument #1 to 'process.register' ('undefined' cannot be a process name)",
      process.register, "undefined", Q)
    assert_error_text("bad argument #1 to 'process.register' (name expected, got number)",
      process.register, 42, Q)
    assert_error_text("bad argument #1 to 'process.send' (no process registered as 'nope')",
      process.send, "nope", "hello")
    assert_error_text("bad argument #1 to 'process.unregister' (name 'nope' is not registered)",
      process.unregister, "nope")
    assert.is_nil(process.whereis("nope"))
    assert.is_nil(process.whereis("bar"))
    assert.is_nil(process.whereis("baz"))
    assert.are.equal(P, process.whereis("foo"))
    assert.are.equal("foo", process.info(P).name)
    assert.is_nil(process.info(Q).name)

    local ref = process.monitor(P)
    process.exit(P, "kill")
    assert.are.equal("killed", down_reason(ref))
    assert.is_nil(process.whereis("foo"))
    assert.is_true(process.register("foo", Q))
    assert.are.equal(Q, process.whereis("foo"))
    assert.are.equal("hello", process.send("foo", "hello"))
    process.unregister("foo")
  end)

  it("13: spawn_link of a child that exits at once gives its real reason, never noproc", function()
    process.flag("trap_exit", true)
    for _ = 1, 20 do
      local P = track(process.spawn_link(function() process.exit("x") end))
      assert.are.same({ "EXIT", P, "x" }, recv({ "EXIT", P }))
    end
  end)
end)

describe("exit signals (OTP.md §1.2)", function()
  it("normal from another process is ignored by a non-trapping process", function()
    local P = start(waiter)
    local ref = process.monitor(P)
    assert.is_true(process.exit(P, "normal"))
    refute_recv({ "DOWN", ref }, 100)
    assert.is_true(process.alive(P))
  end)

  it("normal from another process becomes {'EXIT', From, normal} when trapping", function()
    local P = start(trapper)
    assert.is_true(process.exit(P, "normal"))
    assert.are.same({ "EXIT", process.self(), "normal" }, forwarded(P))
    assert.is_true(process.alive(P))
  end)

  it("normal sent to self kills a non-trapping process with normal", function()
    local P = start(self_signaller, false)
    local ref = process.monitor(P)
    process.send(P, { "signal_self", "normal" })
    assert.are.equal("normal", down_reason(ref))
    refute_recv({ "survived", P }, 100)
  end)

  it("normal sent to self becomes {'EXIT', self, normal} when trapping", function()
    local P = start(self_signaller, true)
    process.send(P, { "signal_self", "normal" })
    assert.are.same({ "survived", P, { "EXIT", P, "normal" } }, recv({ "survived", P }))
    assert.is_true(process.alive(P))
  end)

  it("exit(P, kill) kills a non-trapping process with killed", function()
    local P = start(waiter)
    local ref = process.monitor(P)
    assert.is_true(process.exit(P, "kill"))
    assert.are.equal("killed", down_reason(ref))
  end)

  it("exit(P, kill) kills a trapping process with killed", function()
    local P = start(trapper)
    local ref = process.monitor(P)
    assert.is_true(process.exit(P, "kill"))
    assert.are.equal("killed", down_reason(ref))
    refute_recv({ "got", P }, 50)
  end)

  it("kill coming over a link kills a non-trapping process with kill", function()
    local A = start(exiter)
    local P = start(linker, A)
    local ref = process.monitor(P)
    process.send(A, { "exit", "kill" })
    assert.are.equal("kill", down_reason(ref))
  end)

  it("kill coming over a link is trappable", function()
    local A = start(exiter)
    local P = start(trapper, A)
    process.send(A, { "exit", "kill" })
    assert.are.same({ "EXIT", A, "kill" }, forwarded(P))
    assert.is_true(process.alive(P))
  end)

  it("killed coming over a link kills a non-trapping process with killed", function()
    local A = start(waiter)
    local P = start(linker, A)
    local ref = process.monitor(P)
    process.exit(A, "kill")
    assert.are.equal("killed", down_reason(ref))
  end)

  it("killed coming over a link becomes {'EXIT', From, killed} when trapping", function()
    local A = start(waiter)
    local P = start(trapper, A)
    process.exit(A, "kill")
    assert.are.same({ "EXIT", A, "killed" }, forwarded(P))
    assert.is_true(process.alive(P))
  end)

  it("any other reason over a link kills a non-trapping process with that reason", function()
    local A = start(exiter)
    local P = start(linker, A)
    local ref = process.monitor(P)
    process.send(A, { "exit", { "custom", 42 } })
    assert.are.same({ "custom", 42 }, down_reason(ref))
  end)

  it("any other reason over a link becomes {'EXIT', From, R} when trapping", function()
    local A = start(exiter)
    local P = start(trapper, A)
    process.send(A, { "exit", "boom" })
    assert.are.same({ "EXIT", A, "boom" }, forwarded(P))
    assert.is_true(process.alive(P))
  end)

  it("exit(P, R) from another process kills a non-trapping P with R", function()
    local P = start(waiter)
    local ref = process.monitor(P)
    assert.is_true(process.exit(P, { "shutdown", "x" }))
    assert.are.same({ "shutdown", "x" }, down_reason(ref))
  end)

  it("exit(P, R) arrives at a trapping P as {'EXIT', Sender, R}", function()
    local P = start(trapper)
    assert.is_true(process.exit(P, "foo"))
    assert.are.same({ "EXIT", process.self(), "foo" }, forwarded(P))
    assert.is_true(process.alive(P))
  end)

  it("exit(R) ends a trapping process with R", function()
    local P = start(exiter, true)
    local ref = process.monitor(P)
    process.send(P, { "exit", "bye" })
    assert.are.equal("bye", down_reason(ref))
  end)

  describe("a process killed by a signal passes the same reason on to its links (A-B-C)", function()
    local function chain()
      local A = start(exiter)
      local B = start(linker, A)
      local C = start(linker, B)
      return A, B, C, process.monitor(A), process.monitor(B), process.monitor(C)
    end

    it("killed stays killed", function()
      local A, _, _, rA, rB, rC = chain()
      process.exit(A, "kill")
      assert.are.equal("killed", down_reason(rA))
      assert.are.equal("killed", down_reason(rB))
      assert.are.equal("killed", down_reason(rC))
    end)

    it("kill coming over a link stays kill", function()
      local A, _, _, rA, rB, rC = chain()
      process.send(A, { "exit", "kill" })
      assert.are.equal("kill", down_reason(rA))
      assert.are.equal("kill", down_reason(rB))
      assert.are.equal("kill", down_reason(rC))
    end)

    it("another reason stays the same", function()
      local A, _, _, rA, rB, rC = chain()
      process.send(A, { "exit", { "boom", 7 } })
      assert.are.same({ "boom", 7 }, down_reason(rA))
      assert.are.same({ "boom", 7 }, down_reason(rB))
      assert.are.same({ "boom", 7 }, down_reason(rC))
    end)

    it("normal stops at the first non-trapping link", function()
      local A, B, C, rA, rB, rC = chain()
      process.send(A, { "exit", "normal" })
      assert.are.equal("normal", down_reason(rA))
      refute_recv({ "DOWN", rB }, 100)
      refute_recv({ "DOWN", rC }, 0)
      assert.is_true(process.alive(B))
      assert.is_true(process.alive(C))
    end)
  end)
end)

describe("links (OTP.md §1.3)", function()
  it("linking twice makes one link and a single unlink removes it", function()
    local me = process.self()
    local P = start(waiter)
    process.flag("trap_exit", true)
    assert.is_true(process.link(P))
    assert.is_true(process.link(P))
    assert.are.equal(1, count(process.info(P).links, me))
    assert.are.equal(1, count(process.info(me).links, P))
    assert.is_true(process.unlink(P))
    assert.are.equal(0, count(process.info(P).links, me))
    assert.are.equal(0, count(process.info(me).links, P))
    local ref = process.monitor(P)
    process.exit(P, "boom")
    assert.are.equal("boom", down_reason(ref))
    refute_recv({ "EXIT", P }, 100)
  end)

  it("linking to self returns true and does nothing", function()
    local me = process.self()
    local before = #process.info(me).links
    assert.is_true(process.link(me))
    assert.are.equal(0, count(process.info(me).links, me))
    assert.are.equal(before, #process.info(me).links)
  end)

  it("unlink keeps an EXIT that is already in the mailbox", function()
    process.flag("trap_exit", true)
    local P = start(exiter)
    assert.is_true(process.link(P))
    process.send(P, { "exit", "bye" })
    assert.is_true(wait_until(function() return not process.alive(P) end))
    assert.is_true(wait_until(function()
      return process.info(process.self()).message_queue_len >= 1
    end))
    assert.is_true(process.unlink(P))
    assert.are.same({ "EXIT", P, "bye" }, recv({ "EXIT", P }, 0))
  end)

  it("a spawn_link child dies when its parent crashes", function()
    local Parent = start(function(test)
      local child = process.spawn_link(function() process.receive({ "stop" }, 30000) end)
      process.send(test, { "child", child })
      process.send(test, { "ready", process.self() })
      local m = process.receive({ "crash" }, 30000)
      if m then error("crash", 0) end
    end)
    local child = track(recv({ "child" })[2])
    local rP = process.monitor(Parent)
    local rC = process.monitor(child)
    assert.is_true(process.alive(child))
    process.send(Parent, { "crash" })
    assert.are.equal("crash", down_reason(rP))
    assert.are.equal("crash", down_reason(rC))
  end)
end)

describe("monitors (OTP.md §1.4)", function()
  it("several monitors on one target each fire exactly once", function()
    local P = start(waiter)
    local r1, r2, r3 = process.monitor(P), process.monitor(P), process.monitor(P)
    assert.are_not.equal(r1, r2)
    assert.are_not.equal(r2, r3)
    assert.are_not.equal(r1, r3)
    assert.are.equal(3, count(process.info(P).monitored_by, process.self()))
    process.exit(P, "bye")
    for _, r in ipairs({ r1, r2, r3 }) do
      assert.are.same({ "DOWN", r, "process", P, "bye" }, recv({ "DOWN", r }))
    end
    refute_recv(function(m) return type(m) == "table" and m[1] == "DOWN" and m[4] == P end, 100)
  end)

  it("a monitor set by name reports {name, node} as the item", function()
    local P = start(waiter)
    assert.is_true(process.register("signals_mon_target", P))
    local ref = process.monitor("signals_mon_target")
    process.exit(P, "bye")
    assert.are.same({ "DOWN", ref, "process", { "signals_mon_target", NODE }, "bye" },
      recv({ "DOWN", ref }))
  end)

  it("demonitor before the target dies means no DOWN ever", function()
    local P = start(waiter)
    local ref = process.monitor(P)
    assert.is_true(process.demonitor(ref))
    assert.are.equal(0, count(process.info(P).monitored_by, process.self()))
    local ref2 = process.monitor(P)
    assert.is_true(process.demonitor(ref2, { flush = true }))
    process.exit(P, "kill")
    assert.is_true(wait_until(function() return not process.alive(P) end))
    refute_recv({ "DOWN", ref }, 100)
    refute_recv({ "DOWN", ref2 }, 0)
    assert.is_false(process.demonitor(ref))
  end)

  it("demonitor with flush removes a DOWN that a receive has already looked at", function()
    local P, ref = process.spawn_monitor(function() end)
    track(P)
    assert.is_true(wait_until(function() return not process.alive(P) end))
    process.sleep(20)
    assert.is_nil(process.receive({ "no such message" }, 50)) -- scans the DOWN, leaves it
    assert.is_false(process.demonitor(ref, { flush = true }))
    refute_recv({ "DOWN", ref }, 100)
  end)

  it("is not affected by trap_exit: the watcher gets a DOWN, never an EXIT, and survives", function()
    -- not trapping: an abnormal death of the target does not touch the watcher
    local A = start(exiter)
    local ref = process.monitor(A)
    process.send(A, { "exit", "boom" })
    assert.are.same({ "DOWN", ref, "process", A, "boom" }, recv({ "DOWN", ref }))

    -- trapping: still a DOWN, and no EXIT since there is no link
    assert.is_false(process.flag("trap_exit", true))
    local B = start(exiter)
    local ref2 = process.monitor(B)
    process.send(B, { "exit", "boom" })
    assert.are.same({ "DOWN", ref2, "process", B, "boom" }, recv({ "DOWN", ref2 }))
    refute_recv({ "EXIT" }, 100)
  end)

  it("spawn_monitor returns a pid and a ref whose DOWN carries the real reason", function()
    local P, ref = process.spawn_monitor(function() process.exit({ "why", 1 }) end)
    track(P)
    assert.is_true(process.is_pid(P))
    assert.is_true(process.is_ref(ref))
    assert.are.same({ "DOWN", ref, "process", P, { "why", 1 } }, recv({ "DOWN", ref }))
  end)
end)

describe("receive timeouts (OTP.md §1.6)", function()
  it("after 0 looks once and returns nil at once", function()
    local t0 = process.monotonic()
    assert.is_nil(process.receive(nil, 0))
    assert.is_true(process.monotonic() - t0 < 500)
  end)

  it("after 0 takes a message already in the mailbox", function()
    process.send(process.self(), { "here" })
    assert.are.same({ "here" }, process.receive({ "here" }, 0))
  end)

  it("after 100 returns nil after about 100 ms", function()
    local t0 = process.monotonic()
    assert.is_nil(process.receive({ "never" }, 100))
    local elapsed = process.monotonic() - t0
    assert.is_true(elapsed >= 90 and elapsed < 1000, "after 100 took " .. elapsed .. " ms")
  end)

  it("a message arriving during the wait ends it early", function()
    local me = process.self()
    spawn(function() process.sleep(50); process.send(me, { "late" }) end)
    local t0 = process.monotonic()
    assert.are.same({ "late" }, process.receive({ "late" }, 2000))
    assert.is_true(process.monotonic() - t0 < 1000)
  end)
end)

describe("registered names (OTP.md §1.7)", function()
  it("register returns true, registered() lists, unregister releases, whereis gives nil", function()
    local P = start(waiter)
    assert.is_true(process.register("signals_name", P))
    assert.are.equal(P, process.whereis("signals_name"))
    assert.are.equal(1, count(process.registered(), "signals_name"))
    assert.are.equal("hi", process.send("signals_name", "hi"))
    assert.is_true(process.unregister("signals_name"))
    assert.is_nil(process.whereis("signals_name"))
    assert.are.equal(0, count(process.registered(), "signals_name"))
    assert.is_nil(process.info(P).name)
    assert.is_true(process.register("signals_name2", P))
    assert.are.equal(P, process.whereis("signals_name2"))
    assert.is_true(process.unregister("signals_name2"))
  end)
end)

describe("process.flag and process.exit", function()
  it("flag('trap_exit', b) returns the old value", function()
    local me = process.self()
    assert.is_false(process.flag("trap_exit", true))
    assert.is_true(process.info(me).trap_exit)
    assert.is_true(process.flag("trap_exit", true))
    assert.is_true(process.flag("trap_exit", false))
    assert.is_false(process.flag("trap_exit", false))
    assert.is_false(process.info(me).trap_exit)
  end)

  it("flag rejects unknown flags", function()
    assert_error_text("bad argument #1 to 'process.flag' (unknown flag 'bogus')",
      process.flag, "bogus", true)
    assert.is_false(process.flag("trap_exit", false))
  end)

  it("exit(reason) raises the reason as is and can be caught with pcall", function()
    local ok, err = pcall(process.exit, "bye")
    assert.is_false(ok)
    assert.are.equal("bye", err)
    local reason = { "shutdown", { n = 1 } }
    ok, err = pcall(process.exit, reason)
    assert.is_false(ok)
    assert.are.equal(reason, err)
    assert.is_true(process.alive(process.self()))
  end)

  it("exit(reason) caught inside a process leaves it running; uncaught it ends it with reason", function()
    local P, ref = process.spawn_monitor(function(parent)
      local ok, err = pcall(process.exit, { "caught", 1 })
      process.send(parent, { "caught", ok, err })
      process.exit({ "final", 2 })
    end, process.self())
    track(P)
    assert.are.same({ "caught", false, { "caught", 1 } }, recv({ "caught" }))
    assert.are.same({ "final", 2 }, down_reason(ref))
  end)
end)

describe("process.info links and monitors", function()
  it("links, monitors and monitored_by reflect links and monitors", function()
    local me = process.self()
    local P = start(waiter)
    local Q = start(linker, P)
    assert.is_true(process.link(P))
    local ref = process.monitor(P)
    assert.is_true(process.register("signals_info", Q))
    local ref2 = process.monitor("signals_info")

    local ip = process.info(P)
    assert.are.equal(2, #ip.links)
    assert.are.equal(1, count(ip.links, me))
    assert.are.equal(1, count(ip.links, Q))
    assert.are.same({ me }, ip.monitored_by)
    assert.are.same({}, ip.monitors)

    local iq = process.info(Q)
    assert.are.same({ P }, iq.links)
    assert.are.same({ me }, iq.monitored_by)

    local mine = process.info(me)
    assert.are.equal(1, count(mine.links, P))
    assert.are.equal(1, count(mine.monitors, P))
    assert.are.equal(1, count(mine.monitors, "signals_info"))

    assert.is_true(process.demonitor(ref))
    assert.is_true(process.demonitor(ref2))
    assert.is_true(process.unlink(P))
    assert.are.same({ Q }, process.info(P).links)
    assert.are.same({}, process.info(P).monitored_by)
    assert.are.same({}, process.info(Q).monitored_by)
    mine = process.info(me)
    assert.are.equal(0, count(mine.links, P))
    assert.are.equal(0, count(mine.monitors, P))
    assert.are.equal(0, count(mine.monitors, "signals_info"))
  end)

  it("a process's monitors list the pids it watches", function()
    local P = start(waiter)
    local W = start(function(parent, target)
      process.monitor(target)
      process.send(parent, { "ready", process.self() })
      process.receive({ "stop" }, 30000)
    end, P)
    assert.are.same({ P }, process.info(W).monitors)
    assert.are.same({ W }, process.info(P).monitored_by)
  end)

  it("info of a dead pid is nil and links to it are gone", function()
    local P = start(waiter)
    local Q = start(linker, P)
    local ref = process.monitor(P)
    process.send(P, { "stop" })
    assert.are.equal("normal", down_reason(ref))
    assert.is_nil(process.info(P))
    assert.is_true(wait_until(function() return #process.info(Q).links == 0 end))
    assert.is_true(process.alive(Q))
  end)
end)
