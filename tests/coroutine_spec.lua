-- tests/coroutine_spec.lua — Lua coroutines and debug hooks inside processes.
--
-- The runtime replaces coroutine.resume/wrap/yield/isyieldable/running and
-- debug.sethook/gethook in every process, so that a receive, a sleep or a preemption
-- inside a user coroutine suspends the whole process and resumes it exactly there, while
-- the program sees stock Lua 5.4 behaviour. Checked here:
--   * stock semantics: the cases in tests/fixtures/coroutine/cases.lua (and hooks.lua) give
--     the results lua5.4 gives (run through stock_main.lua), both in this busted process
--     and in spawned children, with the coroutines suspended at many points (W modes);
--   * transparency: receive/sleep/preemption inside coroutines, statuses while suspended,
--     waits inside coroutines resumed from a table.sort comparator;
--   * debug.sethook: counts and lines as in lua5.4, per-thread hooks, and preemption and
--     kill still working with program hooks installed;
--   * exit signals reaching a process suspended inside a coroutine.
-- Checks that need exactly one scheduler, or that could take the whole runtime down when
-- they fail, run a child `moonbeam` on a script from tests/fixtures/coroutine/.

local process = require "process"

local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
local MOONBEAM = support.moonbeam
local FIXTURES = support.dir .. "/fixtures/coroutine/"
local ANY = process.ANY

local show = dofile(FIXTURES .. "show.lua")

local read_file = support.read_file

local CASES = read_file(FIXTURES .. "cases.lua")
local HOOKS = read_file(FIXTURES .. "hooks.lua")

local shell_quote = support.shell_quote

-- Runs a shell command under a time limit; returns its output (stdout and stderr),
-- how it ended and its status, as io.popen's close gives them.
local function run(cmd, limit)
  local pipe = assert(io.popen("timeout " .. (limit or 30) .. " " .. cmd .. " 2>&1"))
  local out = pipe:read("a")
  local _, how, code = pipe:close()
  return out, how, code
end

local function run_moonbeam(args, limit)
  return run(shell_quote(MOONBEAM) .. " " .. args, limit)
end

-- What lua5.4 prints for every case of a cases file: name -> show(result).
local stock_cache = {}
local function stock(file)
  if not stock_cache[file] then
    local out, how, code = run("lua5.4 " .. shell_quote(FIXTURES .. "stock_main.lua") .. " "
                               .. shell_quote(FIXTURES .. file))
    assert(how == "exit" and code == 0, "lua5.4 stock_main.lua " .. file .. " failed:\n" .. out)
    local results = {}
    for name, shown in out:gmatch("([^\t\n]+)\t([^\n]*)") do results[name] = shown end
    stock_cache[file] = results
  end
  return stock_cache[file]
end

-- "cases:N:" for the line of cases.lua marked "-- @marker".
local function at(marker)
  local n = 0
  for line in (CASES .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local s, e = line:find("-- @" .. marker, 1, true)
    if s and not line:sub(e + 1, e + 1):match("%w") then return "cases:" .. n .. ":" end
  end
  error("no line marked @" .. marker .. " in cases.lua")
end

-- The W a case calls where its coroutines may be suspended. Under lua5.4 it does nothing;
-- here each mode suspends the whole process in a different way.
local function make_W(mode)
  if mode == "plain" then
    return function() end
  elseif mode == "yield" then
    return function() process.yield() end
  elseif mode == "sleep" then
    return function() process.sleep(1) end
  elseif mode == "timeout" then   -- a receive that waits and times out
    return function() process.receive({ "never sent" }, 1) end
  elseif mode == "message" then   -- a receive woken by a message arriving later
    return function()
      local ref = process.make_ref()
      process.send_after(1, process.self(), { "wake", ref })
      assert(process.receive({ "wake", ref }, 3000), "no wake-up message")
    end
  elseif mode == "busy" then      -- some 6000 instructions: more than a time slice
    return function()
      local x = 0
      for i = 1, 3000 do x = x + i end
    end
  elseif mode == "process.sleep" or mode == "process.yield" then
    -- for hooks.lua, which calls W(1): C functions, so no Lua instructions are added
    return process[mode:match("%.(%a+)")]
  end
  error("unknown W mode " .. mode)
end

local CASE_MODES = { "plain", "yield", "sleep", "timeout", "message", "busy" }
local CHILD_MODES = { "plain", "message", "busy" }
local HOOK_MODES = { "plain", "process.sleep", "process.yield" }

-- Runs one case here. `fresh_slice`: start it on a new time slice, so that a case shorter
-- than a slice is not preempted (preemption under program hooks has its own tests).
local function run_here(source, name, mode, fresh_slice)
  local cases = assert(load(source, "=cases"))(make_W(mode))
  if fresh_slice then process.yield() end
  return cases[name]()
end

-- Runs f(...) in a new process and returns what it returned (one value).
local function in_child(f, ...)
  local pid, ref = process.spawn_monitor(function(parent, fn, ...)
    process.send(parent, { "child result", process.self(), fn(...) })
  end, process.self(), f, ...)
  local m = process.receive(process.any_of({ "child result", pid }, { "DOWN", ref }), 15000)
  process.exit(pid, "kill")
  process.demonitor(ref, { flush = true })
  assert(m, "no answer from the child within 15 s")
  assert(m[1] == "child result", "the child ended with " .. show(m[5]))
  return m[3]
end

local function run_in_child(source, name, mode, fresh_slice)
  return in_child(run_here, source, name, mode, fresh_slice)
end

-- Asserts that `name` of cases.lua gives `expected`, which must be what lua5.4 gives,
-- here and in children, in every W mode.
local function check_case(name, expected)
  assert.are.equal(stock("cases.lua")[name], show(expected), "lua5.4 gives another result")
  for _, mode in ipairs(CASE_MODES) do
    local got = run_here(CASES, name, mode)
    assert.are.same(expected, got, "here, W = " .. mode)
    assert.are.equal(show(expected), show(got), "here, W = " .. mode)
  end
  for _, mode in ipairs(CHILD_MODES) do
    local got = run_in_child(CASES, name, mode)
    assert.are.same(expected, got, "in a child, W = " .. mode)
    assert.are.equal(show(expected), show(got), "in a child, W = " .. mode)
  end
end

-- Asserts a hooks.lua case gives exactly what lua5.4 gives (and `expected`), here and in
-- children, in every hook W mode, each run on a fresh time slice.
local function check_hook_case(name, expected)
  assert.are.equal(stock("hooks.lua")[name], show(expected), "lua5.4 gives another result")
  for _, mode in ipairs(HOOK_MODES) do
    assert.are.same(expected, run_here(HOOKS, name, mode, true), "here, W = " .. mode)
    assert.are.same(expected, run_in_child(HOOKS, name, mode, true), "in a child, W = " .. mode)
  end
end

local function assert_near(want, got, what)
  assert(math.type(got) == "integer" and math.abs(got - want) <= 1,
         string.format("%s: %s count hook calls, lua5.4 makes %d", what, show(got), want))
end

-- The count of a count-hook case must be within 1 of lua5.4's, here and in a child.
local function check_hook_count(name)
  local want = tonumber(stock("hooks.lua")[name])
  assert_near(want, run_here(HOOKS, name, "plain"), "here")
  assert_near(want, run_in_child(HOOKS, name, "plain"), "in a child")
  return want
end

-- A receive that had to wait where the process cannot be suspended: stock's message, with
-- or without the caller's position.
local function assert_c_boundary(err)
  assert(type(err) == "string" and
         (err == "attempt to yield across a C-call boundary" or
          err:match("^[^\n]+:%d+: attempt to yield across a C%-call boundary$")),
         "not the C-call boundary error: " .. show(err))
end

local poll = support.poll

local function kill_all(pids)
  for _, pid in ipairs(pids) do process.exit(pid, "kill") end
end

-- Spawns f(parent, ...) monitored; f must first send {"ready", self()} (from wherever it
-- is about to wait). Returns pid, ref once it did.
local function spawn_ready(f, ...)
  local pid, ref = process.spawn_monitor(f, process.self(), ...)
  local ready = process.receive(process.any_of({ "ready", pid }, { "DOWN", ref }), 5000)
  assert(ready and ready[1] == "ready", "child not ready: " .. show(ready))
  return pid, ref
end

-- The DOWN for ref (nil if none within ms).
local function down(ref, ms)
  local m = process.receive({ "DOWN", ref }, ms or 3000)
  return m and m[5]
end

--------------------------------------------------------------------------------

describe("stock coroutine semantics inside processes", function()
  it("passes values both ways through resume and yield: several, nils, none", function()
    check_case("values", {
      { n = 1, true },
      { n = 3, true, nil, nil },
      { n = 5, true, 1, nil, "x", nil },
      { n = 5, true, { n = 3, "a", nil, 3 }, { n = 2 }, { n = 0 }, { n = 3, 7, nil, 9 } },
      { n = 2, false, "cannot resume dead coroutine" },
    })
  end)

  it("passes values both ways through a wrapped coroutine", function()
    check_case("wrap values", {
      { n = 4, 3, nil, "b", nil },
      { n = 0 },
      { n = 1, { { n = 3, nil, "b", nil }, { n = 0 }, { n = 2, false, nil } } },
    })
  end)

  it("reports suspended, running, normal and dead statuses", function()
    check_case("status", {
      "new suspended", "inside running", "main normal", "inner before suspended",
      "outer from inner normal", "main from inner normal", "inner running",
      "inner yielded suspended", "yielded suspended", "inside again running",
      "returned dead", "failed dead", "main running",
    })
  end)

  it("refuses to resume dead, running and normal coroutines with stock messages", function()
    local dead = { n = 2, false, "cannot resume dead coroutine" }
    local busy = { n = 2, false, "cannot resume non-suspended coroutine" }
    check_case("dead and non-suspended", {
      { n = 2, true, 1 }, dead, { n = 2, false, "x" }, dead, busy, busy, busy, busy,
    })
  end)

  it("returns false and the error value (strings with position, tables as is) from resume",
     function()
    check_case("errors", {
      { n = 2, status = "dead", false, at("boom") .. " boom" },
      { n = 2, status = "dead", false, "boom" },
      { n = 2, status = "dead", false },
      { n = 2, status = "dead", false,
        at("arith") .. " attempt to perform arithmetic on a nil value (local 'x')" },
      { n = 2, status = "dead", false, at("deep") .. " deep" },
      { false, true, 42, 1, true },
    })
  end)

  it("re-raises errors from wrap with position information exactly as lua5.4 does",
     function()
    check_case("wrap errors", {
      { n = 2, false, at("call") .. " " .. at("wboom") .. " boom" },
      { n = 2, false, at("direct") .. " direct" },
      { n = 2, false, at("call") .. " plain" },
      { n = 2, false, { "err" } },
      { n = 2, false, 42 },
      { n = 2, false },
      { n = 2, false, at("call") .. " cannot resume dead coroutine" },
      { 1 },
      { n = 2, false, at("call") .. " " .. at("late") .. " late" },
      { "c:" .. at("late") .. " late" },
      { true },
    })
  end)

  it("closes suspended and dead coroutines, running their to-be-closed variables", function()
    check_case("close", {
      { n = 2, true, "holding" },
      { n = 1, true },
      "dead",
      { n = 1, true },
      { n = 1, true },
      { n = 1, true },
      { n = 2, false, "failed" },
      2,
      { n = 2, false, "failed" },
      { n = 1, true },
      { n = 2, false, "in close" },
      { "b:nil", "a:nil", "c:failed" },
      { n = 2, false, "cannot close a running coroutine" },
      { n = 2, false, "cannot close a running coroutine" },
      { n = 2, false, "cannot close a normal coroutine" },
    })
  end)

  it("lets a __close handler run at block exit yield inside a coroutine", function()
    check_case("close variables in coroutines",
               { "in block", "from close", "after block", { "closing nil", "closed" } })
  end)

  it("treats the body as the main thread: running() gives it and true, isyieldable() false",
     function()
    check_case("running and isyieldable", {
      "thread", true, false, false, true, true, false, true, false, true, true, true, true,
      in_sort = false,
    })
  end)

  it("refuses to yield from outside a coroutine and across a C call, with stock messages",
     function()
    check_case("yield outside a coroutine", {
      { n = 2, false, "attempt to yield from outside a coroutine" },
      { n = 2, false, "attempt to yield across a C-call boundary" },
    })
  end)

  it("yields across pcall and xpcall inside a coroutine", function()
    check_case("yield across pcall", {
      { n = 3, true, "in pcall", 1 },
      { n = 2, true, "again" },
      { n = 2, true, "in xpcall" },
      { n = 2, true, "nested" },
      { n = 9, true, true, 42, false, 7, false, "handler saw handled", true, true },
      "dead",
    })
  end)

  it("runs generators built on other generators", function()
    check_case("nested generators", { { 1, 4, 9, 16, 25, 36 }, { 1, 9, 25, 49, 81 } })
  end)

  it("raises stock's argument errors from the replaced coroutine and debug functions",
     function()
    local snippet = [[
      local out = {}
      for _, f in ipairs({ "resume", "status", "isyieldable", "close", "wrap" }) do
        out[f] = select(2, pcall(coroutine[f], 1))
      end
      out["sethook without mask"] = select(2, pcall(debug.sethook, print))
      out["sethook with a number"] = select(2, pcall(debug.sethook, 1, "l"))
      return out
    ]]
    local text, how, code = run("lua5.4 -e " .. shell_quote(
      "for k, v in pairs(load(" .. string.format("%q", snippet) .. ")()) do "
      .. "print(k .. '\\t' .. v) end"))
    assert.are.same({ "exit", 0 }, { how, code })
    local want = {}
    for k, v in text:gmatch("([^\t\n]+)\t([^\n]*)") do want[k] = v end
    assert.are.equal("bad argument #1 to 'coroutine.wrap' (function expected, got number)",
                     want.wrap)
    assert.are.same(want, assert(load(snippet))())
    assert.are.same(want, in_child(function(src) return assert(load(src))() end, snippet))
  end)
end)

--------------------------------------------------------------------------------

describe("coroutines suspended by the process", function()
  local function late_message_in_coroutine()
    local me, tag = process.self(), process.make_ref()
    local co = coroutine.create(function()
      local m = process.receive({ "late", tag, ANY }, 3000)
      local back = coroutine.yield(m and m[3])
      return "then " .. back
    end)
    local t0 = process.monotonic()
    process.send_after(100, me, { "late", tag, "hello" })
    local first = table.pack(coroutine.resume(co))
    local waited = process.monotonic() - t0
    local second = table.pack(coroutine.resume(co, "more"))
    return { first, second, coroutine.status(co), waited = waited }
  end

  it("a receive inside a coroutine waits for a later message and the coroutine goes on "
     .. "with it", function()
    for _, r in ipairs({ late_message_in_coroutine(), in_child(late_message_in_coroutine) }) do
      assert.is_true(r.waited >= 90 and r.waited < 1000, "waited " .. r.waited .. " ms")
      r.waited = nil
      assert.are.same({ { n = 2, true, "hello" }, { n = 2, true, "then more" }, "dead" }, r)
    end
  end)

  local function nested_receives()
    local outer = coroutine.wrap(function()
      local inner = coroutine.wrap(function()
        local t0 = process.monotonic()
        local m = process.receive({ "never sent" }, 100)
        coroutine.yield(m == nil, process.monotonic() - t0)
        local tag = process.make_ref()
        process.spawn(function(to, t)
          process.sleep(30)
          process.send(to, { "nested", t, 7 })
        end, process.self(), tag)
        local got = process.receive({ "nested", tag, ANY }, 3000)
        return got and got[3]
      end)
      coroutine.yield(inner())
      coroutine.yield(inner())
    end)
    local timed_out, waited = outer()
    local value = outer()
    return { timed_out, value, waited = waited }
  end

  it("a receive with a timeout inside nested coroutines times out, or takes the message",
     function()
    for _, r in ipairs({ nested_receives(), in_child(nested_receives) }) do
      assert.is_true(r.waited >= 90 and r.waited < 1000, "waited " .. r.waited .. " ms")
      assert.are.same({ true, 7 }, { r[1], r[2] })
    end
  end)

  local function sleepy_generator()
    local t0 = process.monotonic()
    local got = {}
    for i, sq in coroutine.wrap(function()
      for i = 1, 4 do
        process.sleep(25)
        coroutine.yield(i, i * i)
      end
    end) do
      got[#got + 1] = i .. "=" .. sq
    end
    return { got, waited = process.monotonic() - t0 }
  end

  it("sleep inside a wrapped generator iterated by a for loop", function()
    for _, r in ipairs({ sleepy_generator(), in_child(sleepy_generator) }) do
      assert.is_true(r.waited >= 90 and r.waited < 1000, "took " .. r.waited .. " ms")
      assert.are.same({ "1=1", "2=4", "3=9", "4=16" }, r[1])
    end
  end)

  it("a long computation inside coroutines is preempted: more busy processes than "
     .. "schedulers all start before any finishes, with right results", function()
    local function compute(parent, tag, n)
      process.send(parent, { "started", tag })
      local partials = coroutine.wrap(function()
        local s = 0
        for i = 1, n do
          s = s + i
          if i % 100000 == 0 then
            coroutine.yield(s)
            s = 0
          end
        end
      end)
      local total = coroutine.wrap(function()
        local t = 0
        for p in partials do t = t + p end
        return t
      end)()
      process.send(parent, { "done", tag, total })
    end
    local tag, pids = process.make_ref(), {}
    finally(function() kill_all(pids) end)
    for i = 1, 6 do pids[i] = process.spawn(compute, process.self(), tag, 1000000) end
    local order, totals = {}, {}
    for _ = 1, 12 do
      local m = process.receive(process.any_of({ "started", tag }, { "done", tag, ANY }), 60000)
      assert.is_table(m, "events so far: " .. table.concat(order, ","))
      order[#order + 1] = m[1]
      if m[1] == "done" then totals[#totals + 1] = m[3] end
    end
    assert.are.equal(string.rep("started,", 6) .. string.rep("done,", 5) .. "done",
                     table.concat(order, ","))
    assert.are.same({ 500000500000, 500000500000, 500000500000, 500000500000,
                      500000500000, 500000500000 }, totals)
  end)

  it("a long computation inside coroutines is preempted on one scheduler "
     .. "(moonbeam -S 1)", function()
    local out, how, code = run_moonbeam("-S 1 " .. shell_quote(FIXTURES .. "preempt.lua"))
    assert.are.equal("started,started,done,done a=4500001500000 b=4500001500000\n", out)
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
  end)

  local function interleaved()
    local me, tag = process.self(), process.make_ref()
    local log = {}
    local co = coroutine.wrap(function(first)
      log[#log + 1] = "start " .. first
      local m1 = process.receive({ "seq", tag, 1, ANY }, 3000)
      local x = coroutine.yield("got " .. (m1 and m1[4] or "nothing"))
      log[#log + 1] = "resumed with " .. x
      local m2 = process.receive({ "seq", tag, 2, ANY }, 3000)
      local y = coroutine.yield("got " .. (m2 and m2[4] or "nothing"), x)
      log[#log + 1] = "resumed with " .. y
      return "done"
    end)
    process.spawn(function(to, t)
      process.send(to, { "seq", t, 2, "second" })
      process.sleep(30)
      process.send(to, { "seq", t, 1, "first" })
      process.send(to, { "body", t, "for the body" })
    end, me, tag)
    local r1 = table.pack(co("a"))
    local b = process.receive({ "body", tag, ANY }, 3000)
    local r2 = table.pack(co("b"))
    local r3 = table.pack(co("c"))
    return { r1, b and b[3], r2, r3, log }
  end

  it("a coroutine's yields interleaved with receives give the right values in order",
     function()
    local want = {
      { n = 1, "got first" }, "for the body", { n = 2, "got second", "b" }, { n = 1, "done" },
      { "start a", "resumed with b", "resumed with c" },
    }
    assert.are.same(want, interleaved())
    assert.are.same(want, in_child(interleaved))
  end)

  local function statuses()
    local main = coroutine.running()
    local me, tag = process.self(), process.make_ref()
    local seen = {}
    local outer, inner
    inner = coroutine.create(function()
      seen[#seen + 1] = "inner before: " .. coroutine.status(inner)
      process.send_after(50, me, { "wake", tag })
      local m = process.receive({ "wake", tag }, 3000)
      seen[#seen + 1] = "woken: " .. tostring(m ~= nil)
      seen[#seen + 1] = "inner: " .. coroutine.status(inner)
      seen[#seen + 1] = "outer: " .. coroutine.status(outer)
      seen[#seen + 1] = "main: " .. coroutine.status(main)
      seen[#seen + 1] = "yieldable: " .. tostring(coroutine.isyieldable())
      seen[#seen + 1] = "running is inner: " .. tostring(coroutine.running() == inner)
    end)
    outer = coroutine.create(function()
      coroutine.resume(inner)
      seen[#seen + 1] = "outer after: " .. coroutine.status(outer)
                        .. ", inner " .. coroutine.status(inner)
    end)
    coroutine.resume(outer)
    seen[#seen + 1] = "main after: outer " .. coroutine.status(outer)
    return seen
  end

  it("a coroutine woken from a receive is running to itself and its resumers are normal",
     function()
    local want = {
      "inner before: running", "woken: true", "inner: running", "outer: normal",
      "main: normal", "yieldable: true", "running is inner: true",
      "outer after: running, inner dead", "main after: outer dead",
    }
    assert.are.same(want, statuses())
    assert.are.same(want, in_child(statuses))
  end)

  it("a process waiting inside a coroutine is seen waiting at that receive, then goes on",
     function()
    local pid, ref = process.spawn_monitor(function(parent)
      local co = coroutine.create(function()
        process.send(parent, { "waits at", process.self(), debug.getinfo(1, "l").currentline + 1 })
        local m = process.receive({ "go", ANY }, 5000)
        local st = coroutine.status(coroutine.running())
        local back = coroutine.yield(m and m[2], st)
        return back * 2
      end)
      local r1 = table.pack(coroutine.resume(co))
      local r2 = table.pack(coroutine.resume(co, 21))
      process.send(parent, { "results", process.self(), r1, r2 })
    end, process.self())
    finally(function() process.exit(pid, "kill") end)
    local where = process.receive({ "waits at", pid, ANY }, 3000)
    assert.is_table(where)
    local info = poll(1000, function()
      local i = process.info(pid)
      return i and i.status == "waiting" and i
    end)
    assert.is_table(info, "the child never showed as waiting")
    assert.are.equal(where[3], info.current.line)
    assert.is_truthy(info.current.source:find("coroutine_spec.lua", 1, true))
    process.send(pid, { "go", "now" })
    local r = process.receive({ "results", pid, ANY, ANY }, 3000)
    assert.is_table(r)
    assert.are.same({ n = 3, true, "now", "running" }, r[3])
    assert.are.same({ n = 2, true, 42 }, r[4])
    assert.are.equal("normal", down(ref))
  end)

  local function waits_in_sort()
    local out = {}
    -- a receive that has to wait, in a coroutine resumed from a comparator
    local co = coroutine.create(function() return process.receive({ "never sent" }, 1000) end)
    local ok = pcall(table.sort, { 3, 1, 2 }, function(a, b)
      out.first = out.first or table.pack(coroutine.resume(co))
      return a < b
    end)
    out.sorted, out.status = ok, coroutine.status(co)
    -- the same for sleep
    local sleeper = coroutine.create(function() process.sleep(10) end)
    table.sort({ 2, 1 }, function(a, b)
      out.sleep = out.sleep or table.pack(coroutine.resume(sleeper))
      return a < b
    end)
    -- a message already there is taken without waiting
    local tag = process.make_ref()
    process.send(process.self(), { "ready", tag })
    local taker = coroutine.create(function() return process.receive({ "ready", tag }, 1000) end)
    table.sort({ 2, 1 }, function(a, b)
      if not out.taken then
        local r = table.pack(coroutine.resume(taker))
        out.taken = { r[1], r[2] and r[2][2] == tag }
      end
      return a < b
    end)
    -- preemption owed inside the comparator: the computation still completes
    local sum = coroutine.wrap(function(n)
      local s = 0
      for i = 1, n do s = s + i end
      return s
    end)
    table.sort({ 2, 1 }, function(a, b)
      out.sum = out.sum or sum(1000000)
      return a < b
    end)
    -- afterwards the process waits as usual (no stale timer, no stale abort)
    local t0 = process.monotonic()
    out.after = process.receive({ "never sent" }, 150)
    out.waited = process.monotonic() - t0
    return out
  end

  it("a receive that must wait inside a coroutine resumed from a table.sort comparator "
     .. "raises the C-call boundary error", function()
    for _, r in ipairs({ waits_in_sort(), in_child(waits_in_sort) }) do
      assert.are.equal(2, r.first.n)
      assert.is_false(r.first[1])
      assert_c_boundary(r.first[2])
      assert.is_true(r.sorted)
      assert.are.equal("dead", r.status)
      assert.are.equal(2, r.sleep.n)
      assert.is_false(r.sleep[1])
      assert_c_boundary(r.sleep[2])
      assert.are.same({ true, true }, r.taken)
      assert.are.equal(500000500000, r.sum)
      assert.is_nil(r.after)
      assert.is_true(r.waited >= 140 and r.waited < 1000, "waited " .. r.waited .. " ms")
    end
  end)
end)

--------------------------------------------------------------------------------

describe("debug.sethook inside a process", function()
  it("calls a count hook every 100 instructions as often as lua5.4 over a short loop",
     function()
    local want = check_hook_count("count hook, 1000 iterations every 100")
    assert.is_true(want >= 15 and want <= 30)
  end)

  it("calls a count hook as often as lua5.4 over a loop preempted many times", function()
    check_hook_count("count hook, 100000 iterations every 100")
  end)

  it("calls a count hook with a count above the runtime's own as often as lua5.4", function()
    check_hook_count("count hook, 100000 iterations every 2500")
  end)

  it("counts a coroutine's instructions across a suspension of the process", function()
    local name = "count hook on a coroutine"
    local want = assert(load("return " .. stock("hooks.lua")[name]))()
    assert.are.same({ 12502500, 0 }, { want[1], want[2] })
    for _, mode in ipairs(HOOK_MODES) do
      for where, got in pairs({ here = run_here(HOOKS, name, mode),
                                child = run_in_child(HOOKS, name, mode) }) do
        local what = where .. ", W = " .. mode
        assert.are.same({ want[1], want[2] }, { got[1], got[2] }, what)
        assert_near(want[3], got[3], what .. ", up to the yield")
        assert_near(want[4], got[4], what .. ", in all")
      end
    end
  end)

  it("reports the lines lua5.4 reports to a line hook", function()
    check_hook_case("line hook", {
      0, { "line 1", "line 2", "line 3", "line 6", "line 2", "line 3", "line 4",
           "line 2", "line 3", "line 6", "line 2", "line 9" },
    })
  end)

  it("reports call, tail call and return events as lua5.4 does", function()
    check_hook_case("call and return hooks", { "call tail", "tail call traced", "return traced" })
  end)

  it("debug.gethook gives the program's hook, mask and count, or fail when none", function()
    check_hook_case("gethook", {
      { n = 1 },
      { n = 3, true, "l", 0 },
      { n = 3, true, "crl", 10 },
      { n = 3, true, "", 100 },
      { n = 3, true, "c", 0 },
      { n = 1 },
      { n = 1 },
      { n = 3, true, "r", 7 },
      { n = 1 },
      { n = 1 },
    })
  end)

  it("debug.sethook() turns the program's hook off", function()
    check_hook_case("sethook() turns the hook off", { true, 0 })
  end)

  it("keeps hooks per thread: a hook set on one coroutine does not fire in another",
     function()
    check_hook_case("hooks are per thread", { 3, 13, 15, true })
  end)

  it("gives every line event of a tight loop to a line hook, as lua5.4 (child moonbeam)",
     function()
    local script = shell_quote(FIXTURES .. "tight_line_hook.lua")
    local want, how, code = run("lua5.4 " .. script)
    assert.are.equal("100001 200003\n", want)
    assert.are.same({ "exit", 0 }, { how, code })
    local out
    out, how, code = run_moonbeam(script, 20)
    assert.are.equal(want, out)
    assert.are.same({ "exit", 0 }, { how, code })
  end)

  it("still preempts and kills busy processes that installed count hooks", function()
    local function spin(parent, tag, mask, count, in_coroutine)
      local calls = 0
      local function hook() calls = calls + 1 end
      local function body()
        debug.sethook(hook, mask, count)
        local f, m, c = debug.gethook()
        local x, rounds = 0, 0
        while true do
          for i = 1, 20000 do x = x + i end
          rounds = rounds + 1
          if rounds == 10 then
            process.send(parent, { "progress", tag, process.self(), calls > 0, f == hook, m, c })
          end
        end
      end
      if in_coroutine then coroutine.wrap(body)() else body() end
    end
    local tag, pids, refs = process.make_ref(), {}, {}
    finally(function() kill_all(pids) end)
    for i, count in ipairs({ 100, 1000, 7, 2500 }) do
      pids[i], refs[i] = process.spawn_monitor(spin, process.self(), tag, "", count, i % 2 == 0)
    end
    local seen = {}
    for _ = 1, #pids do
      local m = process.receive({ "progress", tag }, 10000)
      assert.is_table(m, "only " .. #seen .. " of " .. #pids .. " busy processes got to run")
      seen[#seen + 1] = table.concat({ tostring(m[4]), tostring(m[5]), m[6], m[7] }, ",")
    end
    table.sort(seen)
    assert.are.same({ "true,true,,100", "true,true,,1000", "true,true,,2500", "true,true,,7" },
                    seen)
    for i, pid in ipairs(pids) do
      assert.is_true(process.alive(pid))
      process.exit(pid, "kill")
      assert.are.equal("killed", down(refs[i], 2000))
    end
  end)

  it("still preempts and kills busy processes with count hooks on one scheduler "
     .. "(moonbeam -S 1)", function()
    local out, how, code = run_moonbeam("-S 1 " .. shell_quote(FIXTURES .. "busy_hooks.lua"))
    assert.are.equal('a:true,true,"",100 b:true,true,"",1000 killed,killed\n', out)
    assert.are.same({ "exit", 0 }, { how, code })
  end)

  it("still preempts and kills busy processes with line hooks on one scheduler "
     .. "(moonbeam -S 1)", function()
    local out, how, code = run_moonbeam("-S 1 " .. shell_quote(FIXTURES .. "busy_hooks.lua")
                                        .. " line", 10)
    assert.are.equal('a:true,true,"l",0 b:true,true,"crl",50 killed,killed\n', out)
    assert.are.same({ "exit", 0 }, { how, code })
  end)
end)

--------------------------------------------------------------------------------

describe("exit signals to a process suspended inside a coroutine", function()
  local function wait_in_coroutines(parent, depth)
    local function level(d)
      if d == 0 then
        process.send(parent, { "ready", process.self() })
        local m = process.receive({ "never sent" }, 10000)
        process.send(parent, { "not killed", process.self(), m })
        return
      end
      local ok, err = coroutine.resume(coroutine.create(level), d - 1)
      process.send(parent, { "resume returned", process.self(), ok, tostring(err) })
    end
    level(depth)
    process.send(parent, { "body went on", process.self() })
  end

  it("kill reaches a process waiting in a receive inside (nested) coroutines", function()
    local pids = {}
    finally(function() kill_all(pids) end)
    for _, depth in ipairs({ 1, 3 }) do
      local pid, ref = spawn_ready(wait_in_coroutines, depth)
      pids[#pids + 1] = pid
      assert.is_truthy(poll(1000, function()
        local i = process.info(pid)
        return i and i.status == "waiting"
      end))
      process.exit(pid, "kill")
      assert.are.equal("killed", down(ref))
      assert.is_nil(process.receive(process.any_of({ ANY, pid }), 100),
                    "the killed process ran on")
    end
  end)

  it("kill reaches a process sleeping inside a wrapped generator", function()
    local pid, ref = spawn_ready(function(parent)
      for _ in coroutine.wrap(function()
        process.send(parent, { "ready", process.self() })
        process.sleep(10000)
        coroutine.yield(1)
      end) do
        process.send(parent, { "not killed", process.self() })
      end
    end)
    finally(function() process.exit(pid, "kill") end)
    process.sleep(20)
    process.exit(pid, "kill")
    assert.are.equal("killed", down(ref))
    assert.is_nil(process.receive(process.any_of({ ANY, pid }), 100))
  end)

  it("other exit reasons end a non-trapping process waiting inside a coroutine", function()
    local pids = {}
    finally(function() kill_all(pids) end)
    for _, reason in ipairs({ "shutdown", "custom", { "shutdown", "why" } }) do
      local pid, ref = spawn_ready(wait_in_coroutines, 2)
      pids[#pids + 1] = pid
      process.sleep(20)
      process.exit(pid, reason)
      assert.are.same(reason, down(ref))
    end
  end)

  it("a linked process's crash ends a process waiting inside a coroutine", function()
    local pid, ref = spawn_ready(function(parent)
      local helper = process.spawn_link(function()
        process.receive({ "crash" }, 5000)
        process.exit({ "shutdown", "boom" })
      end)
      coroutine.wrap(function()
        process.send(parent, { "ready", process.self(), helper })
        process.receive({ "never sent" }, 10000)
        process.send(parent, { "not killed", process.self() })
      end)()
    end)
    finally(function() process.exit(pid, "kill") end)
    local helper = process.info(pid).links[1]
    assert.is_truthy(helper)
    process.send(helper, { "crash" })
    assert.are.same({ "shutdown", "boom" }, down(ref))
  end)

  it("a trapping process waiting inside a coroutine receives the EXIT message there",
     function()
    local pid, ref = spawn_ready(function(parent)
      process.flag("trap_exit", true)
      local got = coroutine.wrap(function()
        process.send(parent, { "ready", process.self() })
        return process.receive({ "EXIT", ANY, ANY }, 5000)
      end)()
      process.send(parent, { "got", process.self(), got })
    end)
    finally(function() process.exit(pid, "kill") end)
    process.exit(pid, "stop please")
    local m = process.receive({ "got", pid, ANY }, 3000)
    assert.is_table(m)
    assert.are.same({ "EXIT", process.self(), "stop please" }, m[3])
    assert.are.equal("normal", down(ref))
  end)

  it("kill reaches a busy process preempted inside a coroutine with a count hook", function()
    local pid, ref = spawn_ready(function(parent)
      coroutine.wrap(function()
        local n = 0
        debug.sethook(function() n = n + 1 end, "", 100)
        process.send(parent, { "ready", process.self() })
        while true do n = n + 1 end
      end)()
    end)
    finally(function() process.exit(pid, "kill") end)
    process.sleep(30)
    process.exit(pid, "kill")
    assert.are.equal("killed", down(ref))
  end)

  it("a process killed while busy in a coroutine resumed from a table.sort comparator "
     .. "runs no more code, even under pcall", function()
    local path = os.tmpname()
    local pid, ref = spawn_ready(function(parent, file)
      local spin = coroutine.wrap(function()
        while true do
          for _ = 1, 100000 do end
          coroutine.yield()
        end
      end)
      local ok, err = pcall(table.sort, { 3, 2, 1, 5, 4 }, function(a, b)
        process.send(parent, { "ready", process.self() })
        while true do spin() end
      end)
      local f = io.open(file, "w")
      f:write("ran on after the kill: ", tostring(ok), " ", tostring(err))
      f:close()
    end, path)
    finally(function()
      process.exit(pid, "kill")
      os.remove(path)
    end)
    process.sleep(30)
    process.exit(pid, "kill")
    assert.are.equal("killed", down(ref))
    assert.are.equal("", read_file(path))
  end)
end)
