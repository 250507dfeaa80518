-- tests/sched_spec.lua — the scheduler: preemption and fairness, preemption inside
-- non-yieldable C calls, exit signals to busy processes, yield/sleep, reductions and
-- status, many processes, max_heap, and idling without burning CPU.
--
-- Some checks need exactly one scheduler; they run a child `moonbeam -S 1` on a script
-- from tests/fixtures/sched/ and read its single result line.

local process = require "process"

local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
local MOONBEAM = support.moonbeam
local FIXTURES = support.dir .. "/fixtures/sched/"

local shell_quote = support.shell_quote

-- Runs `moonbeam ARGS` (under a time limit, so a hang fails the test) and returns its
-- output (stdout and stderr) and exit status.
local function run_moonbeam(args)
  local cmd = "timeout 30 " .. shell_quote(MOONBEAM) .. " " .. args .. " 2>&1"
  local pipe = assert(io.popen(cmd))
  local out = pipe:read("a")
  local _, how, code = pipe:close()
  return out, how, code
end

local function fixture(name)
  return shell_quote(FIXTURES .. name)
end

local poll = support.poll

local function spin_forever()
  while true do end
end

describe("preemption", function()
  it("lets a 1000-round-trip ping-pong finish on one scheduler while two processes spin",
     function()
    local out, how, code = run_moonbeam("-S 1 " .. fixture("fair.lua"))
    assert.are.equal(
      "pingpong 1000 sum=500500 spinner1=runnable,ran spinner2=runnable,ran\n", out)
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
  end)

  it("counts reductions for a busy process and keeps it running or runnable", function()
    local pid = process.spawn(spin_forever)
    finally(function() process.exit(pid, "kill") end)
    local r1 = poll(1000, function()
      local r = process.info(pid).reductions
      return r > 0 and r
    end)
    assert.is_truthy(r1)
    process.sleep(50)
    local info = process.info(pid)
    assert.is_true(info.reductions > r1)
    assert.is_truthy(info.status == "running" or info.status == "runnable")
  end)
end)

describe("non-yieldable C calls", function()
  it("a long table.sort comparator gives the right result; the sorter is preempted "
     .. "after the sort returns", function()
    local out, how, code = run_moonbeam("-S 1 " .. fixture("preempt.lua") .. " sort")
    assert.are.equal("sort result=true pingpong_after_call=true counted_in_call=true "
                     .. "kept_running=true\n", out)
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
  end)

  it("a long string.gsub callback gives the right result; the process is preempted "
     .. "after gsub returns", function()
    local out, how, code = run_moonbeam("-S 1 " .. fixture("preempt.lua") .. " gsub")
    assert.are.equal("gsub result=true pingpong_after_call=true counted_in_call=true "
                     .. "kept_running=true\n", out)
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
  end)

  it("a receive that would wait inside a comparator or callback raises; receive(m, 0) "
     .. "works there", function()
    local me = process.self()
    local pid, ref = process.spawn_monitor(function()
      local r = {}
      local function sorted(t)
        return table.concat(t, ",")
      end
      local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b)
        process.receive(nil, 100)
        return a < b
      end)
      r.timed = {ok, err}
      ok, err = pcall(table.sort, {3, 1, 2}, function(a, b)
        process.receive()
        return a < b
      end)
      r.forever = {ok, err}
      ok, err = pcall(string.gsub, "abc", "%a", function(c)
        process.receive({"never"}, 100)
      end)
      r.gsub = {ok, err}

      local looks, found = 0, 0
      local t = {5, 3, 1, 4, 2}
      ok = pcall(table.sort, t, function(a, b)
        looks = looks + 1
        if process.receive(nil, 0) ~= nil then found = found + 1 end
        return a < b
      end)
      r.look_empty = {ok, sorted(t), looks > 0, found}

      process.send(process.self(), {"hello", 1})
      local got = {}
      t = {5, 3, 1, 4, 2}
      ok = pcall(table.sort, t, function(a, b)
        got[#got + 1] = process.receive({"hello", process.ANY}, 0)
        return a < b
      end)
      r.look_found = {ok, sorted(t), #got, got[1] and got[1][2]}

      -- The process is still usable afterwards.
      process.send(process.self(), "after")
      r.after = process.receive(nil, 1000)
      process.send(me, r)
    end)
    local r = process.receive(function(m) return type(m) == "table" and m.after end, 5000)
    assert.is_table(r)
    local msg = "attempt to yield across a C-call boundary"
    assert.is_false(r.timed[1])
    assert.is_truthy(r.timed[2]:find(msg, 1, true))
    assert.is_false(r.forever[1])
    assert.is_truthy(r.forever[2]:find(msg, 1, true))
    assert.is_false(r.gsub[1])
    assert.is_truthy(r.gsub[2]:find(msg, 1, true))
    assert.are.same({true, "1,2,3,4,5", true, 0}, r.look_empty)
    assert.are.same({true, "1,2,3,4,5", 1, 1}, r.look_found)
    assert.are.equal("after", r.after)
    assert.are.same({"DOWN", ref, "process", pid, "normal"},
                    process.receive({"DOWN", ref}, 5000))
  end)
end)

describe("exit signals to a busy process", function()
  it("kill ends a process spinning in `while true do end` with reason killed", function()
    local me = process.self()
    local pid, ref = process.spawn_monitor(function()
      process.send(me, "spinning")
      while true do end
    end)
    finally(function() process.exit(pid, "kill") end)
    assert.are.equal("spinning", process.receive(function(m) return m == "spinning" end,
                                                 5000))
    process.sleep(20)
    assert.is_true(process.exit(pid, "kill"))
    assert.are.same({"DOWN", ref, "process", pid, "killed"},
                    process.receive({"DOWN", ref}, 5000))
    assert.is_false(process.alive(pid))
  end)

  it("a spinner linked to a process that exits with boom dies with boom", function()
    local me = process.self()
    local holder, holder_ref = process.spawn_monitor(function()
      local spinner = process.spawn_link(function() while true do end end)
      process.send(me, {"spinner", spinner})
      process.receive(nil, 10000)
    end)
    finally(function() process.exit(holder, "kill") end)
    local m = process.receive({"spinner", process.ANY}, 5000)
    assert.is_table(m)
    local spinner = m[2]
    finally(function() process.exit(spinner, "kill") end)
    local spinner_ref = process.monitor(spinner)
    assert.is_truthy(poll(1000, function()
      return process.info(spinner).reductions > 0
    end))
    assert.is_true(process.exit(holder, "boom"))
    assert.are.same({"DOWN", holder_ref, "process", holder, "boom"},
                    process.receive({"DOWN", holder_ref}, 5000))
    assert.are.same({"DOWN", spinner_ref, "process", spinner, "boom"},
                    process.receive({"DOWN", spinner_ref}, 5000))
  end)

  it("kill reaches a process inside a long table.sort comparator", function()
    local me = process.self()
    local pid, ref = process.spawn_monitor(function()
      local t = {}
      for i = 1, 300 do t[i] = (i * 7919) % 301 end
      local first = true
      -- About 0.5 ms per comparison: the sort takes over a second.
      table.sort(t, function(a, b)
        if first then
          first = false
          process.send(me, "sorting")
        end
        local stop = process.monotonic() + 0.5
        while process.monotonic() < stop do end
        return a < b
      end)
      while true do end
    end)
    finally(function() process.exit(pid, "kill") end)
    assert.are.equal("sorting", process.receive(function(m) return m == "sorting" end,
                                                5000))
    assert.is_true(process.exit(pid, "kill"))
    assert.are.same({"DOWN", ref, "process", pid, "killed"},
                    process.receive({"DOWN", ref}, 10000))
  end)
end)

describe("process.yield and process.sleep", function()
  it("yield hands one scheduler to a runnable process at once", function()
    local out, how, code = run_moonbeam("-S 1 " .. fixture("yield.lua"))
    assert.are.equal("other ran after 1 yield(s)\n", out)
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
  end)

  it("yield returns and the caller goes on", function()
    local me = process.self()
    local pid, ref = process.spawn_monitor(function()
      for _ = 1, 1000 do process.yield() end
      process.send(me, "yielded 1000 times")
    end)
    process.yield()
    assert.are.equal("yielded 1000 times",
                     process.receive(function(m) return m == "yielded 1000 times" end, 5000))
    assert.are.same({"DOWN", ref, "process", pid, "normal"},
                    process.receive({"DOWN", ref}, 5000))
  end)

  it("sleep(100) sleeps about 100 ms", function()
    local t0 = process.monotonic()
    process.sleep(100)
    local elapsed = process.monotonic() - t0
    assert.is_true(elapsed >= 90, "slept only " .. elapsed .. " ms")
    assert.is_true(elapsed < 1000, "slept " .. elapsed .. " ms")
  end)

  it("sleep(0) returns at once", function()
    local t0 = process.monotonic()
    process.sleep(0)
    assert.is_true(process.monotonic() - t0 < 1000)
  end)

  it("sleep keeps messages in the mailbox", function()
    process.send(process.self(), {"kept", 7})
    process.sleep(20)
    assert.are.same({"kept", 7}, process.receive({"kept", process.ANY}, 0))
  end)

  it("sleep rejects bad arguments", function()
    -- Called straight from pcall, the error names the function by its global name and
    -- has no position prefix.
    assert.are.same(
      {false, "bad argument #1 to 'process.sleep' (timeout must not be negative)"},
      {pcall(process.sleep, -1)})
    assert.are.same(
      {false, "bad argument #1 to 'process.sleep' "
              .. "(timeout (ms or \"infinity\") expected, got string)"},
      {pcall(process.sleep, "x")})
    assert.are.same(
      {false, "bad argument #1 to 'process.sleep' "
              .. "(timeout (ms or \"infinity\") expected, got table)"},
      {pcall(process.sleep, {})})
  end)
end)

describe("process.info status", function()
  it("is waiting for a process blocked in receive or sleep", function()
    local me = process.self()
    local receiver = process.spawn(function()
      process.send(me, "receiving")
      process.receive({"never"})
    end)
    local sleeper = process.spawn(function()
      process.send(me, "sleeping")
      process.sleep(60000)
    end)
    finally(function()
      process.exit(receiver, "kill")
      process.exit(sleeper, "kill")
    end)
    assert.are.equal("receiving", process.receive(function(m) return m == "receiving" end,
                                                  5000))
    assert.are.equal("sleeping", process.receive(function(m) return m == "sleeping" end,
                                                 5000))
    assert.is_truthy(poll(2000, function()
      return process.info(receiver).status == "waiting"
    end))
    assert.are.equal("waiting", process.info(receiver).status)
    assert.is_truthy(poll(2000, function()
      return process.info(sleeper).status == "waiting"
    end))
    assert.are.equal("waiting", process.info(sleeper).status)
  end)

  it("is running for the process that asks about itself", function()
    local me = process.self()
    local pid = process.spawn(function()
      local info = process.info(process.self())
      process.send(me, {"self info", info.status, info.reductions > 0})
    end)
    finally(function() process.exit(pid, "kill") end)
    assert.are.same({"self info", "running", true},
                    process.receive({"self info"}, 3000))
  end)
end)

describe("many processes", function()
  it("spawns 100,000 processes that each answer once, then collects them all", function()
    local before = {}
    for _, pid in ipairs(process.list()) do before[pid] = true end
    local function new_processes()
      local count = 0
      for _, pid in ipairs(process.list()) do
        if not before[pid] then count = count + 1 end
      end
      return count
    end
    local me = process.self()
    local n = 100000
    for i = 1, n do
      process.spawn(function(k) process.send(me, {"answer", k}) end, i)
    end
    local sum, count = 0, 0
    for _ = 1, n do
      local m = process.receive({"answer", process.ANY}, 5000)
      if not m then break end
      sum = sum + m[2]
      count = count + 1
    end
    assert.are.equal(n, count)
    assert.are.equal(n * (n + 1) // 2, sum)
    poll(5000, function() return new_processes() == 0 end)
    assert.are.equal(0, new_processes())
  end)
end)

describe("max_heap", function()
  it("ends a process that allocates without bound with reason max_heap; "
     .. "others are unaffected", function()
    local me = process.self()
    local other, other_ref = process.spawn_opt({monitor = true}, function()
      while true do
        local m = process.receive()
        process.send(m[1], {"pong", m[2]})
      end
    end)
    finally(function() process.exit(other, "kill") end)
    local hog, hog_ref = process.spawn_opt({max_heap = 2000000, monitor = true}, function()
      local t = {}
      local i = 0
      while true do
        i = i + 1
        t[i] = string.rep("x", 100) .. i
      end
    end)
    finally(function() process.exit(hog, "kill") end)
    assert.are.same({"DOWN", hog_ref, "process", hog, "max_heap"},
                    process.receive({"DOWN", hog_ref}, 10000))
    assert.is_true(process.alive(other))
    process.send(other, {me, 1})
    assert.are.same({"pong", 1}, process.receive({"pong", process.ANY}, 5000))
    assert.is_nil(process.receive({"DOWN", other_ref}, 0))
    process.exit(other, "kill")
    assert.are.same({"DOWN", other_ref, "process", other, "killed"},
                    process.receive({"DOWN", other_ref}, 5000))
  end)

  it("lets a process that stays under its limit run to the end", function()
    local me = process.self()
    local pid, ref = process.spawn_opt({max_heap = 300000, monitor = true}, function()
      -- Allocates far more than 300,000 bytes in total, but little at any one time.
      local total = 0
      for _ = 1, 200 do
        local x = {}
        for i = 1, 1000 do x[i] = i end
        total = total + #x
      end
      process.send(me, {"total", total})
    end)
    assert.are.same({"total", 200000}, process.receive({"total", process.ANY}, 5000))
    assert.are.same({"DOWN", ref, "process", pid, "normal"},
                    process.receive({"DOWN", ref}, 5000))
  end)

  it("rejects a max_heap that is not a positive integer", function()
    local before = #process.list()
    for _, bad in ipairs({-1, "x"}) do
      assert.are.same(
        {false, "bad argument #1 to 'process.spawn_opt' "
                .. "(max_heap must be a positive integer (bytes))"},
        {pcall(process.spawn_opt, {max_heap = bad}, function() end)})
    end
    assert.are.equal(before, #process.list())
  end)
end)

describe("idle runtime", function()
  it("uses almost no CPU with --no-halt and one process blocked in receive", function()
    local clk_pipe = assert(io.popen("getconf CLK_TCK"))
    local ticks_per_s = tonumber(clk_pipe:read("a"))
    clk_pipe:close()
    assert.is_number(ticks_per_s)

    -- sh prints the child's pid, then waits for it, so closing the pipe reaps it.
    local cmd = "sh -c " .. shell_quote(shell_quote(MOONBEAM) .. " --no-halt "
                                        .. fixture("idle.lua")
                                        .. " >/dev/null 2>&1 & echo $!; wait")
    local pipe = assert(io.popen(cmd))
    local pid = tonumber(pipe:read("l"))
    assert.is_number(pid)
    finally(function()
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      pipe:close()
    end)

    local function cpu_seconds()
      local f = io.open("/proc/" .. pid .. "/stat")
      if not f then return nil end
      local stat = f:read("a")
      f:close()
      -- Fields after the ")" that closes the command name: state is field 3,
      -- utime and stime are fields 14 and 15.
      local fields = {}
      for w in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
      return (tonumber(fields[12]) + tonumber(fields[13])) / ticks_per_s
    end

    process.sleep(300) -- let it start up
    local cpu0 = cpu_seconds()
    process.sleep(1000)
    local cpu1 = cpu_seconds()
    assert.is_number(cpu0)
    assert.is_number(cpu1)
    assert.is_true(cpu1 - cpu0 < 0.2, "idle runtime used " .. (cpu1 - cpu0) .. " s of CPU")
  end)
end)
