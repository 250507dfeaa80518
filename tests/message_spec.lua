-- tests/message_spec.lua — messages: what send copies and refuses, ordering, selective
-- receive (functions, pattern tables, any_of, timeouts), decoding each message once, the
-- receive mark for call-style receives, and timers.
--
-- Values travel through an echo process (it sends back whatever it receives), so a value
-- checked here has been copied twice.

local P = require "process"
local ANY = P.ANY

local spawned

-- P.spawn, remembering the pid so that after_each kills it.
local function spawn(f, ...)
  local pid = P.spawn(f, ...)
  spawned[#spawned + 1] = pid
  return pid
end

local function flush()
  while P.receive(nil, 0) ~= nil do end
end

-- A process that sends every message it receives back to the caller.
local function start_echo()
  local parent = P.self()
  return spawn(function()
    while true do P.send(parent, P.receive()) end
  end)
end

-- A process that calls the function of each message {f, args...} and sends back
-- table.pack(pcall(f, args...)). It sets the global WHO first.
local function start_evaluator()
  local parent = P.self()
  return spawn(function()
    WHO = "evaluator"
    while true do
      local m = P.receive()
      P.send(parent, table.pack(pcall(m[1], table.unpack(m, 2))))
    end
  end)
end

local echo

-- v sent to the echo and back.
local function copy(v)
  P.send(echo, v)
  local back = P.receive(nil, 2000)
  assert(back ~= nil, "the echo sent nothing back")
  return back
end

-- The results of f(...) computed in the evaluator: true, results... or false, err.
local function eval(ev, f, ...)
  P.send(ev, { f, ... })
  local r = P.receive(nil, 2000)
  assert(r ~= nil, "the evaluator sent nothing back")
  return table.unpack(r, 1, r.n)
end

local function keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- The error raised by f(...), which must fail.
local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return err
end

-- The echo received nothing: nothing comes back within 200 ms, and it still echoes.
local function assert_nothing_delivered()
  assert.is_nil(P.receive(nil, 200))
  assert.are.equal("still here", copy("still here"))
end

local function elapsed_since(t0) return P.monotonic() - t0 end

describe("messages", function()
  before_each(function()
    spawned = {}
    flush()
    echo = start_echo()
  end)

  after_each(function()
    for _, pid in ipairs(spawned) do P.exit(pid, "kill") end
    flush()
  end)

  describe("copying", function()
    it("keeps booleans and drops nil keys of tables", function()
      assert.are.equal(true, copy(true))
      assert.are.equal(false, copy(false))
      local c = copy({ a = 1, b = nil, c = false, [true] = false, [false] = true })
      assert.are.equal(1, c.a)
      assert.is_nil(c.b)
      assert.are.equal(false, c.c)
      assert.are.equal(false, c[true])
      assert.are.equal(true, c[false])
      assert.are.equal(4, keys(c))
    end)

    it("keeps integers and floats distinct", function()
      local cases = {
        { 0, "integer" }, { 0.0, "float" }, { 1, "integer" }, { 1.0, "float" },
        { -7, "integer" }, { 3.5, "float" }, { math.maxinteger, "integer" },
        { math.mininteger, "integer" }, { 2.0 ^ 53, "float" }, { 2 ^ 63, "float" },
        { 1e-300, "float" }, { math.huge, "float" }, { -math.huge, "float" },
      }
      for _, case in ipairs(cases) do
        local v = copy(case[1])
        assert.are.equal(case[2], math.type(v))
        assert.are.equal(case[1], v)
      end
      local c = copy({ 1, 1.0, 2.5, n = 0, f = 0.0 })
      assert.are.equal("integer", math.type(c[1]))
      assert.are.equal("float", math.type(c[2]))
      assert.are.equal(2.5, c[3])
      assert.are.equal("integer", math.type(c.n))
      assert.are.equal("float", math.type(c.f))
    end)

    it("keeps -0.0, infinities and nan", function()
      local nz = copy(-0.0)
      assert.are.equal("float", math.type(nz))
      assert.are.equal(-math.huge, 1 / nz)
      assert.are.equal(math.huge, 1 / copy(0.0))
      assert.are.equal(math.huge, copy(1 / 0))
      assert.are.equal(-math.huge, copy(-1 / 0))
      local nan = copy(0 / 0)
      assert.are.equal("float", math.type(nan))
      assert.is_true(nan ~= nan)
      local c = copy({ inf = math.huge, nz = -0.0 })
      assert.are.equal(math.huge, c.inf)
      assert.are.equal(-math.huge, 1 / c.nz)
    end)

    it("copies strings byte for byte", function()
      local bytes = {}
      for b = 0, 255 do bytes[#bytes + 1] = string.char(b) end
      local all = table.concat(bytes)
      local c = copy(all)
      assert.are.equal(256, #c)
      for b = 0, 255 do assert.are.equal(b, c:byte(b + 1)) end
      assert.are.equal("", copy(""))
      local z = copy("a\0b\0")
      assert.are.equal(4, #z)
      assert.are.equal("a\0b\0", z)
      local t = copy({ ["k\0ey"] = "v\0al" })
      assert.are.equal("v\0al", t["k\0ey"])
      assert.is_nil(t.k)
    end)

    it("copies a 1 MB string", function()
      local bytes = {}
      for b = 0, 255 do bytes[#bytes + 1] = string.char((b * 7 + 3) % 256) end
      local big = string.rep(table.concat(bytes), 4096)
      assert.are.equal(1048576, #big)
      local c = copy(big)
      assert.are.equal(1048576, #c)
      assert.is_true(c == big)
    end)

    it("copies tables nested 100 deep", function()
      local root = {}
      local t = root
      for i = 1, 99 do
        t.depth = i
        t.child = {}
        t = t.child
      end
      t.depth, t.leaf = 100, "bottom"
      local c = copy(root)
      local n = 0
      while c do
        n = n + 1
        assert.are.equal(n, c.depth)
        if n == 100 then assert.are.equal("bottom", c.leaf) end
        c = c.child
      end
      assert.are.equal(100, n)
    end)

    it("preserves cycles", function()
      local t = { name = "t" }
      t.self = t
      local a, b = { name = "a" }, { name = "b" }
      a.next, b.next = b, a
      t.ring = a
      local c = copy(t)
      assert.are_not.equal(t, c)
      assert.are.equal(c, c.self)
      assert.are.equal("a", c.ring.name)
      assert.are.equal("b", c.ring.next.name)
      assert.are.equal(c.ring, c.ring.next.next)
    end)

    it("preserves shared sub-tables", function()
      local shared = { v = 1 }
      local c = copy({ x = shared, y = shared, list = { shared, shared } })
      assert.are.equal(c.x, c.y)
      assert.are.equal(c.x, c.list[1])
      assert.are.equal(c.x, c.list[2])
      c.x.v = 2
      assert.are.equal(2, c.y.v)
      assert.are.equal(1, shared.v)
    end)

    it("keeps arrays with holes and mixed tables", function()
      local c = copy({ 1, nil, 3, nil, 5, [10] = 10 })
      assert.are.equal(4, keys(c))
      assert.are.equal(1, c[1])
      assert.is_nil(c[2])
      assert.are.equal(3, c[3])
      assert.is_nil(c[4])
      assert.are.equal(5, c[5])
      assert.are.equal(10, c[10])
      local m = copy({ "a", "b", x = "y", [1.5] = "f", [-1] = "neg", [true] = "t", n = { 1 } })
      assert.are.equal(7, keys(m))
      assert.are.equal("a", m[1])
      assert.are.equal("b", m[2])
      assert.are.equal("y", m.x)
      assert.are.equal("f", m[1.5])
      assert.are.equal("neg", m[-1])
      assert.are.equal("t", m[true])
      assert.are.equal(1, m.n[1])
    end)

    it("keeps pids, refs and ANY equal, usable as table keys", function()
      local me, ref = P.self(), P.make_ref()
      local c = copy({ me, ref, ANY, [me] = "pid", [ref] = "ref", [echo] = "echo" })
      assert.are.equal(me, c[1])
      assert.are.equal(ref, c[2])
      assert.is_true(rawequal(ANY, c[3]))
      assert.is_true(P.is_pid(c[1]))
      assert.is_true(P.is_ref(c[2]))
      assert.are.equal(tostring(me), tostring(c[1]))
      assert.are.equal(tostring(ref), tostring(c[2]))
      assert.are.equal("pid", c[me])
      assert.are.equal("ref", c[ref])
      assert.are.equal("echo", c[echo])
      assert.are.equal(me, copy(me))
      assert.are.equal(ref, copy(ref))
      assert.is_true(rawequal(ANY, copy(ANY)))
    end)

    it("copies a table used as a key", function()
      local k = { name = "key" }
      local c = copy({ [k] = "value", ref = k, [{ 1, 2 }] = "anon" })
      assert.are.equal("value", c[c.ref])
      assert.are.equal("key", c.ref.name)
      local found
      for key, v in pairs(c) do
        if v == "anon" then found = key end
      end
      assert.are.equal("table", type(found))
      assert.are.equal(1, found[1])
      assert.are.equal(2, found[2])
    end)

    it("does not copy metatables", function()
      local t = setmetatable({ x = 1 }, { __index = function() return "default" end })
      local c = copy(t)
      assert.is_nil(getmetatable(c))
      assert.are.equal(1, c.x)
      assert.is_nil(c.y)
      assert.is_nil(getmetatable(copy({ inner = setmetatable({}, { __mode = "k" }) }).inner))
    end)

    describe("functions", function()
      it("copies a closure with its upvalues", function()
        local k, cfg = 4, { scale = 3 }
        local f = copy(function(x) return x * cfg.scale + k end)
        assert.are.equal(19, f(5))
        local t = { n = 1 }
        local c = copy({ t = t, get = function() return t end })
        assert.are.equal(c.t, c.get())
      end)

      it("keeps an upvalue shared by two closures shared", function()
        local n = 10
        local c = copy({ inc = function() n = n + 1; return n end, get = function() return n end })
        assert.are.equal(11, c.inc())
        assert.are.equal(12, c.inc())
        assert.are.equal(12, c.get())
        assert.are.equal(10, n)
      end)

      it("copies a recursive local function", function()
        local function fact(x) if x <= 1 then return 1 end return x * fact(x - 1) end
        local f = copy(fact)
        assert.are.equal(3628800, f(10))
      end)

      it("reads and writes the receiver's globals", function()
        local ev = start_evaluator()
        assert.are.same({ true, "evaluator" }, { eval(ev, function() return WHO end) })
        assert.are.same({ true }, { eval(ev, function() SET_BY_COPY = 5 end) })
        assert.are.same({ true, 5 }, { eval(ev, function() return SET_BY_COPY end) })
        assert.is_nil(rawget(_G, "SET_BY_COPY"))
      end)

      it("carries library functions and modules as upvalues", function()
        local fmt, print = string.format, print
        local process = require "process"
        local f = copy(function(x) return fmt("%05.1f|%s", x, "y") end)
        assert.are.equal("003.1|y", f(3.14159))
        assert.are.equal(print, copy(function() return print end)())
        local ev = start_evaluator()
        assert.are.same({ true, "003.1|y" }, { eval(ev, f, 3.14159) })
        assert.are.same({ true, true }, { eval(ev, function() return print == _G.print end) })
        assert.are.same({ true, ev }, { eval(ev, function() return process.self() end) })
        assert.are.same({ true, true },
          { eval(ev, function() return process == require "process" end) })
      end)
    end)
  end)

  describe("refusing", function()
    it("refuses userdata and names its path", function()
      assert.are.equal("msg.items[3].conn: userdata cannot be sent",
        err_of(P.send, echo, { items = { 1, 2, { conn = io.stdout } } }))
      assert_nothing_delivered()
      assert.are.equal("msg: userdata cannot be sent", err_of(P.send, echo, io.stdout))
      assert_nothing_delivered()
    end)

    it("refuses a coroutine", function()
      assert.are.equal("msg: thread cannot be sent",
        err_of(P.send, echo, coroutine.create(function() end)))
      assert_nothing_delivered()
    end)

    it("refuses a C function that is in no loaded module", function()
      assert.are.equal("msg: C function cannot be sent",
        err_of(P.send, echo, string.gmatch("a", "a")))
      assert_nothing_delivered()
    end)

    it("refuses a function whose upvalue is uncopyable", function()
      local sock = io.stdout
      assert.are.equal("msg.f<upvalue sock>: userdata cannot be sent",
        err_of(P.send, echo, { big = string.rep("x", 100000), f = function() return sock end }))
      assert_nothing_delivered()
    end)

    it("refuses a userdata key", function()
      assert.are.equal("msg[<userdata>]: userdata key cannot be sent",
        err_of(P.send, echo, { [io.stdout] = 1 }))
      assert_nothing_delivered()
    end)

    it("refuses an uncopyable spawn argument and creates no process", function()
      local before = {}
      for _, pid in ipairs(P.list()) do before[pid] = true end
      assert.are.equal("arg #3: userdata cannot be sent",
        err_of(P.spawn, function() end, 1, io.stdout))
      assert.are.equal("arg #2: thread cannot be sent",
        err_of(P.spawn, function() end, coroutine.create(function() end)))
      local sock = io.stdout
      assert.are.equal("function<upvalue sock>: userdata cannot be sent",
        err_of(P.spawn, function() return sock end))
      for _, pid in ipairs(P.list()) do
        assert.is_true(before[pid], "a process was created: " .. tostring(pid))
      end
    end)

    it("refuses a nil message", function()
      local err = err_of(P.send, echo, nil)
      assert.is_truthy(string.find(err,
        "bad argument #2 to 'process.send' (message expected, got nil)", 1, true))
      assert_nothing_delivered()
    end)
  end)

  describe("ordering", function()
    it("keeps each sender's messages in send order", function()
      local parent, senders, count = P.self(), 4, 300
      for id = 1, senders do
        spawn(function()
          assert(P.receive(nil, 5000) == "go")
          for i = 1, count do P.send(parent, { id, i }) end
        end)
      end
      for _, pid in ipairs(spawned) do
        if pid ~= echo then P.send(pid, "go") end
      end
      local last = {}
      for id = 1, senders do last[id] = 0 end
      for _ = 1, senders * count do
        local m = P.receive(nil, 5000)
        assert.is_table(m)
        assert.are.equal(last[m[1]] + 1, m[2])
        last[m[1]] = m[2]
      end
      for id = 1, senders do assert.are.equal(count, last[id]) end
      assert.is_nil(P.receive(nil, 0))
    end)

    it("delivers DOWN after every message of the dying sender", function()
      local parent = P.self()
      for round = 1, 20 do
        local reason = round % 2 == 0 and "normal" or "shutdown"
        local pid, ref = P.spawn_monitor(function(why)
          for i = 1, 50 do P.send(parent, { "m", i }) end
          if why ~= "normal" then P.exit(why) end
        end, reason)
        for i = 1, 50 do
          local m = P.receive(nil, 2000)
          assert.are.same({ "m", i }, m)
        end
        local down = P.receive(nil, 2000)
        assert.are.same({ "DOWN", ref, "process", pid, reason }, down)
      end
    end)
  end)

  describe("selective receive", function()
    local me
    before_each(function() me = P.self() end)

    it("leaves the messages that do not match in order", function()
      P.send(me, "a"); P.send(me, "b"); P.send(me, "c")
      assert.are.equal("b", P.receive(function(m) return m == "b" end, 1000))
      assert.are.equal("a", P.receive(nil, 0))
      assert.are.equal("c", P.receive(nil, 0))
      assert.is_nil(P.receive(nil, 0))
    end)

    it("raises a matcher's error and keeps the message", function()
      P.send(me, "x")
      P.send(me, "y")
      local ok, err = pcall(P.receive, function() error("matcher boom", 0) end, 1000)
      assert.is_false(ok)
      assert.are.equal("matcher boom", err)
      local value = { tag = "bad" }
      local ok2, err2 = pcall(P.receive, function(m)
        if m == "y" then error(value) end
        return false
      end, 1000)
      assert.is_false(ok2)
      assert.is_true(rawequal(value, err2))
      assert.are.equal("x", P.receive(nil, 0))
      assert.are.equal("y", P.receive(nil, 0))
      assert.is_nil(P.receive(nil, 0))
    end)

    it("matches nested pattern tables", function()
      P.send(me, { "reply", { status = "error" } })
      P.send(me, { "reply", { status = "ok", data = 1 } })
      P.send(me, { "reply", 5 })
      P.send(me, { "reply", { status = "ok", data = { deep = { 2 } } } })
      local m = P.receive({ "reply", { status = "ok" } }, 1000)
      assert.are.same({ "reply", { status = "ok", data = 1 } }, m)
      m = P.receive({ "reply", { data = { deep = { 2 } } } }, 1000)
      assert.are.same({ "reply", { status = "ok", data = { deep = { 2 } } } }, m)
      assert.is_nil(P.receive({ "reply", {} , "extra" }, 0))
      assert.are.same({ "reply", { status = "error" } }, P.receive({ "reply", { status = ANY } }, 0))
      assert.is_nil(P.receive({ "reply", {} }, 0))
      assert.are.same({ "reply", 5 }, P.receive({ "reply", 5 }, 0))
      assert.is_nil(P.receive(nil, 0))
    end)

    it("lets ANY match anything, even an absent key", function()
      P.send(me, { "a" })
      P.send(me, {})
      P.send(me, { "b", false, { x = 1 } })
      assert.are.same({ "b", false, { x = 1 } }, P.receive({ "b", ANY, ANY }, 0))
      assert.are.same({ "a" }, P.receive({ "a", ANY }, 0))
      assert.are.same({}, P.receive({ tag = ANY }, 0))
      assert.is_nil(P.receive(nil, 0))
    end)

    it("never matches a pattern table against a non-table message", function()
      P.send(me, "str")
      P.send(me, 42)
      P.send(me, true)
      assert.is_nil(P.receive({}, 0))
      assert.is_nil(P.receive({ tag = ANY }, 0))
      P.send(me, { z = 1 })
      assert.are.same({ z = 1 }, P.receive({}, 0))
      assert.is_nil(P.receive({ [1] = { ANY } }, 0))
      assert.are.equal("str", P.receive(nil, 0))
      assert.are.equal(42, P.receive(nil, 0))
      assert.are.equal(true, P.receive(nil, 0))
    end)

    it("compares pids and refs in patterns by identity", function()
      local r1, r2 = P.make_ref(), P.make_ref()
      P.send(me, { "reply", r1, 1 })
      P.send(me, { "reply", r2, 2 })
      P.send(me, { "from", echo })
      assert.are.same({ "reply", r2, 2 }, P.receive({ "reply", r2 }, 0))
      assert.is_nil(P.receive({ "from", me }, 0))
      assert.are.same({ "from", echo }, P.receive({ "from", echo }, 0))
      assert.are.same({ "reply", r1, 1 }, P.receive({ "reply", r1 }, 0))
    end)

    it("takes the oldest message matching any pattern of any_of", function()
      P.send(me, { "c" })
      P.send(me, { "b", 2 })
      P.send(me, { "a", 1 })
      local either = P.any_of({ "a", ANY }, { "b", ANY })
      assert.are.same({ "b", 2 }, P.receive(either, 0))
      assert.are.same({ "a", 1 }, P.receive(either, 0))
      assert.is_nil(P.receive(either, 0))
      assert.are.same({ "c" }, P.receive(nil, 0))
    end)

    it("refuses a matcher of another type", function()
      for _, bad in ipairs({ "x", 42, true }) do
        local err = err_of(P.receive, bad, 0)
        assert.is_truthy(string.find(err, "bad argument #1 to 'process.receive'", 1, true), err)
        assert.is_truthy(string.find(err, "got " .. type(bad), 1, true), err)
      end
    end)

    describe("timeouts", function()
      it("looks once with 0", function()
        local t0 = P.monotonic()
        assert.is_nil(P.receive(nil, 0))
        assert.is_true(elapsed_since(t0) < 500)
        P.send(me, "there")
        assert.are.equal("there", P.receive(nil, 0))
      end)

      it("times out after about the given ms", function()
        local t0 = P.monotonic()
        assert.is_nil(P.receive(nil, 100))
        local dt = elapsed_since(t0)
        assert.is_true(dt >= 90 and dt < 1000, "waited " .. dt)
      end)

      it("keeps waiting when a message that does not match arrives", function()
        spawn(function(parent)
          P.sleep(50)
          P.send(parent, "other")
        end, me)
        local t0 = P.monotonic()
        assert.is_nil(P.receive(function(m) return m == "wanted" end, 300))
        local dt = elapsed_since(t0)
        assert.is_true(dt >= 270 and dt < 2000, "waited " .. dt)
        assert.are.equal("other", P.receive(nil, 0))
      end)

      it("wakes early when a matching message arrives", function()
        spawn(function(parent)
          P.sleep(100)
          P.send(parent, "late")
        end, me)
        local t0 = P.monotonic()
        assert.are.equal("late", P.receive(nil, 10000))
        local dt = elapsed_since(t0)
        assert.is_true(dt >= 50 and dt < 3000, "waited " .. dt)
      end)

      for _, forever in ipairs({ "nil", "infinity" }) do
        it("waits forever with " .. forever, function()
          local timeout = forever == "infinity" and "infinity" or nil
          local waiter = spawn(function(parent, t)
            local t0 = P.monotonic()
            local m = P.receive(nil, t)
            P.send(parent, { m, P.monotonic() - t0 })
          end, me, timeout)
          P.sleep(300)
          assert.are.equal("waiting", P.info(waiter).status)
          P.send(waiter, "wake")
          local r = P.receive(nil, 2000)
          assert.are.equal("wake", r[1])
          assert.is_true(r[2] >= 250, "waited " .. r[2])
        end)
      end

      it("refuses a negative timeout", function()
        local err = err_of(P.receive, nil, -1)
        assert.is_truthy(string.find(err,
          "bad argument #2 to 'process.receive' (timeout must not be negative)", 1, true), err)
      end)
    end)
  end)

  it("decodes each message once, even for worst-case selective receives", function()
    local parent = P.self()
    local box = spawn(function()
      P.sleep(200)
      local got = {}
      for k = 200, 1, -1 do
        got[#got + 1] = P.receive(function(m) return m == k end, 2000)
      end
      local left = P.receive(nil, 0)
      local info = P.info(P.self())
      P.send(parent, { decoded = info.messages_in, scanned = info.messages_scanned,
                       got = got, left = left })
    end)
    for i = 1, 200 do P.send(box, i) end
    local r = P.receive(nil, 5000)
    assert.is_table(r)
    local want = {}
    for k = 200, 1, -1 do want[#want + 1] = k end
    assert.are.same(want, r.got)
    assert.is_nil(r.left)
    assert.are.equal(200, r.decoded)
    -- taking the last of k messages tests k of them: 200 + 199 + ... + 1
    assert.are.equal(200 * 201 // 2, r.scanned)
  end)

  describe("the receive mark", function()
    -- 1000 calls {me, ref, i} -> {ref, 2 * i} to a doubling server, with 100,000 older
    -- messages in the mailbox; returns how many messages were tested since the
    -- messages_scanned count `before` (one of them: the info call that read `before`).
    local function calls_through_noise(me, before)
      local server = spawn(function()
        while true do
          local m = P.receive()
          P.send(m[1], { m[2], m[3] * 2 })
        end
      end)
      for i = 1, 1000 do
        local ref = P.make_ref()
        P.send(server, { me, ref, i })
        local r = P.receive({ ref, ANY }, 5000)
        assert(r and r[2] == i * 2, "bad reply to call " .. i)
      end
      return P.info(me).messages_scanned - before - 1
    end

    local function assert_noise_intact()
      for i = 1, 100000 do
        local m = P.receive(nil, 0)
        assert(m and m[1] == "noise" and m[2] == i, "noise message " .. i)
      end
      assert.is_nil(P.receive(nil, 0))
    end

    it("lets call-style receives skip 100,000 messages sent by another process", function()
      local me = P.self()
      spawn(function()
        for i = 1, 100000 do P.send(me, { "noise", i }) end
      end)
      local deadline = P.monotonic() + 20000
      while P.info(me).message_queue_len < 100000 and P.monotonic() < deadline do
        P.sleep(10)
      end
      local info = P.info(me)
      assert.are.equal(100000, info.message_queue_len)
      local scanned = calls_through_noise(me, info.messages_scanned)
      assert.is_true(scanned < 2000, "scanned " .. scanned)
      assert_noise_intact()
    end)

    it("lets call-style receives skip 100,000 messages just sent to self", function()
      local me = P.self()
      local before = P.info(me).messages_scanned
      for i = 1, 100000 do P.send(me, { "noise", i }) end
      local scanned = calls_through_noise(me, before)
      assert.is_true(scanned < 2000, "scanned " .. scanned)
      assert_noise_intact()
    end)

    it("still shows older messages to patterns without the newest ref", function()
      local me = P.self()
      local old = P.make_ref()
      P.send(me, { "reply", old, 1 })
      P.send(me, { "other", 2 })
      P.send(me, { "alt" })
      P.send(me, "plain")
      local new = P.make_ref()
      assert.are.same({ "reply", old, 1 }, P.receive({ "reply", old, ANY }, 0))
      assert.are.same({ "other", 2 }, P.receive({ "other", ANY }, 0))
      assert.are.same({ "alt" }, P.receive(P.any_of({ new, ANY }, { "alt" }), 0))
      assert.are.equal("plain", P.receive(function(m) return m == "plain" end, 0))
      assert.is_nil(P.receive({ new }, 0))
    end)

    it("finds the reply to the newest ref after older messages are taken", function()
      local me = P.self()
      P.send(me, "a")
      P.send(me, "b")
      local ref = P.make_ref()
      P.send(me, { ref, 1 })
      assert.are.equal("a", P.receive(nil, 0))
      assert.are.same({ ref, 1 }, P.receive({ ref, ANY }, 0))
      assert.are.equal("b", P.receive(nil, 0))
      P.send(me, "c")
      local ref2 = P.make_ref()
      assert.are.equal("c", P.receive(nil, 0))
      P.send(me, { ref2, 2 })
      assert.are.same({ ref2, 2 }, P.receive({ ref2, ANY }, 0))
      assert.is_nil(P.receive(nil, 0))
    end)

    it("sees the DOWN of spawn_monitor and keeps older messages", function()
      local me = P.self()
      P.send(me, "before")
      local pid, ref = P.spawn_monitor(function() end)
      assert.are.same({ "DOWN", ref, "process", pid, "normal" },
        P.receive({ "DOWN", ref }, 2000))
      assert.are.equal("before", P.receive(nil, 0))
    end)
  end)

  describe("timers", function()
    it("send_after delivers after about the given ms", function()
      local t0 = P.monotonic()
      local tref = P.send_after(100, P.self(), "tick")
      assert.is_true(P.is_ref(tref))
      assert.are.equal("tick", P.receive(nil, 2000))
      local dt = elapsed_since(t0)
      assert.is_true(dt >= 90 and dt < 1000, "after " .. dt)
    end)

    it("cancel_timer returns the ms left, then false, and nothing comes", function()
      local tref = P.send_after(500, P.self(), "never")
      local left = P.cancel_timer(tref)
      assert.are.equal("integer", math.type(left))
      assert.is_true(left >= 0 and left <= 500, "left " .. left)
      assert.are.equal(false, P.cancel_timer(tref))
      assert.are.equal(false, P.read_timer(tref))
      assert.is_nil(P.receive(nil, 700))
    end)

    it("read_timer returns the ms left while the timer runs", function()
      local tref = P.send_after(1000, P.self(), "later")
      local left = P.read_timer(tref)
      assert.are.equal("integer", math.type(left))
      assert.is_true(left > 0 and left <= 1000, "left " .. left)
      P.sleep(100)
      local left2 = P.read_timer(tref)
      assert.is_true(left2 >= 0 and left2 < left, "left " .. left2)
      assert.is_true(P.cancel_timer(tref) <= left2)
    end)

    it("a fired timer reads false and its message stays", function()
      local tref = P.send_after(20, P.self(), "fired")
      P.sleep(200)
      assert.are.equal(false, P.read_timer(tref))
      assert.are.equal(false, P.cancel_timer(tref))
      assert.are.equal("fired", P.receive(nil, 0))
    end)

    it("resolves a registered name when the timer fires", function()
      local parent = P.self()
      P.send_after(200, "message_spec_target", "hello")
      local target = spawn(function()
        P.send(parent, { "got", P.receive(nil, 5000) })
      end)
      P.register("message_spec_target", target)
      assert.are.same({ "got", "hello" }, P.receive(nil, 3000))
    end)
  end)

  describe("refs and pids", function()
    it("make_ref gives distinct refs", function()
      local seen, names = {}, {}
      for _ = 1, 1000 do
        local r = P.make_ref()
        assert.is_true(P.is_ref(r))
        assert.is_nil(seen[r])
        assert.is_nil(names[tostring(r)])
        seen[r], names[tostring(r)] = true, true
      end
    end)

    it("formats pids and refs", function()
      assert.is_truthy(tostring(P.self()):match("^<0%.%d+%.%d+>$"))
      assert.is_truthy(tostring(echo):match("^<0%.%d+%.%d+>$"))
      assert.are_not.equal(tostring(P.self()), tostring(echo))
      assert.is_truthy(tostring(P.make_ref()):match("^#Ref<0%.%d+%.%d+%.%d+>$"))
    end)
  end)
end)
